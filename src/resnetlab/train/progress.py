"""Run-folder logging: CSV files, optional TensorBoard, and a progress bar per epoch that turns
into plain log lines when stdout is not a terminal."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

EPOCH_FIELDS = [
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_err",
    "val_loss",
    "val_top1_err",
    "val_top5_err",
    "test_loss",
    "test_top1_err",
    "test_top5_err",
    "img_per_s",
    "epoch_time_s",
    "wall_time_s",
]
STEP_FIELDS = ["step", "epoch", "lr", "loss", "err", "img_per_s"]


class CsvLog:
    """Append rows to a CSV file with a fixed header; `truncate(keep)` rewrites it with the rows
    a predicate keeps (used on resume to drop rows written after the last checkpoint)."""

    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = path, fields
        if not path.exists():
            with open(path, "w", newline="") as fh:
                csv.writer(fh).writerow(fields)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, self.fields).writerow({k: _fmt(row.get(k)) for k in self.fields})

    def truncate(self, keep) -> None:
        with open(self.path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if keep(r)]
        with open(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, self.fields)
            w.writeheader()
            w.writerows(rows)


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


class Progress:
    """Per-epoch progress: a tqdm bar on a TTY ("bar"), log lines every `log_every` steps ("log"),
    or nothing ("none"). "auto" picks bar or log from `sys.stdout.isatty()`."""

    def __init__(self, mode: str, log_every: int, total_epochs: int):
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "log"
        self.mode, self.log_every, self.total_epochs = mode, log_every, total_epochs
        self.bar = None

    def info(self, msg: str) -> None:
        if self.mode != "none":
            if self.bar is not None:
                self.bar.write(msg)
            else:
                print(msg, flush=True)

    def start_epoch(self, epoch: int, total: int, initial: int = 0) -> None:
        self.epoch, self.total, self.t0 = epoch, total, time.perf_counter()
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=f"epoch {epoch + 1}/{self.total_epochs}",
                unit="batch",
                dynamic_ncols=True,
                leave=False,
            )

    def update(self, batch: int, loss: float, err: float, img_per_s: float) -> None:
        if self.mode == "bar" and self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{loss:.3f}", err=f"{err:.1f}%", ips=f"{img_per_s:.0f}", refresh=False
            )
        elif self.mode == "log" and ((batch + 1) % self.log_every == 0 or batch + 1 == self.total):
            left = (self.total - batch - 1) * (time.perf_counter() - self.t0) / max(1, batch + 1)
            print(
                f"epoch {self.epoch + 1}/{self.total_epochs} batch {batch + 1}/{self.total} "
                f"loss {loss:.4f} err {err:.2f}% {img_per_s:.0f} img/s eta {left:.0f}s",
                flush=True,
            )

    def end_epoch(self, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.mode == "none":
            return
        parts = [
            f"epoch {row['epoch']}/{self.total_epochs}",
            f"train loss {row['train_loss']:.4f} err {row['train_err']:.2f}%",
        ]
        for split in ("val", "test"):
            if row.get(f"{split}_top1_err") is not None:
                parts.append(
                    f"{split} top-1 {row[f'{split}_top1_err']:.2f}% top-5 {row[f'{split}_top5_err']:.2f}%"
                )
        parts.append(
            f"lr {row['lr']:.4g}  {row['img_per_s']:.0f} img/s  {row['epoch_time_s']:.1f}s"
        )
        print(" | ".join(parts), flush=True)


def _after_existing_event_files(log_dir: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with the second it
    was created in (then host and pid). A resumed run that starts in the same second as the run it
    continues could sort first and lose the purge; wait (at most a second) until its file sorts last."""
    stamps = []
    for f in Path(log_dir).glob("events.out.tfevents.*"):
        part = f.name.split(".")[3]
        if part.isdigit():
            stamps.append(int(part))
    if stamps:
        wait = max(stamps) + 1 - time.time()
        if wait > 0:
            time.sleep(wait)


class TensorBoard:
    """Scalars to TensorBoard when the `tensorboard` package is installed; off otherwise.

    Every scalar is logged against the global optimiser step (as Lightning does), so a resumed run
    can pass `purge_step` = the first step after its checkpoint, and TensorBoard drops what a killed process
    wrote after that checkpoint instead of showing it twice.
    """

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        self.writer = None
        self.note = ""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.note = "TensorBoard events off (pip install tensorboard to get them)"
            return
        if purge_step is not None:
            _after_existing_event_files(log_dir)
        try:
            self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)
        except OSError as exc:  # an unwritable folder must not kill the training run
            self.note = f"TensorBoard events off: cannot write {log_dir} ({exc})"
            return
        self.note = f"TensorBoard events in {log_dir} (tensorboard --logdir {log_dir})"

    def scalars(self, step: int, values: dict[str, Any], prefix: str) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
