"""Starting a training run from pretrained weights (the engine's hook for `--weights`)."""

from __future__ import annotations

import logging
import os

from torch import nn

from ..models.weights import LoadReport, load_pretrained, resolve_weights

logger = logging.getLogger(__name__)


def load_start_weights(model: nn.Module, name: str, weights: str | os.PathLike) -> LoadReport:
    """Load `weights` (a published tag of `name`, or a file) into an already built `model`
    whose in_chans / num_classes come from the target data: the first conv is adapted and a
    head of another size replaced (both reported); any other mismatch is a ValueError.

    The weights' metadata is attached as `model.pretrained_cfg` (with the load report)."""
    state, meta = resolve_weights(name, weights)
    file_model = meta.get("model")
    if meta.get("source") == "resnetlab" and file_model and file_model != name:
        raise ValueError(
            f"{weights} holds {file_model!r} weights but the run builds {name!r}; "
            f"train {file_model} (with its model kwargs {meta.get('model_kwargs') or {}})"
        )
    report = load_pretrained(model, state, source=str(meta.get("path", weights)))
    model.pretrained_cfg = {**meta, "load_report": str(report)}
    logger.info("%s", report)
    return report
