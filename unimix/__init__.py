"""unimix: one MLP-family backbone for images, point clouds and graphs."""
from .backbone import Backbone, infer_modality
from .checkpoint import from_pretrained, load_checkpoint, save_checkpoint, save_pretrained
from .finetune import MultiTaskModel, Trainer, finetune, transfer_trunk
from .io import read_point_cloud
from .layers import BLOCKS, Trunk
from .models import UnimixModel, create_model, list_models
from .tasks import ClassificationHead, SegmentationHead
from .timm_weights import from_timm
from .tokenizers import TOKENIZERS, GraphTokenizer, ImageTokenizer, PointCloudTokenizer, create_tokenizer
from .tokens import Tokens

__version__ = "0.1.0"
