"""Training: the :class:`Trainer` (the one training path), strategies, timm optimiser / schedule,
resumable states, history files and evaluation protocols."""
from .batches import FullGraphLoader, make_loader, split_batch
from .joint import JointTrainer
from .history import plot_history, write_history_csv
from .optim import OPTIMIZERS, SCHEDULES, BudgetSchedule, build_optimizer, build_scheduler
from .protocols import cross_validate, mean_std, stratified_folds
from .state import load_checkpoint, save_checkpoint
from .strategies import STRATEGIES, apply_strategy, transfer_trunk
from .trainer import PRECISIONS, Trainer, finetune
