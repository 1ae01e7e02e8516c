"""Graph datasets: thin wrappers over PyG's ``Planetoid`` and ``TUDataset``.

PyG keeps ``processed/`` next to ``raw/``, so a read-only data folder (a shared mount, a package
install) cannot be used as ``root`` directly. The helpers here:

- resolve the root: the ``root`` argument, else ``$UNIMIX_DATA``, else a per-user cache
  (``$XDG_CACHE_HOME/unimix/data`` or ``~/.cache/unimix/data``);
- find the raw files in ``root/<Name>/raw`` or ``root/<collection>/<Name>/raw`` (so
  ``$UNIMIX_DATA`` may point at one collection or at a folder holding several);
- copy ``raw/`` into the per-user cache when the folder holding it is not writable;
- let PyG download when the raw files are missing, and turn a failed download (offline) into
  one error that says exactly where to put the files.
"""
from __future__ import annotations

import difflib
import os
import shutil
import stat
from pathlib import Path

PLANETOID_NAMES = ("Cora", "CiteSeer", "PubMed")
_PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_COLLECTION_DIRS = {"planetoid": ("planetoid", "Planetoid"), "tu": ("TUDataset", "tudataset", "TU")}


def cache_dir() -> Path:
    """Per-user, writable data cache: ``$XDG_CACHE_HOME/unimix/data`` (default ``~/.cache/unimix/data``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "unimix" / "data"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$UNIMIX_DATA``, else :func:`cache_dir`."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get("UNIMIX_DATA")
    return Path(env).expanduser() if env else cache_dir()


def planetoid_name(name: str) -> str:
    """Canonical Planetoid name (``cora`` -> ``Cora``); unknown names list the valid ones."""
    if not isinstance(name, str):
        raise TypeError(f"Planetoid dataset name must be a string, one of {PLANETOID_NAMES}; got {type(name).__name__}.")
    lookup = {n.lower(): n for n in PLANETOID_NAMES}
    key = name.strip().lower()
    if key in lookup:
        return lookup[key]
    close = difflib.get_close_matches(key, list(lookup), n=1)
    hint = f" Did you mean '{lookup[close[0]]}'?" if close else ""
    raise ValueError(f"Unknown Planetoid dataset '{name}'.{hint} Valid names: {', '.join(PLANETOID_NAMES)}.")


def planetoid_raw_files(name: str) -> list[str]:
    return [f"ind.{planetoid_name(name).lower()}.{s}" for s in _PLANETOID_SUFFIXES]


def tu_raw_files(name: str) -> list[str]:
    """The TU files every dataset has (node/edge labels and attributes are optional)."""
    return [f"{name}_A.txt", f"{name}_graph_indicator.txt", f"{name}_graph_labels.txt"]


def _has_raw(folder: Path, files: list[str]) -> bool:
    raw = folder / "raw"
    return raw.is_dir() and all((raw / f).is_file() for f in files)


def _find_dataset_dir(root: Path, collection: str, name: str, files: list[str]) -> Path | None:
    """``root/name`` or ``root/<collection>/name`` holding ``raw/`` with ``files``, else ``None``."""
    for base in (root, *(root / c for c in _COLLECTION_DIRS[collection])):
        if _has_raw(base / name, files):
            return base
    return None


def _can_write(folder: Path) -> bool:
    # The owner-write bit is checked as well: ``os.access`` says yes to root on a folder marked
    # read-only (``r-x``), and such a folder is meant to stay untouched.
    try:
        return os.access(folder, os.W_OK | os.X_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)
    except OSError:
        return False


def _writable(folder: Path) -> bool:
    """Whether PyG may create ``processed/`` inside ``folder`` (or it already exists writable)."""
    processed = folder / "processed"
    return _can_write(processed if processed.is_dir() else folder)


def writable_root(root: Path, collection: str, name: str, files: list[str]) -> Path:
    """A root PyG can use for ``name``: ``root`` itself when writable, else a cache copy of ``raw/``."""
    if _writable(root / name):
        return root
    cached = cache_dir() / _COLLECTION_DIRS[collection][0]
    if cached.resolve() == root.resolve():
        raise PermissionError(f"Data cache {root} is not writable; pass --root/root= a writable folder.")
    dst = cached / name / "raw"
    if not _has_raw(cached / name, files):
        dst.mkdir(parents=True, exist_ok=True)
        for f in (root / name / "raw").iterdir():
            if f.is_file():
                shutil.copy2(f, dst / f.name)
    return cached


def _missing_error(what: str, root: Path, name: str, files: list[str], url: str, cause: Exception | None) -> FileNotFoundError:
    reason = f" (download failed: {type(cause).__name__}: {cause})" if cause is not None else ""
    return FileNotFoundError(
        f"{what} '{name}' raw files not found under {root}{reason}. Put {', '.join(files)} in "
        f"{root / name / 'raw'} (from {url}), or pass --root / set UNIMIX_DATA to a folder that has "
        f"{name}/raw/. The folder may be read-only: it is copied to {cache_dir()} before processing."
    )


def _locate(collection: str, name: str, files: list[str], root, download: bool, what: str, url: str):
    """``(root to give PyG, may_download)``; raises when the files are absent and downloading is off."""
    base = data_root(root)
    found = _find_dataset_dir(base, collection, name, files)
    if found is not None:
        return writable_root(found, collection, name, files), None
    # Not present: PyG downloads into a writable root (the given one, or the cache).
    cached = cache_dir() / _COLLECTION_DIRS[collection][0]
    target = base if base != cache_dir() and (_writable(base) or not base.exists()) else cached
    if not download:
        raise _missing_error(what, base, name, files, url, None)
    return target, base


def load_planetoid(name: str = "Cora", root: str | os.PathLike | None = None, transform=None, download: bool = True):
    """PyG ``Planetoid`` (public split) from ``root`` (see module docstring for the lookup).

    Raises:
        FileNotFoundError: the raw files are not there and could not be downloaded; the message
            says where to put them.
    """
    from torch_geometric.datasets import Planetoid

    name = planetoid_name(name)
    files = planetoid_raw_files(name)
    url = "https://github.com/kimiyoung/planetoid/tree/master/data"
    pyg_root, asked = _locate("planetoid", name, files, root, download, "Planetoid dataset", url)
    try:
        return Planetoid(str(pyg_root), name, split="public", transform=transform)
    except (OSError, ValueError, RuntimeError) as err:  # URLError is an OSError
        if asked is None:
            raise
        raise _missing_error("Planetoid dataset", asked, name, files, url, err) from err


def load_tudataset(name: str = "MUTAG", root: str | os.PathLike | None = None, transform=None, download: bool = True):
    """PyG ``TUDataset`` from ``root`` (see module docstring for the lookup)."""
    from torch_geometric.datasets import TUDataset

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"TU dataset name must be a non-empty string such as 'MUTAG' or 'PROTEINS'; got {name!r}.")
    name = name.strip()
    files = tu_raw_files(name)
    url = "https://chrsmrrs.github.io/datasets/docs/datasets/"
    pyg_root, asked = _locate("tu", name, files, root, download, "TU dataset", url)
    try:
        return TUDataset(str(pyg_root), name, transform=transform)
    except (OSError, ValueError, RuntimeError) as err:
        if asked is None:
            raise
        raise _missing_error("TU dataset", asked, name, files, url, err) from err
