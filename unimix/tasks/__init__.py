"""Task heads (and, as they come, their losses and metrics)."""
from .classification import POOLS, ClassificationHead, pool_tokens
from .segmentation import SegmentationHead, interpolate_to_points

TASKS = {"classification": ClassificationHead, "segmentation": SegmentationHead}
