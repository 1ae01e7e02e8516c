"""torch's CPU random draws for resampling, in numpy: the same points with or without torch.

:func:`resample_indices` reproduces :func:`unimix.io.points.resample_indices` (``torch.randperm``
then ``torch.randint`` of a ``torch.Generator().manual_seed(seed)`` on CPU): torch's generator is
an MT19937 with the standard seeding, ``randperm`` a Fisher-Yates shuffle taking
``random() % (n - i)`` and ``randint(0, n)`` takes ``random() % n``. numpy's own generators draw
other streams, so this is written out here; a test compares it with torch for many sizes and seeds.
"""
from __future__ import annotations

import numpy as np

_SEED_MASK = 0xFFFFFFFF


def _mt19937(seed: int | None) -> np.random.MT19937:
    bits = np.random.MT19937()
    if seed is not None:
        bits._legacy_seeding(int(seed) & _SEED_MASK)  # torch seeds its mt19937 with the low 32 bits
    return bits


def _draw(bits: np.random.MT19937, count: int) -> np.ndarray:
    """``count`` raw 32-bit outputs, as ``torch``'s CPU generator's ``random()``."""
    return bits.random_raw(count).astype(np.uint64) if count > 0 else np.empty(0, dtype=np.uint64)


def resample_indices(n: int, num_points: int, seed: int | None = 0, sampling: str = "random") -> np.ndarray:
    """:func:`unimix.io.points.resample_indices` (no ``generator``) in numpy: the same indices."""
    if not isinstance(num_points, int) or isinstance(num_points, bool) or num_points < 1:
        raise ValueError(f"num_points must be a positive int; got {num_points!r}.")
    if sampling not in ("random", "first"):
        raise ValueError(f"Unknown sampling {sampling!r}; expected 'random' or 'first'.")
    if n == 0:
        raise ValueError("Cannot resample an empty cloud (0 points).")
    bits = _mt19937(seed)
    if sampling == "first":
        idx = np.arange(min(n, num_points), dtype=np.int64)
    else:
        perm = np.arange(n, dtype=np.int64)
        draws = _draw(bits, n - 1)
        for i in range(n - 1):  # torch's randperm on CPU
            j = i + int(draws[i] % np.uint64(n - i))
            perm[i], perm[j] = perm[j], perm[i]
        idx = perm[:num_points]
    if n < num_points:  # torch.randint(0, n, (num_points - n,))
        idx = np.concatenate([idx, (_draw(bits, num_points - n) % np.uint64(n)).astype(np.int64)])
    return idx
