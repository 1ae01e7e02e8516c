"""unimix: one MLP-family backbone for images, point clouds and graphs.

The package is layered (see ARCHITECTURE.md); this module only re-exports the public API.
"""
from . import _deprecated, data, ops
from .backbone import Backbone, infer_modality
from .hub import from_pretrained, save_pretrained
from .io import ImagePreprocess, PointCloudPreprocess, read_point_cloud
from .layers import Trunk
from .models import MultiTaskModel, UnimixModel, create_model, init_weights, list_models
from .registry import BLOCKS, HEADS, READERS, TOKENIZERS, register_block, register_head, register_reader, register_tokenizer
from .tasks import (ClassificationHead, DenseTask, ImageSegmentationHead, MultiLabelHead, MultiLabelTask, NodeHead, PointSegmentationHead,
                    SegmentationHead, Task)
from .timm_weights import from_timm
from .tokenizers import GraphPatchTokenizer, GraphTokenizer, ImageTokenizer, PointCloudTokenizer, create_tokenizer
from .tokens import GraphMeta, ImageMeta, PatchMeta, PointMeta, TokenMeta, Tokens
from .train import JointTrainer, Trainer, cross_validate, finetune, load_checkpoint, save_checkpoint, transfer_trunk
from .pretrain import pretrain
from .version import __version__

_deprecated.install()
checkpoint = _deprecated.alias("unimix.checkpoint", _deprecated.CHECKPOINT)  # ``unimix.checkpoint.x`` keeps working
