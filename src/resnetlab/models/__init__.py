"""Models: the registry, the ResNet family and the generic skip stacks."""

from . import zoo  # noqa: F401  (registers the names)
from .registry import ModelSpec, create_model, get_model_spec, list_models, register_model
from .resnet import ResNet
from .stacks import SkipCNN, SkipMLP

__all__ = [
    "ModelSpec",
    "ResNet",
    "SkipCNN",
    "SkipMLP",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
]
