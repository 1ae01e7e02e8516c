"""A matrix of hostile-but-realistic inputs, each in its own forked process: crash, hang, silent result or clear error.

    python benchmarks/hostile_inputs.py [--json] [CASE ...]
    PYTHONPATH=/path/to/another/checkout python benchmarks/hostile_inputs.py   # the same matrix on other code

The parent imports unimix once; every case runs in a child forked from it (memory capped at 12 GB,
killed after 60 s) and is classified from how the child ends:

- ``clear``: a ``ValueError`` / ``TypeError`` / ``FileNotFoundError`` / ``FloatingPointError`` (for CLI
  cases: exit status 2 and a one-line message, no traceback), as expected;
- ``ok``: the case expects a result and its own assertions on it passed (float16 inputs converted,
  meshes predicted, a warning given);
- ``SILENT``: it returned (or its assertion on the result failed) where an error was due;
- ``UNCLEAR``: another exception (from torch, numpy, safetensors ...), or a CLI traceback;
- ``CRASH``: killed by a signal (a segfault); ``HANG``: still running after the timeout;
- ``LOSS`` (cases ``l_``, expecting ``keeps``): a good save is made, then a failing or interrupted
  save into the same place (refused extra keys, NaN weights, a full disk, SIGKILLs); the case then
  loads what is there and checks it is the good save (or a later complete one). ``ok`` if it is,
  ``LOSS`` if the earlier save is gone, unloadable or inconsistent.

The cases are grouped by boundary: graphs (``g_``, ``x_g_``), point clouds (``p_``, ``x_pc_``), images
(``i_``, ``x_img_``), sizes at build time (``b_``), files and checkpoints (``f_``), CLI (``c_``),
Trainer and labels (``t_``), and the rest of the public API (``y_``, ``pred_``, ``extra_``).
"""
import argparse
import collections
import contextlib
import io
import json
import os
import re
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

# This checkout's unimix, unless PYTHONPATH names another one (its entries come first on sys.path).
sys.path.insert(1 + len([p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]), str(Path(__file__).resolve().parents[1]))

from hostile_cases import CASES, PRE  # noqa: E402  (the case table, next to this script)


TIMEOUT = 60
GOOD = ("ok", "clear")


def run_case(code: str, base: dict) -> tuple[int | None, str]:
    """Fork; the child runs ``code`` under a memory cap and reports its output through a pipe."""
    r, w = os.pipe()
    tmp = tempfile.mkdtemp(prefix="hostile-")
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out, rc = io.StringIO(), 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))
            os.environ["PROBE_TMP"] = tmp
            g = dict(base, T=tmp)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                exec(code, g)
        except SystemExit as e:
            rc = 100 + int(e.code or 0)
        except BaseException:
            out.write(traceback.format_exc())
            rc = 1
        os.write(w, out.getvalue().encode()[-4000:])
        os._exit(rc)
    os.close(w)
    start = time.time()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() - start > TIMEOUT:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(r)
            return None, ""
        time.sleep(0.02)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status), data.decode(errors="replace")
    return os.WEXITSTATUS(status), data.decode(errors="replace")


def message_lines(out: str) -> list[str]:
    return [ln for ln in out.strip().splitlines() if ln.strip() and not ln.strip().startswith("warnings.warn")]


def classify(rc: int | None, out: str, expect: str) -> str:
    if rc is None:
        return "HANG"
    if rc < 0:
        return "CRASH"
    lines = message_lines(out)
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln)]  # a multi-line message's first line
    last = errors[-1] if errors else (lines[-1] if lines else "")
    if expect == "keeps":
        return "ok" if rc in (0, 100) else "LOSS"
    if expect == "cli":
        return "clear" if rc == 102 and "Traceback" not in out else "UNCLEAR"
    if rc in (0, 100):
        return "ok" if expect in ("ok", "error_or_ok") else "SILENT"
    if "AssertionError" in out:
        return "SILENT"
    return "clear" if last.startswith(("ValueError", "TypeError", "FileNotFoundError", "FloatingPointError")) else "UNCLEAR"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = ap.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown cases {unknown}")
    os.environ.setdefault("PROBE_TMP", tempfile.gettempdir())
    base: dict = {}
    exec(PRE, base)
    results = {}
    for name in args.cases or list(CASES):
        code, expect = CASES[name]
        start = time.time()
        rc, out = run_case(code, base)
        results[name] = classify(rc, out, expect)
        lines = message_lines(out)
        print(f"{name:28s} {results[name]:8s} {time.time() - start:5.1f}s  {(lines[-1] if lines else '')[:200]}", flush=True)
    counts = collections.Counter(results.values())
    bad = {k: v for k, v in results.items() if v not in GOOD}
    print(f"{len(results)} cases: " + ", ".join(f"{k} {counts[k]}" for k in ("clear", "ok", "UNCLEAR", "SILENT", "CRASH", "HANG", "LOSS")))
    if args.json:
        print(json.dumps({"cases": len(results), "counts": dict(counts), "bad": bad, "unimix": sys.modules["unimix"].__file__}))
    return results


if __name__ == "__main__":
    main()
