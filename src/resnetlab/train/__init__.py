"""Training and evaluation: `train(TrainConfig(...)) -> TrainResult`, `evaluate(model, loader)`."""

from .checkpoint import load_state, load_weights, save_weights
from .config import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig
from .engine import (
    NonFiniteLossError,
    TrainingInterrupted,
    TrainResult,
    build_model,
    evaluate,
    resolve_device,
    resolve_precision,
    train,
    train_one_epoch,
)
from .optim import build_optimizer, lr_at

__all__ = [
    "DataConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "build_model",
    "build_optimizer",
    "evaluate",
    "load_state",
    "load_weights",
    "lr_at",
    "resolve_device",
    "resolve_precision",
    "save_weights",
    "train",
    "train_one_epoch",
]
