"""Analyses of why skip connections work: the scalar chain, a NumPy reference backward pass of
the residual unit, and gradient-flow measurements on deep networks."""

from resnetlab.analysis.chain import (
    ACTIVATIONS,
    ChainGradient,
    DecayFit,
    DepthSweep,
    autograd_grad,
    chain_weights,
    closed_form_grad,
    depth_sweep,
    fit_decay_rate,
)

__all__ = [
    "ACTIVATIONS",
    "ChainGradient",
    "DecayFit",
    "DepthSweep",
    "autograd_grad",
    "chain_weights",
    "closed_form_grad",
    "depth_sweep",
    "fit_decay_rate",
]
