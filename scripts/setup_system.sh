#!/usr/bin/env bash
# System packages unimix needs on Debian/Ubuntu: python3-venv (to make .venv) and libusb-1.0-0
# (open3d's native library loads it at import). Installs them when run as root, otherwise stops
# with the exact command to run.
set -euo pipefail
python=${1:-python3}
missing=()
"$python" -c "import venv, ensurepip" 2>/dev/null || missing+=("python3-venv")
if [ "$(uname -s)" = "Linux" ] && ! ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0"; then
  missing+=("libusb-1.0-0")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "Installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "Missing system packages: ${missing[*]}. Install them, then run make again:" >&2
  echo "    sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
