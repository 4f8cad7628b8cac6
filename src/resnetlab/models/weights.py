"""Pretrained weights: where they come from, how they are checked, how they fit a model.

Two kinds of source, one entry point (`create_model(name, weights=...)` or `load_pretrained`):

* torchvision's published ImageNet ResNets by enum name (`"IMAGENET1K_V1"`, `"IMAGENET1K_V2"`,
  `"DEFAULT"`). Their metadata (file URL, categories, mean/std, resize/crop, accuracy, GFLOPS)
  is read from the installed torchvision's `ResNet*_Weights` enums, so there is no second copy
  of those tables here. The file is looked up in the torch hub cache under torchvision's own
  name `<arch>-<first 8 hex of its SHA-256>.pth`, downloaded with torch.hub's helper when online,
  and refused when its SHA-256 does not start with the prefix in its name.
* files: resnetlab's safetensors (metadata in the header: architecture, kwargs, classes,
  normalisation, data, metrics, the command that made them) or a torchvision-format `.pth`
  state dict, read with `torch.load(weights_only=True)` so that no code in it can run.

A pretrained model may be asked for another input width (`in_chans`: the first conv is adapted,
timm's rule) or another number of classes (`num_classes`: the head is replaced). Both are
reported in a `LoadReport`, kept on the model as `model.pretrained_cfg["load_report"]` and
logged as a warning; any other mismatch is a ValueError listing the keys.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Our registered names that are torchvision-compatible (same state_dict keys) and have
# published torchvision weights; the value is the torchvision enum class that describes them.
TORCHVISION_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
}
OFFLINE_ENV = "RESNETLAB_OFFLINE"  # set to 1 to never try a download
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext


# --------------------------------------------------------------------------- torchvision enums


@dataclass(frozen=True)
class PretrainedWeights:
    """One set of published weights, described as data (torchvision's `Weights` fields)."""

    arch: str
    tag: str
    url: str
    categories: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int
    crop_size: int
    interpolation: str
    metrics: dict[str, dict[str, float]]
    gflops: float | None
    num_params: int | None
    recipe: str | None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        m = _HASH_IN_NAME.search(self.filename)
        if not m:
            raise ValueError(f"{self.filename} carries no SHA-256 prefix in its name")
        return m.group(1)

    def meta(self) -> dict[str, Any]:
        """The metadata that travels with a model loaded from these weights."""
        return {
            "source": "torchvision",
            "model": self.arch,
            "tag": self.tag,
            "url": self.url,
            "file": self.filename,
            "sha256_prefix": self.sha256_prefix,
            "categories": list(self.categories),
            "num_classes": len(self.categories),
            "in_chans": 3,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize_size": self.resize_size,
            "crop_size": self.crop_size,
            "image_size": [self.crop_size, self.crop_size],
            "interpolation": self.interpolation,
            "metrics": self.metrics,
            "gflops": self.gflops,
            "num_params": self.num_params,
            "recipe": self.recipe,
        }


# arch -> {tag: PretrainedWeights}; filled lazily from torchvision (tests may add entries).
_TABLE: dict[str, dict[str, PretrainedWeights]] = {}
_DEFAULT_TAG: dict[str, str] = {}


def _from_torchvision(arch: str) -> None:
    import torchvision.models as tvm

    enum = getattr(tvm, TORCHVISION_WEIGHTS[arch])
    table = {}
    for w in enum:
        tf = w.transforms()  # ImageClassification preset: the preprocessing the weights expect
        table[w.name] = PretrainedWeights(
            arch=arch,
            tag=w.name,
            url=w.url,
            categories=tuple(w.meta["categories"]),
            mean=tuple(tf.mean),
            std=tuple(tf.std),
            resize_size=int(tf.resize_size[0]),
            crop_size=int(tf.crop_size[0]),
            interpolation=str(tf.interpolation.value),
            metrics=dict(w.meta.get("_metrics", {})),
            gflops=w.meta.get("_ops"),
            num_params=w.meta.get("num_params"),
            recipe=w.meta.get("recipe"),
        )
    _TABLE[arch] = table
    _DEFAULT_TAG[arch] = enum.DEFAULT.name


def pretrained_tags(arch: str) -> dict[str, PretrainedWeights]:
    """The published weights for a model name, by tag (empty when there are none)."""
    if arch not in _TABLE and arch in TORCHVISION_WEIGHTS:
        _from_torchvision(arch)
    return dict(_TABLE.get(arch, {}))


def get_pretrained(arch: str, tag: str) -> PretrainedWeights:
    """Look up `arch` + tag ("DEFAULT" = the best published weights). ValueError when unknown."""
    tags = pretrained_tags(arch)
    if not tags:
        have = ", ".join(TORCHVISION_WEIGHTS)
        raise ValueError(
            f"no published weights for {arch!r} (torchvision publishes ImageNet weights for "
            f"{have}); pass weights=PATH to a resnetlab .safetensors or a .pth state dict"
        )
    if tag == "DEFAULT":
        tag = _DEFAULT_TAG.get(arch, next(iter(tags)))
    if tag not in tags:
        raise ValueError(
            f"unknown weights {tag!r} for {arch}; choose one of DEFAULT, {', '.join(tags)}, "
            "or a file path"
        )
    return tags[tag]


def list_pretrained() -> list[str]:
    """All `arch.TAG` names with published weights."""
    return [f"{a}.{t}" for a in TORCHVISION_WEIGHTS for t in pretrained_tags(a)]


def hub_checkpoint_dir() -> Path:
    """Where torch hub (and torchvision) keep weight files: `$TORCH_HOME/hub/checkpoints`."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha256_prefix(path: str | os.PathLike, prefix: str, url: str | None = None) -> None:
    """ValueError unless the file's SHA-256 starts with `prefix` (torch.hub's file-name hash)."""
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        where = f" from {url}" if url else ""
        raise ValueError(
            f"{path}: SHA-256 starts with {digest[: len(prefix)]} but the file name promises "
            f"{prefix}; the file is corrupt or not the published one. Delete it and fetch it "
            f"again{where}"
        )


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").lower() not in ("", "0", "false", "no")


def fetch_pretrained(
    info: PretrainedWeights, *, download: bool | None = None, progress: bool = True
) -> Path:
    """Path of the checked weight file in the hub cache, downloading it when absent.

    download: None = try unless $RESNETLAB_OFFLINE is set; False = never. Offline and absent:
    FileNotFoundError naming the exact file, the folder to put it in, and its URL.
    """
    folder = hub_checkpoint_dir()
    path = folder / info.filename
    if path.is_file():
        check_sha256_prefix(path, info.sha256_prefix, info.url)
        return path
    how = (
        f"{info.arch} weights {info.tag} are not in the torch hub cache: put {info.filename} "
        f"(from {info.url}) into {folder}/ (or set $TORCH_HOME so that <TORCH_HOME>/hub/"
        f"checkpoints holds it)"
    )
    if download is False or (download is None and _offline()):
        raise FileNotFoundError(f"{how}; downloads are off")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        # torch.hub writes to a temporary file, checks the hash prefix, then moves it in place.
        torch.hub.download_url_to_file(
            info.url, str(path), hash_prefix=info.sha256_prefix, progress=progress
        )
    except RuntimeError as err:  # hash mismatch of the downloaded bytes
        raise ValueError(f"download of {info.url} failed its SHA-256 check ({err})") from None
    except OSError as err:  # URLError, socket errors: offline
        raise FileNotFoundError(f"{how}; the download failed ({err})") from None
    return path


# --------------------------------------------------------------------------- reading files


def read_state_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, metadata) from a safetensors file or a torch `.pth`/`.pt` state dict.

    `.pth` files load with weights_only=True; a dict holding "model" or "state_dict" (training
    checkpoints, torchvision's references) is unwrapped and a DataParallel "module." prefix
    dropped. Metadata is empty for `.pth` files.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder; pass a weights file (a run folder's "
            "checkpoints/last.safetensors, or a file written by `resnetlab export`)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from ..train.checkpoint import load_weights

        return load_weights(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path}: cannot read it as a state dict with weights_only=True ({first}); only "
            "plain tensors are accepted, never pickled code"
        ) from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    return state, {"source": "pth", "file": str(path)}


def resolve_weights(
    arch: str, weights: str | os.PathLike, *, download: bool | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, metadata) for `weights`: a published tag of `arch` or a file path."""
    text = str(weights)
    is_tag = re.fullmatch(r"[A-Z][A-Z0-9_]*", text) is not None and not Path(text).exists()
    if is_tag:
        info = get_pretrained(arch, text)
        path = fetch_pretrained(info, download=download)
        state, _ = read_state_file(path)
        meta = info.meta()
        meta["path"] = str(path)
        return state, meta
    state, meta = read_state_file(text)
    meta = dict(meta)
    meta.setdefault("source", "resnetlab")
    meta["path"] = str(text)
    if "classes" in meta and "categories" not in meta:
        meta["categories"] = meta["classes"]
    return state, meta


