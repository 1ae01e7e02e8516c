"""Reading inputs: point-cloud and mesh files, images, and the one preprocessing path.

Names load on first use (PEP 562), so the numpy-only readers (:mod:`unimix.io.pointcloud`,
:mod:`unimix.io.arrays`) import without torch.
"""
from .._lazy import lazy_exports

_NAMES = {
    "pointcloud": ("MESH_FORMATS", "POINT_FORMATS", "read_mesh", "read_off", "read_point_array", "read_point_cloud",
                   "sample_mesh"),
    "points": ("NORMALIZATIONS", "SAMPLINGS", "normalize_points", "resample_indices", "resample_points"),
    "preprocess": ("IMAGE_FORMATS", "ImagePreprocess", "PointCloudPreprocess", "preprocess_from_dict"),
}
_HOME = {name: module for module, names in _NAMES.items() for name in names}
__all__ = sorted(_HOME)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
