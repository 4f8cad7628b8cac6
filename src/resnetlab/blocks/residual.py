"""Residual units (He et al. 2015) and their pre-activation versions (He et al. 2016).

Every unit computes out = f(F(x) + W x) where W is the shortcut from `make_shortcut`; with
shortcut="none" the same layers run without the addition, which is the plain twin. Attribute
names (conv1, bn1, ..., downsample) follow torchvision so state_dicts are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..layers import DropPath, make_act, make_shortcut

NormLayer = Callable[[int], nn.Module]


def conv3x3(in_chs: int, out_chs: int, stride: int = 1, groups: int = 1, dilation: int = 1):
    return nn.Conv2d(
        in_chs,
        out_chs,
        3,
        stride=stride,
        padding=dilation,
        groups=groups,
        dilation=dilation,
        bias=False,
    )


def conv1x1(in_chs: int, out_chs: int, stride: int = 1):
    return nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs: out = f(BN(conv(f(BN(conv(x))))) + W x)."""

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: type[nn.Module] | str = nn.ReLU,
        drop_path: float = 0.0,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and width_per_group=64")
        out_chs = planes * self.expansion
        self.conv1 = conv3x3(in_chs, planes, stride, dilation=dilation)
        self.bn1 = norm_layer(planes)
        self.act1 = make_act(act_layer)
        self.conv2 = conv3x3(planes, out_chs, dilation=dilation)
        self.bn2 = norm_layer(out_chs)
        self.act2 = make_act(act_layer)
        self.downsample = make_shortcut(shortcut, in_chs, out_chs, stride, norm_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.act1(out)
        out = self.conv2(out)
        out = self.bn2(out)  # Z2 = F(x)
        if self.downsample is not None:
            shortcut = self.downsample(x)  # W x
            out = self.drop_path(out) + shortcut
        return self.act2(out)  # Y = f(Z2 + W x)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3, 1×1 expand (×4). "V1.5": the stride sits on the 3×3 conv as in
    torchvision; `stride_in_1x1=True` gives the original V1 of He et al. 2015."""

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: type[nn.Module] | str = nn.ReLU,
        drop_path: float = 0.0,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_chs = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_chs, width, s1)
        self.bn1 = norm_layer(width)
        self.act1 = make_act(act_layer)
        self.conv2 = conv3x3(width, width, s3, groups, dilation)
        self.bn2 = norm_layer(width)
        self.act2 = make_act(act_layer)
        self.conv3 = conv1x1(width, out_chs)
        self.bn3 = norm_layer(out_chs)
        self.act3 = make_act(act_layer)
        self.downsample = make_shortcut(shortcut, in_chs, out_chs, stride, norm_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            shortcut = self.downsample(x)
            out = self.drop_path(out) + shortcut
        return self.act3(out)


class PreActBasicBlock(nn.Module):
    """Pre-activation unit (He et al. 2016): out = x + conv(f(BN(conv(f(BN(x)))))).

    Nothing follows the addition, so the identity path is clean from input to output. A
    projection shortcut sees the pre-activated input and carries no norm of its own.
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "A",
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: type[nn.Module] | str = nn.ReLU,
        drop_path: float = 0.0,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock supports only groups=1 and width_per_group=64")
        out_chs = planes * self.expansion
        self.bn1 = norm_layer(in_chs)
        self.act1 = make_act(act_layer)
        self.conv1 = conv3x3(in_chs, planes, stride, dilation=dilation)
        self.bn2 = norm_layer(planes)
        self.act2 = make_act(act_layer)
        self.conv2 = conv3x3(planes, out_chs, dilation=dilation)
        self.downsample = make_shortcut(shortcut, in_chs, out_chs, stride, norm_layer=None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        # Projections act on the pre-activated input; identity/pad shortcuts on x itself.
        source = pre if isinstance(self.downsample, nn.Sequential) else x
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        if self.downsample is not None:
            shortcut = self.downsample(source)
            out = self.drop_path(out) + shortcut
        return out


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016), used by preact_resnet164/1001."""

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: type[nn.Module] | str = nn.ReLU,
        drop_path: float = 0.0,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_chs = planes * self.expansion
        self.bn1 = norm_layer(in_chs)
        self.act1 = make_act(act_layer)
        self.conv1 = conv1x1(in_chs, width)
        self.bn2 = norm_layer(width)
        self.act2 = make_act(act_layer)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn3 = norm_layer(width)
        self.act3 = make_act(act_layer)
        self.conv3 = conv1x1(width, out_chs)
        self.downsample = make_shortcut(shortcut, in_chs, out_chs, stride, norm_layer=None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        source = pre if isinstance(self.downsample, nn.Sequential) else x
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        out = self.conv3(self.act3(self.bn3(out)))
        if self.downsample is not None:
            shortcut = self.downsample(source)
            out = self.drop_path(out) + shortcut
        return out
