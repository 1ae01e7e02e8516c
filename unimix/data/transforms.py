"""PyG transforms for node tasks on one graph."""
from __future__ import annotations

import copy

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform


class NodeSplit(BaseTransform):
    """The graph with ``node_index`` set to the nodes of one split (``data.<split>_mask``).

    The graph tokenizer propagates over the whole graph and returns tokens for those nodes only;
    the Trainer reads their targets ``data.y[node_index]``. So full-batch node classification is
    ``Trainer(...).fit(NodeSplit("train")(data), NodeSplit("val")(data), NodeSplit("test")(data))``,
    and a training step costs as many trunk rows as there are labelled nodes. The copy is shallow:
    every split shares the graph's tensors (and the tokenizer's cached adjacency).
    """

    def __init__(self, split: str = "train"):
        self.split = split

    def forward(self, data: Data) -> Data:
        mask = getattr(data, f"{self.split}_mask", None)
        if mask is None:
            have = sorted(k for k in data.keys() if k.endswith("_mask"))
            raise ValueError(f"The graph has no '{self.split}_mask' (it has {have}); use one of those splits, or make "
                             "masks with torch_geometric.transforms.RandomNodeSplit.")
        out = copy.copy(data)
        out.node_index = mask.nonzero().view(-1)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(split={self.split!r})"
