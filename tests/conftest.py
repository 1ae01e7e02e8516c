from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Small inputs for every modality: the registry's real widths and depths, tiny token counts.
TOKENIZER_KWARGS = {
    "image": dict(img_size=32, patch_size=8),
    "pointcloud": dict(num_groups=16, group_size=8),
    "graph": dict(),
}


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


def ring_graph(n: int, num_features: int = 6, seed: int = 0) -> Data:
    g = torch.Generator().manual_seed(seed)
    src = torch.arange(n)
    dst = (src + 1) % n
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    return Data(x=torch.randn(n, num_features, generator=g), edge_index=edge_index)


def graph_batch(sizes=(5, 9, 7), num_features: int = 6) -> Batch:
    return Batch.from_data_list([ring_graph(n, num_features, seed=i) for i, n in enumerate(sizes)])


def sample_input(modality: str, level: str = "graph"):
    """A small batch for ``modality`` (graph: a batch of 3 graphs, or one graph at node level)."""
    torch.manual_seed(0)
    if modality == "image":
        return torch.randn(2, 3, 32, 32)
    if modality == "pointcloud":
        return torch.randn(2, 128, 3)
    return graph_batch() if level == "graph" else ring_graph(12)
