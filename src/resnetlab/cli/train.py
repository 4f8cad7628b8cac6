"""`resnetlab train MODEL --data NAME [options]`: train a model, writing a run folder."""

from __future__ import annotations

import argparse
import sys

HELP = "train a model on a data set (run folder with metrics, checkpoints, exact resume)"

# flag dest -> TrainConfig flat key (same name unless listed)
_RENAME = {"tta": "tta_flip"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        nargs="?",
        help="model name (see `resnetlab models`), or skip_mlp / skip_cnn with --model-kw width=.. depth=..",
    )
    p.add_argument(
        "--data", help="fashion-mnist | mnist | cifar10 | cifar100 | digits | folder:PATH"
    )
    p.add_argument(
        "--config",
        help="YAML/JSON file with defaults (sections model/data/optim/run, or flat keys); flags override",
    )
    p.add_argument(
        "--model-kw",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model keyword (repeatable), e.g. shortcut=B",
    )
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", help="folder holding the data files (searched first)")
    g.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="download through torchvision if not found locally",
    )
    g.add_argument("--train-subset", type=int, metavar="N", help="use the first N training images")
    g.add_argument(
        "--test-subset", type=int, metavar="N", help="evaluate on the first N test images"
    )
    g.add_argument(
        "--val-split",
        type=int,
        metavar="N",
        help="hold out N training images for validation (paper: 5000)",
    )
    g.add_argument("--batch-size", type=int)
    g.add_argument(
        "--crop-padding",
        type=int,
        metavar="PX",
        help="random-crop padding (default: 2 px at 28 px, 4 px at 32 px)",
    )
    g.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random horizontal flips",
    )
    g.add_argument("--cutout", type=int, metavar="PX", help="cutout square side (0 = off)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int)
    g.add_argument("--steps", type=int, help="iteration budget (overrides --epochs)")
    g.add_argument("--optimizer", choices=["sgd", "adamw"])
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--momentum", type=float)
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--weight-decay", type=float)
    g.add_argument(
        "--decay-norm-and-bias",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also decay norm weights and biases",
    )
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--schedule", help="constant | step | cosine | onecycle | linear")
    g.add_argument("--milestones", type=float, nargs="+", help="step schedule milestones")
    g.add_argument("--milestone-unit", help="fraction (of the budget) | epoch | step")
    g.add_argument("--gamma", type=float, help="step schedule factor (paper: 0.1)")
    g.add_argument("--warmup-steps", type=int)
    g.add_argument("--warmup", help="linear | constant (paper's ResNet-110 warm-up)")
    g.add_argument("--warmup-factor", type=float)
    g.add_argument("--grad-clip", type=float)
    g = p.add_argument_group("fine-tuning (resnetlab.transfer)")
    g.add_argument(
        "--weights",
        help="start from pretrained weights: a published tag (DEFAULT, IMAGENET1K_V2, ...) or a "
        "weights file (.safetensors / .pth); first conv and head adapt to the data",
    )
    g.add_argument(
        "--freeze",
        choices=["none", "linear", "gradual"],
        help="none: full fine-tune; linear: linear probe (backbone frozen, BN in eval); "
        "gradual: unfreeze one stage from the top every --unfreeze-every epochs",
    )
    g.add_argument("--unfreeze-every", type=int, metavar="EPOCHS")
    g.add_argument(
        "--backbone-lr-scale",
        type=float,
        metavar="X",
        help="learning-rate multiplier for all non-head parameters (e.g. 0.1)",
    )
    g = p.add_argument_group("run")
    g.add_argument("--out", help="run folder (default runs/<model>-<data>-<time>)")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run exactly where it stopped ('auto': --out if it holds one)",
    )
    g.add_argument("--seed", type=int)
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument(
        "--checkpoint-every", type=int, metavar="STEPS", help="also checkpoint every N steps"
    )
    g.add_argument("--log-every", type=int, metavar="STEPS")
    g.add_argument("--eval-every", type=int, metavar="EPOCHS")
    g.add_argument("--progress", choices=["auto", "bar", "log", "none"])
    g.add_argument("--threads", type=int, help="CPU threads for torch")
    g.add_argument(
        "--tta", action="store_true", default=None, help="evaluate with flip test-time augmentation"
    )


def _parse_kw(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--model-kw expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the flags describe (`--config` file first, then flags)."""
    from resnetlab.train import TrainConfig

    base = TrainConfig.load(args.config) if args.config else TrainConfig()
    skip = {"command", "_run", "config", "model_kw", "model", "data"}
    flat = {_RENAME.get(k, k): v for k, v in vars(args).items() if k not in skip and v is not None}
    if args.model:
        flat["model"] = args.model
    if args.data:
        flat["data"] = args.data
    cfg = TrainConfig.from_flat(base, **flat)
    if args.model_kw:
        cfg.model.kwargs = {**cfg.model.kwargs, **_parse_kw(args.model_kw)}
    if not args.resume and not args.model and not args.config:
        raise ValueError("name a MODEL to train (see `resnetlab models`), or --resume RUN_DIR")
    return cfg


def run(args: argparse.Namespace) -> int:
    import signal

    from resnetlab.train import NonFiniteLossError, TrainingInterrupted, train

    cfg = config_from_args(args)
    try:
        result = train(cfg)
    except TrainingInterrupted as err:
        print(f"resnetlab train: {err}", file=sys.stderr)
        return 143 if err.signum == signal.SIGTERM else 130
    except NonFiniteLossError as err:
        print(f"resnetlab train: error: {err}", file=sys.stderr)
        return 3
    except FileNotFoundError as err:
        print(f"resnetlab train: error: {err}", file=sys.stderr)
        return 2
    f = result.final
    parts = [f"done: {f['epochs']} epochs, {f['steps']} steps, {f['wall_time_s']:.0f} s"]
    if f.get("test_top1_err") is not None:
        parts.append(f"test top-1 error {f['test_top1_err']:.2f}%, top-5 {f['test_top5_err']:.2f}%")
    parts.append(f"run folder {result.run_dir}")
    print(" | ".join(parts))
    return 0
