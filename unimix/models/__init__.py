"""Models: ``UnimixModel`` (backbone + one head), ``MultiTaskModel`` (one trunk, many heads), the factory."""
from .base import CONFIG_NAME, WEIGHTS_NAME, PretrainedMixin, model_config, pretrained_config, save_pretrained
from .factory import create_model, create_variant, list_models, register_variant
from .init import WEIGHT_INITS, init_weights
from .model import UnimixModel
from .multitask import MultiTaskModel

ARCHITECTURES = {"UnimixModel": UnimixModel, "MultiTaskModel": MultiTaskModel}
