"""The chapter's scalar chain: why a skip keeps the first weight's gradient alive.

The chain is y_1 = f(w_1 x), y_l = f(w_l y_{l-1}) for l = 2..L+1, with output
theta = y_{L+1} (plain) or theta = y_{L+1} + w_1 x (one skip from the first linear output to
the end). For a loss R with theta_bar = dR/dtheta the chain rule gives

    dR/dw_1 = theta_bar * x * ( f'(w_1 x) * prod_{l=2}^{L+1} w_l f'(w_l y_{l-1})  +  1 )

where the "+ 1" exists only with the skip. Without it the product of L factors vanishes
geometrically when |w_l f'(.)| < 1; with it the gradient tends to theta_bar * x at any depth.

Everything here is float64. `closed_form_grad` evaluates the formula with NumPy,
`autograd_grad` lets torch differentiate the same chain, and `depth_sweep` / `fit_decay_rate`
produce the numbers the `resnetlab gradients` report plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = ("sigmoid", "tanh", "relu")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )


def _f(activation: str, z: float) -> float:
    if activation == "sigmoid":
        # Split by sign so exp never overflows for large |z|.
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    if activation == "tanh":
        return math.tanh(z)
    return z if z > 0 else 0.0


def _fdot(activation: str, z: float) -> float:
    """f'(z). ReLU'(0) = 0, the same convention as torch."""
    if activation == "sigmoid":
        s = _f("sigmoid", z)
        return s * (1.0 - s)
    if activation == "tanh":
        t = math.tanh(z)
        return 1.0 - t * t
    return 1.0 if z > 0 else 0.0


def _check_chain(weights: Sequence[float], x: float, activation: str) -> list[float]:
    _check_activation(activation)
    w = [float(v) for v in np.asarray(weights, dtype=np.float64).reshape(-1)]
    if len(w) < 2:
        raise ValueError(
            f"the chain needs at least 2 weights (w_1 and w_2, i.e. depth L >= 1); got {len(w)}"
        )
    if not all(math.isfinite(v) for v in w) or not math.isfinite(float(x)):
        raise ValueError("weights and x must be finite numbers")
    return w


@dataclass(frozen=True)
class ChainGradient:
    """dR/dw_1 of one chain, with the pieces of the closed form."""

    grad: float  # dR/dw_1
    theta: float  # network output
    theta_bar: float  # dR/dtheta
    product: float  # f'(w_1 x) * prod_{l>=2} w_l f'(w_l y_{l-1}): the plain path's factor


def _theta_bar(theta: float, target: float | None) -> float:
    # R = theta (theta_bar = 1) by default; R = (theta - target)^2 / 2 when a target is given.
    return 1.0 if target is None else theta - float(target)


def closed_form_grad(
    weights: Sequence[float],
    x: float,
    activation: str,
    *,
    skip: bool,
    target: float | None = None,
) -> ChainGradient:
    """dR/dw_1 for the scalar chain from the closed form in REFERENCE.md (float64).

    `weights` are w_1..w_{L+1} (so depth L = len(weights) - 1). R = theta when `target` is None,
    else R = (theta - target)^2 / 2.
    """
    w = _check_chain(weights, x, activation)
    x = float(x)
    z = w[0] * x
    y = _f(activation, z)
    product = _fdot(activation, z)
    for wl in w[1:]:
        z = wl * y
        product *= wl * _fdot(activation, z)
        y = _f(activation, z)
    theta = y + (w[0] * x if skip else 0.0)
    theta_bar = _theta_bar(theta, target)
    grad = theta_bar * x * (product + (1.0 if skip else 0.0))
    return ChainGradient(grad=grad, theta=theta, theta_bar=theta_bar, product=product)


def autograd_grad(
    weights: Sequence[float],
    x: float,
    activation: str,
    *,
    skip: bool,
    target: float | None = None,
) -> float:
    """dR/dw_1 for the same chain, differentiated by torch autograd in float64."""
    import torch

    w_list = _check_chain(weights, x, activation)
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[activation]
    w = torch.tensor(w_list, dtype=torch.float64, requires_grad=True)
    xt = torch.tensor(float(x), dtype=torch.float64)
    z1 = w[0] * xt
    y = f(z1)
    for layer in range(1, len(w_list)):
        y = f(w[layer] * y)
    theta = y + z1 if skip else y
    loss = theta if target is None else 0.5 * (theta - float(target)) ** 2
    (grad,) = torch.autograd.grad(loss, w)
    return float(grad[0])


@dataclass
class DepthSweep:
    """|dR/dw_1| against depth for one activation, plain and skip."""

    activation: str
    depths: np.ndarray  # L values
    plain: np.ndarray  # dR/dw_1 without the skip
    skip: np.ndarray  # dR/dw_1 with the skip
    skip_limit: np.ndarray  # theta_bar * x of the skip chain: the value the skip gradient tends to
    weights: np.ndarray = field(repr=False)  # w_1..w_{max L + 1}; depth L uses the first L + 1
    x: float = 1.0


def chain_weights(
    max_depth: int, *, low: float = 0.5, high: float = 1.0, seed: int = 0
) -> np.ndarray:
    """w_1..w_{max_depth+1} drawn uniformly from [low, high] (seeded).

    Positive weights keep ReLU chains alive (a single negative pre-activation would zero the
    plain gradient exactly), and |w| <= 1 is the regime where the plain product shrinks.
    """
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1; got {max_depth}")
    if not low < high:
        raise ValueError(f"weight range needs low < high; got [{low}, {high}]")
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=max_depth + 1)


def depth_sweep(
    activation: str,
    depths: Sequence[int],
    *,
    weights: np.ndarray | None = None,
    x: float = 1.0,
    target: float | None = None,
    seed: int = 0,
) -> DepthSweep:
    """Evaluate the closed form for every depth; depth L uses weights[: L + 1] (nested chains)."""
    _check_activation(activation)
    depths_arr = np.asarray(sorted({int(d) for d in depths}), dtype=np.int64)
    if depths_arr.size == 0 or depths_arr[0] < 1:
        raise ValueError(f"depths must be integers >= 1; got {list(depths)}")
    if weights is None:
        weights = chain_weights(int(depths_arr[-1]), seed=seed)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.size < depths_arr[-1] + 1:
        raise ValueError(
            f"depth {depths_arr[-1]} needs {depths_arr[-1] + 1} weights; got {weights.size}"
        )
    plain, skip, limit = [], [], []
    for depth in depths_arr:
        w = weights[: depth + 1]
        plain.append(closed_form_grad(w, x, activation, skip=False, target=target).grad)
        s = closed_form_grad(w, x, activation, skip=True, target=target)
        skip.append(s.grad)
        limit.append(s.theta_bar * x)
    return DepthSweep(
        activation=activation,
        depths=depths_arr,
        plain=np.asarray(plain),
        skip=np.asarray(skip),
        skip_limit=np.asarray(limit),
        weights=weights,
        x=float(x),
    )


@dataclass(frozen=True)
class DecayFit:
    """log10 |g(L)| ~ intercept + slope * L, fitted by least squares."""

    rate: float  # per-layer factor 10**slope: |g(L+1)| / |g(L)| on average
    slope: float  # log10 units per layer
    intercept: float
    r2: float  # goodness of the geometric (straight line on a log axis) model
    n_points: int  # depths used (exact zeros cannot be put on a log axis and are left out)


def fit_decay_rate(depths: Sequence[int], grads: Sequence[float]) -> DecayFit:
    """Fit a geometric decay |g(L)| = C * rate**L to gradients measured at several depths."""
    d = np.asarray(depths, dtype=np.float64)
    g = np.abs(np.asarray(grads, dtype=np.float64))
    if d.shape != g.shape:
        raise ValueError(f"depths and grads differ in length: {d.shape} vs {g.shape}")
    keep = (g > 0) & np.isfinite(g)
    if keep.sum() < 2:
        raise ValueError("need at least two non-zero gradients to fit a decay rate")
    d, logg = d[keep], np.log10(g[keep])
    slope, intercept = np.polyfit(d, logg, 1)
    fitted = intercept + slope * d
    ss_res = float(np.sum((logg - fitted) ** 2))
    ss_tot = float(np.sum((logg - logg.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return DecayFit(
        rate=float(10.0**slope),
        slope=float(slope),
        intercept=float(intercept),
        r2=r2,
        n_points=int(keep.sum()),
    )
