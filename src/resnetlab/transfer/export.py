"""`export_run`: one self-describing weights file from a run folder.

The file is safetensors (tensors only, no code) with the metadata in its header as JSON values:
architecture and kwargs, classes, normalisation, input size, training data, metrics, the command
and resolved config that made the weights. `create_model(name, weights=FILE)`,
`resnetlab.train.loading.load_trained(FILE)`, `resnetlab eval` and `resnetlab predict` read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = "resnetlab-weights/1"
_METRIC_KEYS = (
    "test_top1_err",
    "test_top5_err",
    "val_top1_err",
    "val_top5_err",
    "best_epoch",
    "best_top1_err",
    "epochs",
    "steps",
    "wall_time_s",
)


def export_run(
    run_dir: str | os.PathLike, out: str | os.PathLike, *, which: str = "best"
) -> dict[str, Any]:
    """Write RUN_DIR/checkpoints/<which>.safetensors plus the run's description to `out`
    (bit-exact tensors). Returns the metadata written. which: "best" | "last"."""
    from safetensors.torch import save_file

    from ..train.checkpoint import atomic_write, load_weights

    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a resnetlab run folder (no config.json)")
    src = run_dir / "checkpoints" / f"{which}.safetensors"
    if not src.is_file():
        raise FileNotFoundError(
            f"{src} does not exist; the run has not saved a {which} checkpoint yet"
        )
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors, got {out.name}")
    state, meta = load_weights(src)
    config = json.loads((run_dir / "config.json").read_text())
    result_file = run_dir / "result.json"
    metrics: dict[str, Any] = {}
    if result_file.is_file():
        final = json.loads(result_file.read_text()).get("final", {})
        metrics = {k: final[k] for k in _METRIC_KEYS if final.get(k) is not None}
        metrics["status"] = "finished"
    else:
        metrics["status"] = "unfinished"
    if which == "best":
        metrics["checkpoint_epoch"] = meta.get("epoch")
    if not meta.get("classes"):
        meta["classes"] = _classes_of(meta.get("data"), int(meta.get("num_classes", 0)))
    meta.update(
        {
            "format": FORMAT,
            "source": "resnetlab",
            "metrics": metrics,
            "train_config": {k: v for k, v in config.items() if k != "meta"},
            "run_meta": config.get("meta", {}),
            "exported_from": str(src),
        }
    )
    header = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    tensors = {k: v.contiguous() for k, v in state.items()}
    atomic_write(out, lambda tmp: save_file(tensors, tmp, metadata=header))
    return meta


def _classes_of(data: str | None, n: int) -> list[str]:
    """Class names of a data set (for runs written before the engine recorded them)."""
    if data:
        try:
            from ..data import load_dataset

            classes = load_dataset(data, test_subset=1, train_subset=1).classes
            if len(classes) == n:
                return list(classes)
        except (FileNotFoundError, ValueError):
            pass
    return [str(i) for i in range(n)]
