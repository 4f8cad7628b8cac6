"""One ResNet class for the whole family: ImageNet (torchvision-compatible), CIFAR (He et al.
2015, Sec. 4.2), pre-activation (He et al. 2016), and every plain twin (shortcut="none")."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from ..layers import check_shortcut, get_norm_layer, make_act

BLOCKS = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}
STEMS = ("imagenet", "cifar")


class ResNet(nn.Module):
    """A stem, `len(layers)` stages of residual units, global average pooling and a linear head.

    block: "basic" | "bottleneck" | "preact_basic" | "preact_bottleneck".
    layers: units per stage; widths: planes per stage (output channels = planes × expansion).
    stem: "imagenet" (7×7/2 conv + max-pool, total stride 32 with four stages) or "cifar"
    (3×3/1 conv, no pool). shortcut: "A" | "B" | "C" | "none" (plain twin).
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_width: int | None = None,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        shortcut: str = "B",
        zero_init_last: bool = False,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = False,
        norm_layer: str | Callable[[int], nn.Module] | None = None,
        act_layer: str | type[nn.Module] | None = None,
    ):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
        if stem not in STEMS:
            raise ValueError(
                f"unknown stem {stem!r}; choose 'imagenet' (7x7/2 + max-pool, for >=64 px "
                "images) or 'cifar' (3x3/1, no pool, for small images)"
            )
        check_shortcut(shortcut)
        if not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        if len(layers) != len(widths) or any(n < 1 for n in layers):
            raise ValueError(f"layers {tuple(layers)} must give >= 1 unit for each of the widths")
        block_cls = BLOCKS[block]
        norm = get_norm_layer(norm_layer)
        self.preact = block.startswith("preact")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        stem_width = stem_width or widths[0]

        # Stem. Pre-activation nets start with a bare conv: the first unit normalises its input.
        k, s, p = (7, 2, 3) if stem == "imagenet" else (3, 1, 1)
        self.conv1 = nn.Conv2d(in_chans, stem_width, k, stride=s, padding=p, bias=False)
        self.bn1 = nn.Identity() if self.preact else norm(stem_width)
        self.relu = nn.Identity() if self.preact else make_act(act_layer)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        self.stem_stride = 4 if stem == "imagenet" else 1

        # Stages: stride 2 at the start of every stage but the first (He et al. 2015).
        total_units = sum(layers)
        unit = 0
        in_chs = stem_width
        self.stage_names: list[str] = []
        for i, (n, planes) in enumerate(zip(layers, widths)):
            units = []
            for j in range(n):
                # Stochastic depth: drop probability grows linearly with depth (Huang et al. 2016).
                dp = drop_path_rate * (unit + 1) / total_units
                kwargs = dict(
                    shortcut=shortcut,
                    norm_layer=norm,
                    act_layer=act_layer or nn.ReLU,
                    drop_path=dp,
                    groups=groups,
                    base_width=width_per_group,
                )
                if block_cls is Bottleneck:
                    kwargs["stride_in_1x1"] = stride_in_1x1
                stride = 2 if (i > 0 and j == 0) else 1
                units.append(block_cls(in_chs, planes, stride, **kwargs))
                in_chs = planes * block_cls.expansion
                unit += 1
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*units))
            self.stage_names.append(name)
        self.total_stride = self.stem_stride * 2 ** (len(layers) - 1)
        self.num_features = in_chs

        # Pre-activation nets end with the BN-ReLU that the last unit left out.
        self.final_norm = norm(in_chs) if self.preact else nn.Identity()
        self.final_act = make_act(act_layer) if self.preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc: nn.Module = nn.Linear(in_chs, num_classes) if num_classes else nn.Identity()

        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        if self.conv1.weight.is_meta:  # shape-only model (FLOP counting): nothing to fill
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for _, unit in self.residual_units():
                unit.zero_init_last()

    # ---- the common interface ----------------------------------------------------------
    def residual_units(self) -> list[tuple[str, nn.Module]]:
        """All residual units in forward order, as (qualified name, module)."""
        return [
            (f"{stage}.{j}", unit)
            for stage in self.stage_names
            for j, unit in enumerate(getattr(self, stage))
        ]

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [(name, getattr(self, name)) for name in self.stage_names]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for `num_classes` (0: no head)."""
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.fc

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError for inputs this network cannot take, before torch would fail deep inside."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            hint = "; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else ""
            raise ValueError(
                f"expected a 4-D input (batch, channels, height, width), got shape "
                f"{tuple(x.shape)}{hint}"
            )
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected {self.in_chans} input channels, got {x.shape[1]}; "
                f"pass in_chans={x.shape[1]} when creating the model"
            )
        h, w = x.shape[-2], x.shape[-1]
        if h < self.total_stride or w < self.total_stride:
            hint = " or pass stem='cifar'" if self.stem_stride > 1 else ""
            raise ValueError(
                f"input {h}x{w} is too small for this network: it downsamples by "
                f"{self.total_stride}, so it needs at least {self.total_stride}x"
                f"{self.total_stride}; resize the images{hint}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        x = self.final_act(self.final_norm(x))
        return x  # (N, num_features, H / total_stride, W / total_stride)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # (N, num_features)
        if self.drop_rate > 0:
            x = nn.functional.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
