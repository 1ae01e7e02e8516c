"""Checks where data enters unimix: numbers of a config, tensors, graphs, batch vectors and files.

Every check raises a ``ValueError`` / ``TypeError`` / ``FileNotFoundError`` whose message names the
input, the value received, what was expected and the fix, and returns the value (converted where a
conversion is lossless or explicitly checked), so a boundary writes ``x = check_...(x)`` once and
the code behind it trusts ``x``. The bottom of the package: torch, numpy and the standard library only.
torch is imported inside the tensor checks, so the file and number checks serve the torch-free
readers of :mod:`unimix.io.arrays` / :func:`unimix.io.read_point_array` (``unimix predict model.onnx``).

Cost. Build-time checks (:func:`check_int`, :func:`check_fraction`, :func:`check_memory`) are Python
comparisons. The checks that run on every forward pass are a few reductions over the input, each
ending in one host sync, and never a copy of the input: :func:`check_values` one ``aminmax``
(``O(numel)``); :func:`check_edge_index` one ``aminmax`` over ``edge_index`` (``O(E)``);
:func:`check_batch_vector` a comparison of neighbours, a ``bincount`` and two syncs (``O(N + E)``).
The training-step overhead they add is measured in ``benchmarks/README.md`` ("Validation overhead").
"""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import Tensor

MAX_DIM = 1 << 16
"""Widest token / hidden width accepted (65 536): wider than any published MLP-family model."""
MAX_DEPTH = 1000
"""Deepest trunk accepted: DeepNet's 1000 layers; a typo like ``depth: 1000000`` would build for minutes."""
MAX_VALUE = 1e18
"""Largest magnitude accepted in a model input (coordinates, pixels, node and edge features, hop
features). Squares are float32 (largest value 3.4e38) inside layer norms and distances, so they
overflow above about 1.8e19. Measured: ``normalize_points`` returns all-zero clouds (radius inf) from
coordinates of 4e19 and is exact up to 1e19; node features of 1e20 give NaN logits at node level,
pixels of 1e25 NaN logits. 1e18 keeps a 10x margin and is far above any unit or intensity in use."""
MAX_COORD = MAX_VALUE
"""The bound on point coordinates (:data:`MAX_VALUE`)."""


# ----------------------------------------------------------------------------- numbers of a config
def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, fix: str = "") -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; bools, floats and strings are a ``TypeError``.

    Cost: Python comparisons only.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        shown = f"{value!r} ({type(value).__name__})"
        hint = f" Write it without quotes: {name}={value}." if isinstance(value, str) and value.strip().lstrip("-").isdigit() else ""
        raise TypeError(f"{name} must be an int; got {shown}.{hint}{' ' + fix if fix else ''}")
    value = int(value)
    low = minimum is not None and value < minimum
    high = maximum is not None and value > maximum
    if low or high:
        bounds = (f"between {minimum} and {maximum}" if minimum is not None and maximum is not None
                  else f"at least {minimum}" if minimum is not None else f"at most {maximum}")
        raise ValueError(f"{name} must be {bounds}; got {value}.{' ' + fix if fix else ''}")
    return value


def check_optional_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, fix: str = "") -> int | None:
    """:func:`check_int`, with ``None`` allowed (and returned)."""
    return None if value is None else check_int(name, value, minimum, maximum, fix)


def check_sizes(owner: str, minimum: int = 1, maximum: int | None = MAX_DIM, **sizes: Any) -> None:
    """Every keyword an ``int`` in ``[minimum, maximum]`` (``None`` skipped), named as ``owner(key=...)``.

    For the sizes a module is built with (widths, counts, patch sizes), so ``group_size=0`` is refused
    at build time instead of failing (or giving NaN) at the first forward. Cost: Python comparisons.
    """
    for key, value in sizes.items():
        if value is not None:
            check_int(f"{owner}: {key}", value, minimum, maximum)


