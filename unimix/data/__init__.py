"""Dataset adapters: thin wrappers over PyG, open3d and file layouts people already have."""
from .images import ImageFolder, OxfordPetSegmentation
from .rows import TensorRows
from .buckets import SizeBucketSampler, graph_sizes, padding_factor
from .graph_store import GraphList, load_graphs, save_graphs
from .clouds import PointClouds
from .corruptions import CORRUPTIONS, Corrupted, corrupt, corruption_errors
from .folder import PointCloudFolder, detect_layout, load_point_clouds
from .graphs import cache_dir, data_root, load_planetoid, load_tudataset
from .peptides import PeptidesFunctional
from .shapes import CLASS_PARTS, NUM_PARTS, PART_CLASS, PART_NAMES, SHAPE_CLASSES, ShapesDataset, generate_shapes, sample_shape
from .transforms import NodeSplit
