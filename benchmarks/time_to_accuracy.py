"""Time to a target test accuracy on Fashion-MNIST: resnetlab's recipe vs the peer pipeline.

Recipe (all hyperparameters here, in one place; airbench-style tricks that fit a CPU):
  resnetlab resnet20 (option A, 1 input channel), whole set in memory as uint8, batched 2-px
  translate + horizontal flip, SGD Nesterov momentum 0.9, one-cycle to lr 0.2 (25 % warm-up),
  label smoothing 0.1, batch 256, weight decay 5e-4 (none on BN/bias), automatic precision and
  channels_last, flip test-time augmentation.
Peer: what a typical user writes — torchvision resnet18 with a 1-channel first conv and a
  10-class head, DataLoader + ToTensor/Normalize, fp32, Adam 1e-3, batch 128.

Both evaluate on the full 10k test set after every epoch; the clock (training + evaluation,
not data loading from disk) stops at the first epoch whose test accuracy reaches the target.

    python benchmarks/time_to_accuracy.py                     # target 93 %, recipe then peer
    python benchmarks/time_to_accuracy.py --skip-peer --epochs 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F

from resnetlab.data import load_dataset
from resnetlab.train import TrainConfig, train
from resnetlab.train.checkpoint import atomic_write_text

RECIPE = {
    "model": "resnet20",
    "data": "fashion-mnist",
    "batch_size": 256,
    "optimizer": "sgd",
    "lr": 0.2,  # peak of the one-cycle schedule
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,  # not on BN weights / biases
    "label_smoothing": 0.1,
    "schedule": "onecycle",
    "pct_start": 0.25,  # fraction of steps warming up
    "crop_padding": 2,  # px translate
    "flip": True,
    "tta_flip": True,
    "log_every": 100,
}


def run_recipe(args) -> dict:
    out = args.out or tempfile.mkdtemp(prefix="tta-")
    cfg = TrainConfig.from_flat(
        **RECIPE,
        epochs=args.epochs,
        seed=args.seed,
        out=out,
        progress=args.progress,
        train_subset=args.train_subset,
    )
    t0 = time.perf_counter()
    result = train(cfg)
    total = time.perf_counter() - t0
    reached = next((h for h in result.history if 100 - h["test_top1_err"] >= args.target), None)
    return {
        "pipeline": "resnetlab recipe",
        "epochs": len(result.history),
        "final_acc": 100 - result.final["test_top1_err"],
        "reached_at_epoch": reached["epoch"] if reached else None,
        "time_to_target_s": reached["wall_time_s"] if reached else None,
        "total_time_s": total,
        "per_epoch_acc": [round(100 - h["test_top1_err"], 2) for h in result.history],
        "run_dir": str(result.run_dir),
    }


def run_peer(args) -> dict:
    import torchvision
    from torchvision import transforms as T

    splits = load_dataset("fashion-mnist")
    tf = T.Compose([T.ToTensor(), T.Normalize(splits.mean, splits.std)])

    class Pil(torch.utils.data.Dataset):
        def __init__(self, ds):
            self.x, self.y = ds.images.numpy(), ds.labels

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            from PIL import Image

            return tf(Image.fromarray(self.x[i, 0])), int(self.y[i])

    torch.manual_seed(args.seed)
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_dl = torch.utils.data.DataLoader(
        Pil(splits.train), batch_size=128, shuffle=True, num_workers=2
    )
    test_dl = torch.utils.data.DataLoader(Pil(splits.test), batch_size=512, num_workers=2)
    t0, accs, reached = time.perf_counter(), [], None
    for epoch in range(1, args.peer_max_epochs + 1):
        model.train()
        for x, y in train_dl:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_dl:
                correct += (model(x).argmax(1) == y).sum().item()
        acc = 100 * correct / len(splits.test)
        accs.append(round(acc, 2))
        elapsed = time.perf_counter() - t0
        print(f"peer epoch {epoch}: test acc {acc:.2f}%  {elapsed:.0f}s", flush=True)
        if acc >= args.target:
            reached = (epoch, elapsed)
            break
        if elapsed > args.peer_max_seconds:
            break
    return {
        "pipeline": "peer (torchvision resnet18, DataLoader, fp32, Adam)",
        "epochs": len(accs),
        "final_acc": accs[-1],
        "reached_at_epoch": reached[0] if reached else None,
        "time_to_target_s": reached[1] if reached else None,
        "total_time_s": time.perf_counter() - t0,
        "per_epoch_acc": accs,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--target", type=float, default=93.0, help="test accuracy %% to reach")
    p.add_argument(
        "--epochs", type=int, default=10, help="length of the recipe's one-cycle schedule"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-subset", type=int, help="first N training images (smoke tests only)")
    p.add_argument("--out", help="run folder for the recipe (default: a temporary folder)")
    p.add_argument("--progress", default="log", choices=["auto", "bar", "log", "none"])
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--peer-max-epochs", type=int, default=30)
    p.add_argument("--peer-max-seconds", type=float, default=3600)
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args()

    print(
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; target {args.target}% test accuracy"
    )
    results = [run_recipe(args)]
    if not args.skip_peer:
        results.append(run_peer(args))
    for r in results:
        t = (
            f"{r['time_to_target_s']:.0f} s (epoch {r['reached_at_epoch']})"
            if r["time_to_target_s"]
            else f"not reached in {r['epochs']} epochs / {r['total_time_s']:.0f} s"
        )
        print(f"{r['pipeline']:55s} final {r['final_acc']:.2f}%  time to {args.target}%: {t}")
    if args.json:
        atomic_write_text(
            args.json, json.dumps({"target": args.target, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