# --------------------------------------------------------------------------- fitting a model


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """First-conv weight (out, C, kh, kw) adapted to `in_chans` input channels.

    One channel: the sum of the C filters, so a grey image x gives exactly the response the
    original gave to x repeated C times. N channels: the C filters repeated and cut to N, scaled
    by C/N so the expected activation keeps its size (timm's `adapt_input_conv`, with C = 3:
    sum the RGB filters; repeat and scale by 3/N).
    """
    out, c, kh, kw = weight.shape
    if in_chans == c:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_chans / c)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (c / in_chans)


@dataclass
class LoadReport:
    """What happened when pretrained weights met a model."""

    source: str
    loaded: int = 0
    adapted: list[str] = field(default_factory=list)  # human-readable adaptations
    skipped: list[str] = field(default_factory=list)  # file keys not loaded (replaced head)
    missing: list[str] = field(default_factory=list)  # model keys absent from the file
    unexpected: list[str] = field(default_factory=list)  # file keys the model lacks
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, file, model

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"loaded {self.loaded} tensors from {self.source}"]
        lines += [f"adapted: {a}" for a in self.adapted]
        if self.skipped:
            lines.append(f"not loaded (head replaced): {', '.join(self.skipped)}")
        lines += _key_lines("missing from the file", self.missing)
        lines += _key_lines("unexpected in the file", self.unexpected)
        lines += _key_lines(
            "shape differs (file vs model)",
            [f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in self.mismatched],
        )
        return "\n".join(lines)


