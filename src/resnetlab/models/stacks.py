"""Generic deep stacks built from the general skip connection — the chapter's formula as a net.

Layer l computes its linear output Z_l = layer_l(Y_{l-1}); every `span`-th layer adds a skip
from s layers back:  Y_l = f(Z_l + W∘S_{l-s})  (or f(cat[Z_l, W∘S_{l-s}]) with merge="concat"),
where S is the activated output Y (the original proposal) or the linear output Z. Layer 1 takes
the input and has no skip. weight=None gives the plain stack with the same layers.

placement="inside" is the chapter's formula, f applied after the merge (as in the original
residual unit). placement="outside" adds the skip after the activation, Y_l = f(Z_l) + W∘S_{l-s}:
the clean identity path of pre-activation ResNets (He et al. 2016) and of the chapter's scalar
chain (θ = y_{L+1} + w_1 x). With saturating activations only "outside" keeps the first layer's
gradient alive at depth, since "inside" still multiplies every path by ḟ.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import MERGE_MODES, SkipConnection, make_act

SOURCES = ("Y", "Z")
PLACEMENTS = ("inside", "outside")
INITS = ("default", "kaiming", "xavier")


class _SkipStack(nn.Module):
    kind = "dense"

    def __init__(
        self,
        in_features: int,
        width: int,
        depth: int,
        num_classes: int,
        *,
        span: int = 1,
        weight: str | None = "identity",
        source: str = "Y",
        merge: str = "add",
        act: str = "relu",
        scale: float = 0.5,
        init: str = "default",
        placement: str = "inside",
    ):
        super().__init__()
        if depth < 1 or width < 1 or in_features < 1:
            raise ValueError(
                f"depth, width and input size must be >= 1, got {depth}, {width}, {in_features}"
            )
        if span < 1:
            raise ValueError(f"span must be >= 1 layer, got {span}")
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; choose 'Y' (activated) or 'Z' (linear)")
        if merge not in MERGE_MODES:
            raise ValueError(f"unknown merge {merge!r}; choose 'add' or 'concat'")
        if placement not in PLACEMENTS:
            raise ValueError(
                f"unknown placement {placement!r}; choose 'inside' (Y = f(Z + W S)) or "
                "'outside' (Y = f(Z) + W S)"
            )
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        self.in_features, self.width, self.depth = in_features, width, depth
        self.span, self.weight_mode, self.source, self.merge = span, weight, source, merge
        self.placement = placement
        self.act = make_act(act, inplace=False)  # Z_l may be kept as a skip source
        self.act_name = act

        self.layers = nn.ModuleList()
        self.skips = nn.ModuleDict()  # key: index l (1-based) of the layer the skip ends at
        z_width: dict[int, int] = {}
        y_width: dict[int, int] = {0: in_features}
        for layer in range(1, depth + 1):
            self.layers.append(self._make_layer(y_width[layer - 1], width))
            z_width[layer] = width
            y_width[layer] = width
            if weight is not None and layer > span and (layer - 1) % span == 0:
                src = (z_width if source == "Z" else y_width)[layer - span]
                self.skips[str(layer)] = SkipConnection(
                    src,
                    src if merge == "concat" else width,
                    weight=weight,
                    merge=merge,
                    kind=self.kind,
                    scale=scale,
                )
                if merge == "concat":
                    y_width[layer] = width + src
        self.num_features = y_width[depth]
        self.num_classes = num_classes
        self.head: nn.Module = (
            nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        )
        self._init(init)

    def _make_layer(self, in_features: int, out_features: int) -> nn.Module:
        return nn.Linear(in_features, out_features)

    def _init(self, init: str) -> None:
        if init == "default":
            return
        for layer in self.layers:
            if init == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            else:
                nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(
                f"expected a batch of inputs (N, features), got shape {tuple(x.shape)}"
            )
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"expected {self.in_features} input features, got {x.shape[1]}; "
                f"pass in_features={x.shape[1]}"
            )
        return x

    def residual_units(self) -> list[tuple[str, nn.Module]]:
        """The skip connections in forward order, as (name, module)."""
        return [(f"skips.{k}", m) for k, m in self.skips.items()]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.check_input(x)
        saved: dict[int, torch.Tensor] = {}  # S_l, the skip sources still needed
        for index, layer in enumerate(self.layers, start=1):
            z = layer(h)  # Z_l
            key = str(index)
            if key not in self.skips:
                y = self.act(z)  # Y_l = f(Z_l)
            elif self.placement == "inside":
                y = self.act(self.skips[key](z, saved.pop(index - self.span)))  # f(Z_l + W∘S)
            else:
                y = self.skips[key](self.act(z), saved.pop(index - self.span))  # f(Z_l) + W∘S
            if self.skips and str(index + self.span) in self.skips:
                saved[index] = z if self.source == "Z" else y
            h = y
        return h

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class SkipMLP(_SkipStack):
    """Fully-connected stack: `depth` linear layers of `width` with skips of span `span`.

    SkipMLP(784, 64, 100, 10, span=2, weight="identity")  # a 100-layer residual MLP
    SkipMLP(784, 64, 100, 10, weight=None)                # its plain twin
    """

    kind = "dense"


class SkipCNN(_SkipStack):
    """Convolutional stack: `depth` 3×3 conv layers with `width` channels, no downsampling,
    skips of span `span`, global average pooling and a linear head."""

    kind = "conv"

    def __init__(self, in_chans: int, width: int, depth: int, num_classes: int, **kwargs):
        super().__init__(in_chans, width, depth, num_classes, **kwargs)

    def _make_layer(self, in_features: int, out_features: int) -> nn.Module:
        return nn.Conv2d(in_features, out_features, 3, padding=1)

    def _init(self, init: str) -> None:
        if init == "default":
            return
        for layer in self.layers:
            if init == "kaiming":
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected a 4-D input (batch, channels, height, width), got {shape}")
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"expected {self.in_features} input channels, got {x.shape[1]}; "
                f"pass in_chans={x.shape[1]}"
            )
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # global average pool: (N, num_features)
        return x if pre_logits else self.head(x)
