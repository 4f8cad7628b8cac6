"""Training throughput, side by side in one process: the same architecture trained by

  (a) the standard user pipeline: torchvision Dataset + transforms + DataLoader, fp32;
  (b) the same, hand-tuned: the precision the CPU/GPU is fast in (bf16 autocast where it has
      native bf16, else fp32) + channels_last (`--tuned-precision bf16` forces bf16);
  (c) resnetlab's default path: the data set as one uint8 tensor on the device, batched tensor
      augmentation (resnetlab.data.InMemoryLoader), automatic precision/layout.

Workloads: resnet20 at 28 px (Fashion-MNIST; torchvision has no CIFAR ResNet, so (a)/(b) use
resnetlab's resnet20 there) and resnet50 at 224 px (torchvision's resnet50 in (a)/(b), resnetlab's
in (c); Fashion-MNIST upsampled to 224 px, 3 channels). Every config does the same optimiser
steps (SGD, momentum 0.9) on the same batch size; time excludes `--warmup` steps. The three
configs take turns for `--repeats` rounds and the figures are medians over the rounds.

It also prints the machine's ceiling: the training FLOPs per image (forward + backward, counted
by torch.utils.flop_counter) against the matrix-multiply rate this machine reaches in fp32 and in
bf16, i.e. the images/s that no pipeline can beat without doing less arithmetic.

    python benchmarks/train_throughput.py                      # both workloads
    python benchmarks/train_throughput.py --workloads resnet20 --steps 30 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from resnetlab import create_model
from resnetlab.data import AugmentConfig, InMemoryLoader, load_dataset
from resnetlab.reporting import machine_info
from resnetlab.train.checkpoint import atomic_write_text
from resnetlab.train.engine import autocast, resolve_precision

WORKLOADS = {
    # name: (image px, channels, batch size, crop padding px)
    "resnet20": (28, 1, 128, 2),
    "resnet50": (224, 3, 32, 16),
}


class PilDataset(torch.utils.data.Dataset):
    """What a typical user writes: uint8 arrays -> PIL -> torchvision transforms per sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images.numpy(), labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i, 0])), int(self.labels[i])


