"""Name lookup with an error that lists the valid names and the closest match."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def resolve_name(kind: str, name: object, valid: Iterable[str]) -> str:
    """Normalise ``name`` once (lower case, ``-`` -> ``_``) and check it against ``valid``."""
    valid = sorted(valid)
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a string, one of {valid}; got {type(name).__name__} {name!r}.")
    key = name.strip().lower().replace("-", "_")
    if key in valid:
        return key
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ValueError(f"Unknown {kind} '{name}'.{hint} Valid names: {', '.join(valid)}.")