def check_fraction(name: str, value: Any, high_inclusive: bool = False, fix: str = "") -> float:
    """A finite number in ``[0, 1)`` (``[0, 1]`` with ``high_inclusive``): dropout rates, shares.

    Cost: Python comparisons only.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1{']' if high_inclusive else ')'}; got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not (0.0 <= value <= 1.0) or (value == 1.0 and not high_inclusive):
        raise ValueError(f"{name} must be in [0, 1{']' if high_inclusive else ')'}; got {value}.{' ' + fix if fix else ''}")
    return value


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (``None`` where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(what: str, nbytes: float, fix: str) -> None:
    """Refuse an allocation of ``nbytes`` larger than this machine's RAM, before it is attempted
    (a ``MemoryError`` or the OOM killer otherwise). Cost: one ``sysconf`` call."""
    total = physical_memory()
    if total is not None and nbytes > total:
        raise ValueError(f"{what} would need {_size(nbytes)}, more than this machine's {_size(total)} of memory; {fix}")


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1024 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


# ----------------------------------------------------------------------------- tensors
def exporting() -> bool:
    """True while ``torch.export`` (so ``unimix.export_onnx``) traces a model: the value checks, a
    host sync each, are then left out of the graph (their data-dependent branch cannot be traced)."""
    import torch

    return bool(getattr(torch.compiler, "is_exporting", lambda: False)())


def as_float(name: str, x: Any, dtype: torch.dtype | None = None, fix: str = "") -> Tensor:
    """``x`` as a floating tensor of ``dtype`` (the dtype of the weights it meets).

    float16, bfloat16 and float64 inputs are converted (call :func:`check_values` after this: a
    float64 value beyond float32's range becomes inf in the cast, and is caught there). Integer,
    bool and complex tensors are a ``TypeError`` naming the conversion to use. Cost: free when
    ``x`` already has ``dtype``, one cast otherwise.
    """
    import torch
    from torch import Tensor

    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}.{' ' + fix if fix else ''}")
    dtype = torch.float32 if dtype is None else dtype
    if x.dtype == dtype:
        return x
    if x.is_floating_point():
        return x.to(dtype)
    raise TypeError(f"{name} must be floating point; got dtype {x.dtype}.{' ' + fix if fix else ' Convert with .float().'}")


def check_values(name: str, x: Tensor, limit: float | None = None, fix: str = "") -> Tensor:
    """Every value of ``x`` finite (and ``|value| <= limit`` when given).

    Cost: one ``aminmax`` over ``x`` (it propagates NaN) and one sync; the position of a bad value
    is only looked up when there is one.
    """
    import torch

    if x.numel() == 0 or exporting():
        return x
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    bound = math.inf if limit is None else limit
    if -bound <= lo and hi <= bound and math.isfinite(lo) and math.isfinite(hi):
        return x
    bad = ~torch.isfinite(x.detach())
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        kind = "NaN" if bool(torch.isnan(x.detach()[where])) else "Inf"
        why = " (a float64 value beyond float32's range, about 3.4e38, becomes Inf when converted)" if kind == "Inf" else ""
        raise ValueError(f"{name} contain NaN or Inf: {kind} at index {where}{why}, {int(bad.sum())} non-finite values in all. "
                         f"{fix or 'Remove or repair those values.'}")
    where = tuple(int(i) for i in (x.detach().abs() > bound).nonzero()[0])
    raise ValueError(f"{name} reach {max(-lo, hi):.3g} (first at index {where}); the model computes in float32 and accepts "
                     f"magnitudes up to {bound:.0e}. {fix or 'Rescale the input.'}")


def check_cloud(name: str, points: Tensor, min_channels: int = 3, fix: str = "") -> Tensor:
    """One cloud ``[P, C]``: ``P >= 1`` points, ``min_channels <= C``, values finite and within
    :data:`MAX_VALUE` (call it after the cast to float32). ``C > 16`` channels on ``P <= 9`` rows is
    refused as a transposed ``[C, P]`` cloud (xyz + normals + colour is 9 channels). Cost: one
    :func:`check_values`."""
    shape = tuple(points.shape)
    if points.ndim != 2 or shape[0] == 0 or shape[1] < min_channels:
        raise ValueError(f"{name} must be one cloud [P, C] with P >= 1 points and C >= {min_channels} channels (xyz first"
                         f"{', then normals' if min_channels == 6 else ''}); got shape {shape}.")
    if shape[1] > 16 and shape[0] <= 9:
        raise ValueError(f"{name} has shape {shape}: {shape[0]} points of {shape[1]} channels. It looks channels-first "
                         "([C, P]); pass points.T (one row per point).")
    return check_values(f"{name}'s values", points, MAX_VALUE, fix or "Drop those points, or rescale the cloud.")


# ----------------------------------------------------------------------------- graphs and batches
def check_edge_index(edge_index: Any, num_nodes: int, name: str = "edge_index") -> Tensor:
    """``edge_index`` as a long ``[2, E]`` tensor with every index in ``[0, num_nodes)``.

    A 1-D or transposed (``[E, 2]``) tensor, float or int32 indices (PyG's ops take int64),
    negative indices (PyG does not wrap them: they would be dropped or read out of bounds) and
    indices ``>= num_nodes`` (the sparse adjacency would be built out of bounds) are refused.
    PyG's ``Data.validate()`` checks the shape and the range too, but with two reductions and
    Python overhead per call: measured 70 us against 34 us here on a MUTAG batch of 32 graphs, 90
    against 60 us on Cora (``benchmarks/validation_overhead.py``), and its messages give no fix;
    so it is not called on the hot path. Cost: one ``aminmax`` over ``E``.
    """
    import torch
    from torch import Tensor

    if edge_index is None:
        raise ValueError(f"The graph has no {name}; pass edge_index=torch.empty(2, 0, dtype=torch.long) for a graph without edges.")
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [2, num_edges] of node indices; got {type(edge_index).__name__}.")
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool or edge_index.is_complex():
        raise TypeError(f"{name} must hold integer node indices; got dtype {edge_index.dtype}. Convert with {name}.long() "
                        "(after checking the values are whole numbers).")
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        shape = tuple(edge_index.shape)
        if edge_index.ndim == 2 and edge_index.shape[1] == 2:
            fix = f"it looks transposed ([num_edges, 2]): pass {name}.t().contiguous()."
        elif edge_index.ndim == 1:
            fix = "a 1-D tensor cannot say which node each edge connects: pass torch.stack([sources, targets])."
        else:
            fix = "row 0 holds the source nodes, row 1 the targets: torch.stack([sources, targets])."
        raise ValueError(f"{name} must be [2, num_edges]; got shape {shape}: {fix}")
    if edge_index.dtype != torch.long:
        raise TypeError(f"{name} must be torch.long (int64), as PyG expects; got {edge_index.dtype}. Convert it once: "
                        f"data.{name} = data.{name}.long().")
    if edge_index.shape[1] == 0:
        return edge_index
    if exporting():
        return edge_index
    lo, hi = (int(v) for v in torch.stack(torch.aminmax(edge_index)).tolist())
    if lo < 0:
        raise ValueError(f"{name} holds the negative node index {lo}; indices run from 0 to num_nodes - 1 = {num_nodes - 1} "
                         "(negative indices are not counted from the end). Fix the edge list.")
    if hi >= num_nodes:
        raise ValueError(f"{name} refers to node {hi} but the graph has {num_nodes} nodes (indices 0..{num_nodes - 1}); "
                         "fix the edge list, or give x (or num_nodes) one row per node.")
    return edge_index


def declared_groups(data: Any) -> int | None:
    """``num_graphs`` of a PyG ``Batch`` (counts trailing empty graphs), ``None`` for a plain ``Data``."""
    if getattr(data, "_num_graphs", None) is None and getattr(data, "ptr", None) is None:
        return None
    try:
        return int(data.num_graphs)
    except (AttributeError, ValueError, TypeError):
        return None


def check_batch_vector(batch: Any, num_items: int, num_groups: int | None = None, what: str = "graph",
                       items: str = "nodes", edge_index: Tensor | None = None) -> Tensor:
    """The sizes ``[num_groups]`` of the groups a PyG ``batch`` vector assigns ``num_items`` rows to.

    ``batch`` must be an integer vector of length ``num_items``, sorted (groups contiguous: the
    layout ``Batch.from_data_list`` makes and ``to_dense_batch`` assumes; an interleaved vector
    would mix the groups), starting at 0, and no group may be empty (an empty last group would
    silently lose its row, an empty middle one gives NaN). ``num_groups`` (``Batch.num_graphs``)
    makes trailing empty groups visible. With ``edge_index`` (already range-checked), an edge
    joining two graphs is refused too (it would leak information between samples). Cost: a
    comparison of neighbours, a ``bincount`` and two syncs, ``O(N + E)``.
    """
    import torch
    from torch import Tensor

    if not isinstance(batch, Tensor) or batch.ndim != 1 or batch.is_floating_point() or batch.dtype == torch.bool:
        got = f"a {batch.dtype} tensor of shape {tuple(batch.shape)}" if isinstance(batch, Tensor) else type(batch).__name__
        raise TypeError(f"`batch` must be a 1-D integer tensor (the {what} index of each of the {num_items} {items}); got {got}.")
    if batch.shape[0] != num_items:
        raise ValueError(f"`batch` has {batch.shape[0]} entries but there are {num_items} {items}; give one {what} index per row.")
    if num_items == 0:
        raise ValueError(f"The batch holds no {items}; every {what} needs at least one.")
    cross = batch[edge_index[0]] != batch[edge_index[1]] if edge_index is not None and edge_index.shape[1] else None
    flags = torch.stack([batch[0] < 0, (batch[1:] < batch[:-1]).any(), cross.any() if cross is not None else batch.new_zeros((), dtype=torch.bool)]).tolist()
    if flags[0]:
        raise ValueError(f"`batch` holds the negative {what} index {int(batch[0])}; {what} indices start at 0.")
    if flags[1]:
        i = int((batch[1:] < batch[:-1]).nonzero()[0]) + 1
        raise ValueError(f"`batch` is not sorted ({what} {int(batch[i])} follows {what} {int(batch[i - 1])} at row {i}): the {items} of "
                         f"each {what} must be contiguous, as Batch.from_data_list makes them. Build the batch with "
                         f"Batch.from_data_list, or reorder every per-{items[:-1]} tensor by perm = batch.argsort(stable=True).")
    if cross is not None and flags[2]:
        e = int(cross.nonzero()[0])
        a, b = (int(batch[edge_index[k, e]]) for k in (0, 1))
        raise ValueError(f"Edge {e} joins node {int(edge_index[0, e])} of {what} {a} to node {int(edge_index[1, e])} of {what} {b}: "
                         f"edges must stay inside one {what}. Batch separate {what}s with Batch.from_data_list (it offsets "
                         "each edge_index), or fix the edge list.")
    sizes = torch.bincount(batch, minlength=num_groups or 0)
    if num_groups is not None and sizes.shape[0] > num_groups:
        raise ValueError(f"`batch` refers to {what} {sizes.shape[0] - 1} but the batch says it holds {num_groups} {what}s "
                         "(num_graphs); rebuild it with Batch.from_data_list.")
    if int(sizes.min()) == 0:
        empty = (sizes == 0).nonzero()
        i = int(empty[0])
        raise ValueError(f"{what.capitalize()} {i} of the batch is empty (0 {items}; {int(empty.numel())} empty in all): it would "
                         f"give a missing or NaN row. Drop empty {what}s before batching, e.g. "
                         f"[d for d in data_list if d.num_nodes > 0].")
    return sizes


def check_graph(data: Any, edge_dim: int | None = None) -> int:
    """The node count of a PyG ``Data`` / ``Batch`` after checking what the graph tokenizer reads.

    - at least one node; ``x`` (when present) with one row per node;
    - ``edge_index``: :func:`check_edge_index` (shape, dtype, range);
    - ``edge_attr`` when ``edge_dim`` is given: finite (shape is the tokenizer's check);
    - ``batch`` when present: :func:`check_batch_vector` (sorted, no empty graph, counted against
      ``num_graphs``, no edge between two graphs);
    - ``hops`` when present: ``[num_nodes, K + 1, F]`` floats, finite.

    ``x`` values are checked where they are converted (``unimix.ops.graph.node_features``). Cost:
    ``O(N + E)``, three syncs; the graph tokenizer runs it once per batch and once per graph in
    full-graph training (cached while the same ``edge_index`` comes back).
    """
    from torch import Tensor

    n = data.num_nodes
    if n is None or n == 0:
        raise ValueError("Graph has zero nodes; a graph needs at least one node to be tokenized.")
    x = getattr(data, "x", None)
    if isinstance(x, Tensor) and (x.ndim not in (1, 2) or x.shape[0] != n):
        raise ValueError(f"x has shape {tuple(x.shape)} but the graph has {n} nodes (num_nodes); x must be [num_nodes, F]: "
                         "one row per node. Fix x or num_nodes.")
    edge_index = check_edge_index(getattr(data, "edge_index", None), n)
    if edge_dim is not None and isinstance(getattr(data, "edge_attr", None), Tensor):
        check_values("Edge attributes (edge_attr)", data.edge_attr, MAX_VALUE, "Repair them (torch.nan_to_num) or drop those edges.")
    hops = getattr(data, "hops", None)
    if hops is not None:
        if not isinstance(hops, Tensor) or hops.ndim != 3 or hops.shape[0] != n or not hops.is_floating_point():
            got = f"{hops.dtype} {tuple(hops.shape)}" if isinstance(hops, Tensor) else type(hops).__name__
            raise ValueError(f"data.hops must be float [num_nodes={n}, K + 1, F] (unimix.AddHopFeatures makes it); got {got}.")
        check_values("data.hops", hops, MAX_VALUE, "Recompute them with unimix.AddHopFeatures from finite node features.")
    batch = getattr(data, "batch", None)
    if batch is not None:
        check_batch_vector(batch, n, declared_groups(data), "graph", "nodes", edge_index)
    return n


def check_node_index(index: Any, num_nodes: int) -> Tensor:
    """``data.node_index``: integer indices in ``[0, num_nodes)`` or a bool mask of ``num_nodes``. Cost: one ``aminmax``."""
    import torch
    from torch import Tensor

    ok = isinstance(index, Tensor) and index.ndim == 1 and not index.is_floating_point()
    if ok and index.dtype == torch.bool:
        ok = index.shape[0] == num_nodes
    elif ok and index.numel():
        if exporting():
            return index
        lo, hi = (int(v) for v in torch.stack(torch.aminmax(index)).tolist())
        ok = 0 <= lo and hi < num_nodes
    if not ok:
        raise ValueError(f"node_index must be a 1-D tensor of node indices in [0, {num_nodes}) or a bool mask over the {num_nodes} "
                         "nodes; build it with unimix.data.NodeSplit or mask.nonzero().view(-1).")
    return index


def check_padding(what: str, num_groups: int, largest: int, num_items: int, width: int, itemsize: int) -> str | None:
    """A warning message when padding every group to the largest one multiplies memory, or a
    ``ValueError`` when the padded tensor cannot fit in this machine's memory at all.

    Warns when the padded ``[num_groups, largest, width]`` tensor holds at least 4x the real rows
    and the padding alone is at least 16 MiB (one 20 000-node graph among 100 three-node graphs:
    101 x 20 000 rows for 20 300 real ones, 3 GB of padding at width 384; a PROTEINS batch of 32
    with its 620-node graph pads 10x but to 5 MB at width 64, and is not worth a warning). Cost:
    arithmetic on sizes already known.
    """
    padded = num_groups * largest
    check_memory(f"Padding {num_groups} {what}s to the largest ({largest} rows)", padded * width * itemsize,
                 f"batch {what}s of similar sizes together, or use a smaller batch.")
    if padded >= 4 * num_items and (padded - num_items) * width * itemsize >= 16 << 20:
        return (f"Padding {num_groups} {what}s to the largest one ({largest} nodes) makes {padded:,} token rows for {num_items:,} "
                f"real ones ({padded / num_items:.0f}x the memory and compute, {_size((padded - num_items) * width * itemsize)} of "
                f"padding per [B, N, {width}] tensor). Batch {what}s of similar sizes together (sort or bucket the data set by "
                f"num_nodes), use a smaller batch_size, or process the largest {what}s on their own.")
    return None


# ----------------------------------------------------------------------------- files
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def check_file(path: str | os.PathLike, what: str = "File", fix: str = "") -> Path:
    """``path`` as a ``Path`` to an existing, readable regular file.

    A missing file is a ``FileNotFoundError``; a folder, a FIFO (whose ``open()`` would block
    until a writer appears), a socket or a device is a ``ValueError``, checked with ``os.stat``
    before anything opens it. Cost: one ``stat`` call.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} '{path}' does not exist.{' ' + fix if fix else ''}") from None
    except OSError as e:
        raise ValueError(f"Cannot read {what.lower()} '{path}': {e.strerror}.") from None
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise ValueError(f"{what} '{path}' is {kind}, not a regular file; pass the path of a file.{' ' + fix if fix else ''}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what} '{path}' is not readable (permission denied); fix its permissions or copy it.")
    return path
