"""Names of a package that load on first use (PEP 562), so its torch-free modules import alone."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, namespace: dict, home: dict[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``home`` maps each public name to the submodule
    that defines it; a name is imported from there when first used and then kept in ``namespace``."""

    def __getattr__(name: str):
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(home))

    return __getattr__, __dir__
