"""Reading inputs: point-cloud and mesh files, images, and the one preprocessing path."""
from .pointcloud import MESH_FORMATS, POINT_FORMATS, read_mesh, read_off, read_point_cloud, sample_mesh
from .points import NORMALIZATIONS, SAMPLINGS, normalize_points, resample_indices, resample_points
from .preprocess import IMAGE_FORMATS, ImagePreprocess, PointCloudPreprocess, preprocess_from_dict
