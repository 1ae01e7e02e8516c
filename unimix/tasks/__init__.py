"""Task heads and their losses and metrics, registered by ``(task, modality)`` in :data:`unimix.HEADS`."""
from ..registry import HEADS, register_head
from .base import IGNORE_INDEX, DenseTask, Head, Task
from .classification import POOLS, ClassificationHead, pool_tokens
from .multilabel import MultiLabelHead, MultiLabelTask
from .segmentation import ImageSegmentationHead, NodeHead, PointSegmentationHead, SegmentationHead

TASKS = HEADS
"""Deprecated name of :data:`unimix.HEADS` (``"classification" in TASKS`` still works)."""