def standard_loader(data, px, chans, batch, pad, workers):
    from torchvision import transforms as T

    tf = [T.Resize(px)] if px != 28 else []
    tf += [T.RandomCrop(px, padding=pad), T.RandomHorizontalFlip()]
    if chans == 3:
        tf.append(T.Grayscale(3))
    tf += [T.ToTensor(), T.Normalize([data.mean[0]] * chans, [data.std[0]] * chans)]
    ds = PilDataset(data.images, data.labels, T.Compose(tf))
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def in_memory_loader(data, px, chans, batch, pad, device, channels_last):
    images = data.images
    if px != images.shape[-1]:  # upsample once, up front: the set stays one uint8 tensor
        images = (
            F.interpolate(images.float(), size=(px, px), mode="bilinear", align_corners=False)
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
    if chans == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    ds = type(data)(images, data.labels, data.classes, data.mean * chans, data.std * chans)
    return InMemoryLoader(
        ds,
        batch,
        train=True,
        augment=AugmentConfig(pad, True),
        device=device,
        channels_last=channels_last,
    )


def make_model(source: str, workload: str, chans: int):
    if source == "torchvision":
        import torchvision

        return getattr(torchvision.models, workload)(num_classes=10)
    return create_model(workload, in_chans=chans, num_classes=10)


def gemm_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 7) -> float:
    """The multiply rate this machine reaches on a large square matmul: the arithmetic ceiling.
    The best of `reps` timings, since a ceiling is what the hardware can do, not what a noisy
    neighbour leaves of it."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for _ in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times[1:]) / 1e9


def training_gflop_per_image(model, px: int, chans: int) -> float:
    """Forward + backward FLOPs of one training image (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y = torch.randn(2, chans, px, px), torch.tensor([0, 1])
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2 / 1e9


def time_training(model, loader, device, precision, channels_last, warmup, steps, forward=None):
    """Images/s over `steps` optimiser steps after `warmup` untimed ones. `forward`: what to call
    instead of the model (a torch.compile'd wrapper of it)."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = model if forward is None else forward
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    done, seen, t0 = 0, 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                t0 = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                loss = F.cross_entropy(forward(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if done >= warmup:
                seen += y.numel()
            done += 1
            if done == warmup + steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed steps per config (default 20 for resnet20, 4 for resnet50)",
    )
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--repeats", type=int, default=3, help="rounds of (a), (b), (c); medians are reported"
    )
    p.add_argument("--images", type=int, default=4096, help="training images used")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for (a)/(b)")
    p.add_argument(
        "--compile", action="store_true", help="also time (d): resnetlab's path + torch.compile"
    )
    p.add_argument("--tuned-precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args()

    device = torch.device(args.device)
    auto = resolve_precision("auto", device)
    tuned = auto if args.tuned_precision == "auto" else args.tuned_precision
    data = load_dataset("fashion-mnist", train_subset=args.images).train
    info = machine_info()
    print(
        f"{info['cpu']}, {torch.get_num_threads()} threads, torch {torch.__version__}, device {device}; auto precision: {auto}"
    )
    peak = {"fp32": gemm_gflops(device, torch.float32)}
    peak["bf16"] = gemm_gflops(device, torch.bfloat16, n=2048 if device.type == "cpu" else 4096)
    print(
        f"matmul rate: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s "
        f"(bf16/fp32 = {peak['bf16'] / peak['fp32']:.2f}x)\n",
        flush=True,
    )
    results, summary = [], []
    for workload in args.workloads:
        px, chans, batch, pad = WORKLOADS[workload]
        steps = args.steps or (20 if workload == "resnet20" else 4)
        tv_source = "torchvision" if workload == "resnet50" else "resnetlab"
        configs = {
            "a": (f"{tv_source} model, DataLoader + transforms, fp32", tv_source, "loader", "fp32", False),
            "b": (f"{tv_source} model, DataLoader + transforms, {tuned} + channels_last", tv_source, "loader", tuned, True),
            "c": (f"resnetlab default: in-memory uint8 + batched aug, {auto} + channels_last", "resnetlab", "memory", auto, True),
        }  # fmt: skip
        if args.compile:
            configs["d"] = ("resnetlab --compile: (c) + torch.compile", "resnetlab", "memory", auto, True)  # fmt: skip
        gflop = training_gflop_per_image(make_model("resnetlab", workload, chans), px, chans)
        prepared = {}
        for key, (_, source, pipe, _precision, cl) in configs.items():
            torch.manual_seed(0)
            model = make_model(source, workload, chans)
            if pipe == "loader":
                loader = standard_loader(data, px, chans, batch, pad, args.workers)
            else:
                loader = in_memory_loader(data, px, chans, batch, pad, device, cl)
            # compile wraps the module; time_training moves and lays it out in place as for (c)
            compiled = torch.compile(model) if key == "d" else None
            prepared[key] = (model, loader, compiled)
        rates: dict[str, list[float]] = {key: [] for key in configs}
        for r in range(args.repeats):
            for key, (label, _source, _pipe, precision, cl) in configs.items():
                model, loader, compiled = prepared[key]
                rate = time_training(
                    model, loader, device, precision, cl, args.warmup, steps, forward=compiled
                )
                rates[key].append(rate)
                print(
                    f"{workload} @ {px}px batch {batch}  round {r + 1}/{args.repeats} ({key}) {label:68s} {rate:8.1f} img/s",
                    flush=True,
                )
        med = {key: statistics.median(v) for key, v in rates.items()}
        for key, (label, *_rest) in configs.items():
            results.append(
                {
                    "workload": workload,
                    "config": key,
                    "label": label,
                    "img_per_s_median": med[key],
                    "img_per_s_rounds": rates[key],
                    "steps": steps,
                    "batch": batch,
                }
            )
        ceiling = {p: peak[p] / gflop for p in peak}
        line = (
            f"{workload}: medians "
            + "  ".join(f"({k}) {v:.1f}" for k, v in med.items())
            + f" img/s  ->  (c)/(a) = {med['c'] / med['a']:.2f}x   (c)/(b) = {med['c'] / med['b']:.2f}x"
            + (f"   (d)/(a) = {med['d'] / med['a']:.2f}x" if "d" in med else "")
            + "\n"
            f"{workload}: {gflop:.3f} training GFLOP per image; at the matmul rate the ceiling is "
            f"{ceiling['fp32']:.0f} img/s in fp32, {ceiling['bf16']:.0f} img/s in bf16; "
            f"(c) runs at {100 * med['c'] * gflop / peak.get(auto, peak['fp32']):.0f} % of the {auto} rate; "
            f"3x (a) would need {3 * med['a']:.0f} img/s"
        )
        print(line + "\n", flush=True)
        summary.append(
            {
                "workload": workload,
                "median_img_per_s": med,
                "c_over_a": med["c"] / med["a"],
                "c_over_b": med["c"] / med["b"],
                **({"d_over_a": med["d"] / med["a"]} if "d" in med else {}),
                "train_gflop_per_image": gflop,
                "ceiling_img_per_s": ceiling,
            }
        )
    if args.json:
        atomic_write_text(
            args.json,
            json.dumps(
                {
                    "machine": info,
                    "device": str(device),
                    "matmul_gflops": peak,
                    "repeats": args.repeats,
                    "summary": summary,
                    "results": results,
                },
                indent=2,
            ),
        )


if __name__ == "__main__":
    main()
