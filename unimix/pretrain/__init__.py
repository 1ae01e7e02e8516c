"""Self-supervised pretraining on the token contract: masked-token modelling for every modality."""
from .api import pretrain
from .model import MaskedTokenModel, ReconstructionTask
from .objectives import OBJECTIVES, Objective, chamfer_l2, random_token_mask, register_objective
