from .common import Affine, zero_padding
from .external_attention import ExternalAttention, ExternalAttentionBlock
from .ffonly import FeedForwardBlock
from .gmlp import GMLPBlock, SpatialGatingUnit
from .mixer import MixerBlock
from .resmlp import ResMLPBlock
from .trunk import BLOCKS, Trunk, get_block