def _key_lines(title: str, keys: list[str], limit: int = 8) -> list[str]:
    if not keys:
        return []
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return [f"{title} ({len(keys)}): {', '.join(keys[:limit])}{more}"]


def _module_name(model: nn.Module, module: nn.Module) -> str | None:
    return next((n for n, m in model.named_modules() if m is module), None)


def head_name(model: nn.Module) -> str | None:
    """Qualified name of the classifier module ("fc" for ResNets, "head" for skip stacks)."""
    if hasattr(model, "get_classifier"):
        return _module_name(model, model.get_classifier())
    for name in ("fc", "head", "classifier"):
        if isinstance(getattr(model, name, None), nn.Module):
            return name
    return None


def first_conv_name(model: nn.Module) -> str | None:
    """Qualified name of the first convolution (the one that sees the image)."""
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def load_pretrained(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str = "weights",
) -> LoadReport:
    """Load `state` into `model`, adapting the first conv's input channels and dropping a head
    of another size; every other mismatch is a ValueError that lists the keys.

    BatchNorm `num_batches_tracked` counters missing from old files are left at their initial
    value (torchvision's published files predate them).
    """
    report = LoadReport(source)
    target = model.state_dict()
    head = head_name(model)
    conv = first_conv_name(model)
    state = dict(state)

    conv_key = f"{conv}.weight" if conv else None
    if conv_key in state and conv_key in target:
        w, want = state[conv_key], target[conv_key]
        if w.dim() == 4 and w.shape[0] == want.shape[0] and w.shape[1] != want.shape[1]:
            state[conv_key] = adapt_input_conv(w, want.shape[1])
            rule = (
                "sum of the filters"
                if want.shape[1] == 1
                else f"repeated, scaled by {w.shape[1]}/{want.shape[1]}"
            )
            report.adapted.append(
                f"{conv_key} from {w.shape[1]} to {want.shape[1]} input channels ({rule})"
            )
    if head:
        head_keys = [k for k in state if k.startswith(head + ".")]
        differs = any(k in target and state[k].shape != target[k].shape for k in head_keys)
        model_head = [k for k in target if k.startswith(head + ".")]
        if differs or (head_keys and not model_head):
            report.skipped = sorted(head_keys)
            for k in head_keys:
                del state[k]
            n_out = target[f"{head}.weight"].shape[0] if f"{head}.weight" in target else 0
            report.adapted.append(f"head {head} replaced (new, random, {n_out} outputs)")

    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif value.shape != target[key].shape:
            report.mismatched.append((key, tuple(value.shape), tuple(target[key].shape)))
    skipped = set(report.skipped)
    report.missing = [
        k
        for k in target
        if k not in state
        and not k.endswith("num_batches_tracked")
        and not (head and k.startswith(head + ".") and skipped)
    ]
    if not report.ok:
        raise ValueError(
            f"{source} does not fit {type(model).__name__}:\n{report}\n"
            "check the architecture (model name and kwargs) the weights were trained with"
        )
    fit = {k: v for k, v in state.items() if k in target}
    model.load_state_dict(fit, strict=False)
    report.loaded = len(fit)
    return report


