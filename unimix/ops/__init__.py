"""Operations that tokenizers and heads share: point grouping and interpolation, graph propagation."""
from .common import gather_points
from .fps import FPSCache, farthest_point_sample
from .graph import AddHopFeatures, adjacency, degree_features, hop_features, node_features, propagate, transpose_csr
from .patches import GraphPartition, PatchedGraph, metis_partition, random_walk_se
from .interpolate import interpolate_to_points
from .knn import knn
