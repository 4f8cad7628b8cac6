"""Registered names: the ResNet family of He et al. 2015/2016 and its plain twins.

Each entry only sets hyperparameters; the architecture lives in `resnet.ResNet`.
"""

from __future__ import annotations

from .registry import ModelSpec, register_model
from .resnet import ResNet

_IMAGENET = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_IMAGENET_DEFAULTS = {"num_classes": 1000, "stem": "imagenet", "shortcut": "B"}
_CIFAR_WIDTHS = {"widths": (16, 32, 64), "stem_width": 16}
_CIFAR_DEFAULTS = {"num_classes": 10, "stem": "cifar"}


def _imagenet(name: str, depth: int, shortcut: str) -> None:
    block, layers = _IMAGENET[depth]
    kind = "plain twin (no shortcuts)" if shortcut == "none" else "torchvision-compatible"
    register_model(
        ModelSpec(
            name=name,
            cls=ResNet,
            family="imagenet",
            depth=depth,
            fixed={"block": block, "layers": layers},
            defaults={**_IMAGENET_DEFAULTS, "shortcut": shortcut},
            input_size=(3, 224, 224),
            description=f"ImageNet {block} ResNet-{depth}, {kind}",
        )
    )


for _d in _IMAGENET:
    _imagenet(f"resnet{_d}", _d, "B")
for _d in (18, 34, 50):
    _imagenet(f"plain{_d}", _d, "none")


def _cifar(name: str, depth: int, shortcut: str) -> None:
    # 6n + 2 layers: three stages of n basic units (2n conv layers each), stem conv and fc.
    n = (depth - 2) // 6
    register_model(
        ModelSpec(
            name=name,
            cls=ResNet,
            family="cifar",
            depth=depth,
            fixed={"block": "basic", "layers": (n, n, n), **_CIFAR_WIDTHS},
            defaults={**_CIFAR_DEFAULTS, "shortcut": shortcut},
            input_size=(3, 32, 32),
            description=f"CIFAR ResNet-{depth} (He et al. 2015), "
            + ("plain twin" if shortcut == "none" else "option A"),
        )
    )


for _d in (20, 32, 44, 56, 110, 1202):
    _cifar(f"resnet{_d}", _d, "A")
for _d in (20, 32, 44, 56, 110):
    _cifar(f"plain{_d}", _d, "none")


def _preact(name: str, depth: int) -> None:
    # He et al. 2016: 110 uses basic units (6n+2), 164/1001 bottleneck units (9n+2).
    if depth == 110:
        block, n, shortcut = "preact_basic", (depth - 2) // 6, "A"
    else:
        block, n, shortcut = "preact_bottleneck", (depth - 2) // 9, "B"
    register_model(
        ModelSpec(
            name=name,
            cls=ResNet,
            family="preact",
            depth=depth,
            fixed={"block": block, "layers": (n, n, n), **_CIFAR_WIDTHS},
            defaults={**_CIFAR_DEFAULTS, "shortcut": shortcut},
            input_size=(3, 32, 32),
            description=f"pre-activation ResNet-{depth} (He et al. 2016), {block.split('_')[1]}",
        )
    )


for _d in (110, 164, 1001):
    _preact(f"preact_resnet{_d}", _d)
