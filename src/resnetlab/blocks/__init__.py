"""Residual units: basic, bottleneck and their pre-activation versions."""

from .residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, conv1x1, conv3x3

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "conv1x1",
    "conv3x3",
]