def create_pretrained(name: str, weights: str | os.PathLike, **kwargs: Any) -> nn.Module:
    """`create_model(name, weights=...)`: build `name` so that it fits the weights (their
    num_classes/in_chans/kwargs unless given), load them, adapt what was asked to differ."""
    from .registry import create_model, get_model_spec

    get_model_spec(name)  # an unknown name fails here, before any file is looked for
    state, meta = resolve_weights(name, weights)
    file_model = meta.get("model")
    if meta.get("source") == "resnetlab" and file_model and file_model != name:
        raise ValueError(
            f"{weights} holds {file_model!r} weights, not {name!r}; use "
            f"create_model({file_model!r}, weights=...)"
        )
    build = dict(meta.get("model_kwargs") or {})
    build.update(kwargs)
    for key in ("num_classes", "in_chans"):
        if key not in build and key in meta:
            build[key] = int(meta[key])
    if "num_classes" not in build and meta.get("source") == "pth":
        fc = state.get("fc.weight")
        if fc is not None:
            build["num_classes"] = int(fc.shape[0])
    model = create_model(name, **build)
    report = load_pretrained(model, state, source=str(meta.get("path", weights)))
    cfg = dict(meta)
    changed_head = bool(report.skipped)
    if changed_head:
        cfg["categories"] = None
        cfg["num_classes"] = int(build.get("num_classes", 0))
    if "in_chans" in build and int(build["in_chans"]) != int(
        meta.get("in_chans", build["in_chans"])
    ):
        # One grey channel through summed filters: normalise with the mean of the statistics.
        n = int(build["in_chans"])
        for key in ("mean", "std"):
            if cfg.get(key):
                avg = sum(cfg[key]) / len(cfg[key])
                cfg[key] = [avg] * n
        cfg["in_chans"] = n
    cfg["load_report"] = str(report)
    model.pretrained_cfg = cfg
    if report.adapted:
        logger.warning("%s: %s", name, "; ".join(report.adapted))
    return model
