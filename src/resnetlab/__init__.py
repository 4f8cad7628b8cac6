"""resnetlab: skip connections and residual networks — build, train, analyse and reuse them."""

__version__ = "0.1.0"

from .models import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "list_models"]
