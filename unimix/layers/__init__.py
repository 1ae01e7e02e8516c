"""Trunk blocks, each registered by name in :data:`unimix.BLOCKS`, and the trunk that stacks them."""
from ..registry import BLOCKS, register_block
from .common import Affine, zero_padding
from .external_attention import ExternalAttention, ExternalAttentionBlock
from .ffonly import FeedForwardBlock
from .gmlp import GMLPBlock, SpatialGatingUnit
from .mixer import MixerBlock
from .resmlp import ResMLPBlock
from .trunk import Trunk, get_block
