"""Transfer learning: start from pretrained weights, adapt input and head, fine-tune, compare.

* `finetune`    freezing strategies (linear probe, gradual unfreezing) and backbone lr scale
* `pretrained`  the training engine's hook for `--weights`
* `export`      run folder -> one self-describing safetensors file
* `predict`     inference with a weights file and its own preprocessing
* `comparison`  fine-tune vs from scratch at equal budget (`resnetlab transfer`), `report`
"""

from .comparison import TransferConfig, images_to_reach, run_transfer, summarize
from .export import export_run
from .finetune import FREEZE_MODES, Finetuner, model_parts, setup_finetune
from .predict import load_for_inference, predict
from .pretrained import load_start_weights

__all__ = [
    "FREEZE_MODES",
    "Finetuner",
    "TransferConfig",
    "export_run",
    "images_to_reach",
    "load_for_inference",
    "load_start_weights",
    "model_parts",
    "predict",
    "run_transfer",
    "setup_finetune",
    "summarize",
]
