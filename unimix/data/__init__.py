"""Dataset adapters: thin wrappers over PyG (and, as they come, other loaders)."""
from .graphs import cache_dir, data_root, load_planetoid, load_tudataset
from .shapes import CLASS_PARTS, NUM_PARTS, PART_CLASS, PART_NAMES, SHAPE_CLASSES, ShapesDataset, generate_shapes, sample_shape
