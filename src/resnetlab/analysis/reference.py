"""A NumPy reference for the convolutional residual unit's forward and backward pass.

Plain NumPy on purpose (no torch here): the backward pass is written as the chapter's steps so a
reader can check every line against the equations, and tests check it against autograd on the
library's own `BasicBlock`.

Forward (He et al. 2015, Fig. 2; the norm layers are optional and, when present, BatchNorm in
inference form, i.e. a fixed per-channel affine map):

    Z1 = N1(Conv(X; w1))        Y1 = f(Z1)
    Z2 = N2(Conv(Y1; w2))       Y  = f(Z2 + W X)

Backward, with the chapter's names (W = I for the identity shortcut):

    ∇Z2 = ∇Y ⊙ f'(Z2 + W X)
    ∇Y1 = Conv^T(∇Z2)          (through N2 first when present)
    ∇Z1 = ∇Y1 ⊙ f'(Z1)
    ∇X  = Conv^T(∇Z1) + W^T (∇Y ⊙ f'(Z2 + W X))
          └ residual branch ┘ └─────── skip ────────┘

The second term of ∇X is why gradients do not vanish in deep residual nets: it reaches X
without passing through any weight layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("relu", "tanh", "sigmoid")
SHORTCUTS = ("identity", "fixed", "scalar", "pad", "projection", "none")


# --- activations -------------------------------------------------------------------------


def activate(z: np.ndarray, activation: str) -> np.ndarray:
    """f(z) for relu / tanh / sigmoid."""
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "tanh":
        return np.tanh(z)
    if activation == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")


def activate_grad(z: np.ndarray, activation: str) -> np.ndarray:
    """f'(z); ReLU'(0) = 0 as in torch."""
    if activation == "relu":
        return (z > 0).astype(z.dtype)
    if activation == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if activation == "sigmoid":
        s = activate(z, "sigmoid")
        return s * (1.0 - s)
    raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")


# --- convolution and its transpose ---------------------------------------------------------


def _windows(x: np.ndarray, k: int, stride: int, padding: int) -> np.ndarray:
    """All k×k patches of x: (N, C, H, W) -> (N, C, Ho, Wo, k, k) (a view, no copy)."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return win[:, :, ::stride, ::stride]


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: int = 1,
    padding: int = 0,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """Cross-correlation as in torch.nn.Conv2d: x (N, C, H, W), w (O, C, k, k) -> (N, O, Ho, Wo)."""
    win = _windows(x, w.shape[-1], stride, padding)
    out = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    if bias is not None:
        out = out + bias[None, :, None, None]
    return out


def conv2d_transpose(
    g: np.ndarray, w: np.ndarray, input_shape: tuple[int, ...], *, stride: int = 1, padding: int = 0
) -> np.ndarray:
    """Conv^T: the gradient of conv2d with respect to its input.

    Every output position received a weighted sum of a k×k input patch, so it sends g back to
    that patch with the same weights: one strided add per kernel offset (i, j).
    """
    n, c, h, wd = input_shape
    k = w.shape[-1]
    ho, wo = g.shape[2], g.shape[3]
    dxp = np.zeros((n, c, h + 2 * padding, wd + 2 * padding), dtype=g.dtype)
    for i in range(k):
        for j in range(k):
            contrib = np.einsum("nohw,oc->nchw", g, w[:, :, i, j], optimize=True)
            dxp[
                :, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ] += contrib
    return dxp[:, :, padding : padding + h, padding : padding + wd]


def conv2d_weight_grad(
    x: np.ndarray, g: np.ndarray, k: int, *, stride: int = 1, padding: int = 0
) -> np.ndarray:
    """dR/dw of conv2d: correlate the input patches with the output gradient -> (O, C, k, k)."""
    win = _windows(x, k, stride, padding)
    return np.einsum("nohw,nchwij->ocij", g, win, optimize=True)


# --- parameters --------------------------------------------------------------------------


@dataclass
class BatchNormEval:
    """BatchNorm in inference form: z = (c - mean) / sqrt(var + eps) * gamma + beta, per channel."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def _b(self, v: np.ndarray) -> np.ndarray:
        return v[None, :, None, None]

    def normalised(self, c: np.ndarray) -> np.ndarray:
        return (c - self._b(self.mean)) / np.sqrt(self._b(self.var) + self.eps)

    def forward(self, c: np.ndarray) -> np.ndarray:
        return self.normalised(c) * self._b(self.gamma) + self._b(self.beta)

    def backward(self, c: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (dR/dc, dR/dgamma, dR/dbeta) given g = dR/dz."""
        dc = g * self._b(self.gamma / np.sqrt(self.var + self.eps))
        dgamma = np.sum(g * self.normalised(c), axis=(0, 2, 3))
        dbeta = np.sum(g, axis=(0, 2, 3))
        return dc, dgamma, dbeta


@dataclass
class ResidualUnitParams:
    """Everything that defines one basic residual unit, as NumPy arrays.

    shortcut: "identity" (W = I), "fixed" / "scalar" (W = `skip_scale`, learned for "scalar"),
    "pad" (option A: subsample by `stride`, zero-pad channels), "projection" (1×1 conv with
    `proj_weight`, optional `proj_bias` and `proj_norm`), "none" (the plain twin: no skip).
    """

    w1: np.ndarray  # (C_mid, C_in, k, k)
    w2: np.ndarray  # (C_out, C_mid, k, k)
    stride: int = 1
    padding: int = 1
    activation: str = "relu"
    norm1: BatchNormEval | None = None
    norm2: BatchNormEval | None = None
    shortcut: str = "identity"
    skip_scale: float = 1.0
    proj_weight: np.ndarray | None = None  # (C_out, C_in, 1, 1)
    proj_bias: np.ndarray | None = None
    proj_norm: BatchNormEval | None = None

    def __post_init__(self) -> None:
        if self.shortcut not in SHORTCUTS:
            raise ValueError(
                f"unknown shortcut {self.shortcut!r}; choose one of {', '.join(SHORTCUTS)}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if self.w1.ndim != 4 or self.w2.ndim != 4 or self.w2.shape[1] != self.w1.shape[0]:
            raise ValueError(
                f"w1 must be (C_mid, C_in, k, k) and w2 (C_out, C_mid, k, k); got "
                f"{self.w1.shape} and {self.w2.shape}"
            )
        if self.shortcut == "projection" and self.proj_weight is None:
            raise ValueError("shortcut='projection' needs proj_weight (C_out, C_in, 1, 1)")


@dataclass
class UnitCache:
    """Forward intermediates kept for the backward pass."""

    x: np.ndarray
    c1: np.ndarray  # Conv(X; w1)
    z1: np.ndarray
    y1: np.ndarray
    c2: np.ndarray  # Conv(Y1; w2)
    z2: np.ndarray  # F(X), the residual branch's output
    skip_in: np.ndarray | None  # input of the projection conv (only for "projection")
    skip_c: np.ndarray | None  # projection conv output before its norm
    s: np.ndarray  # W X (zeros for the plain twin)
    y: np.ndarray


@dataclass
class UnitGradients:
    """dR/d(everything) for one unit; x_residual + x_skip = x."""

    x: np.ndarray
    x_residual: np.ndarray  # Conv^T(∇Z1): the part of ∇X that crossed the two weight layers
    x_skip: np.ndarray  # W^T(∇Y ⊙ f'(Z2 + W X)): the part that took the shortcut
    w1: np.ndarray
    w2: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray] | None = None  # (dgamma, dbeta)
    norm2: tuple[np.ndarray, np.ndarray] | None = None
    proj_weight: np.ndarray | None = None
    proj_bias: np.ndarray | None = None
    proj_norm: tuple[np.ndarray, np.ndarray] | None = None
    skip_scale: float | None = None


def _pad_forward(x: np.ndarray, out_chs: int, stride: int) -> np.ndarray:
    """Option A shortcut: x[:, :, ::s, ::s] with the extra channels zero-padded half each side."""
    xs = x[:, :, ::stride, ::stride]
    extra = out_chs - x.shape[1]
    before = extra // 2
    return np.pad(xs, ((0, 0), (before, extra - before), (0, 0), (0, 0)))


def _pad_backward(g: np.ndarray, x_shape: tuple[int, ...], stride: int) -> np.ndarray:
    """Transpose of `_pad_forward`: drop the padded channels, put values back on the grid."""
    before = (g.shape[1] - x_shape[1]) // 2
    dx = np.zeros(x_shape, dtype=g.dtype)
    dx[:, :, ::stride, ::stride] = g[:, before : before + x_shape[1]]
    return dx


def _check_input(x: np.ndarray, p: ResidualUnitParams) -> None:
    if x.ndim != 4:
        raise ValueError(f"x must be (N, C, H, W); got shape {x.shape}")
    if x.shape[1] != p.w1.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but w1 expects {p.w1.shape[1]}")


def unit_forward(x: np.ndarray, p: ResidualUnitParams) -> tuple[np.ndarray, UnitCache]:
    """Y = f(N2(Conv(f(N1(Conv(X))))) + W X). Returns Y and the cache for `unit_backward`."""
    _check_input(x, p)
    c1 = conv2d(x, p.w1, stride=p.stride, padding=p.padding)
    z1 = p.norm1.forward(c1) if p.norm1 else c1
    y1 = activate(z1, p.activation)
    c2 = conv2d(y1, p.w2, stride=1, padding=p.padding)
    z2 = p.norm2.forward(c2) if p.norm2 else c2
    skip_in = skip_c = None
    if p.shortcut in ("identity", "fixed", "scalar"):
        s = x * (1.0 if p.shortcut == "identity" else p.skip_scale)
    elif p.shortcut == "pad":
        s = _pad_forward(x, z2.shape[1], p.stride)
    elif p.shortcut == "projection":
        skip_in = x
        skip_c = conv2d(x, p.proj_weight, stride=p.stride, bias=p.proj_bias)
        s = p.proj_norm.forward(skip_c) if p.proj_norm else skip_c
    else:  # plain twin
        s = np.zeros_like(z2)
    if s.shape != z2.shape:
        raise ValueError(f"shortcut output {s.shape} does not match the branch output {z2.shape}")
    y = activate(z2 + s, p.activation)
    return y, UnitCache(x, c1, z1, y1, c2, z2, skip_in, skip_c, s, y)


def unit_backward(grad_y: np.ndarray, cache: UnitCache, p: ResidualUnitParams) -> UnitGradients:
    """The chapter's backward pass, one equation per line."""
    g = grad_y * activate_grad(cache.z2 + cache.s, p.activation)  # ∇Y ⊙ f'(Z2 + W X)
    grad_z2 = g  # the sum passes the same gradient to both summands
    # Through N2 and the second conv.
    if p.norm2:
        grad_c2, dgamma2, dbeta2 = p.norm2.backward(cache.c2, grad_z2)
    else:
        grad_c2, dgamma2, dbeta2 = grad_z2, None, None
    grad_w2 = conv2d_weight_grad(cache.y1, grad_c2, p.w2.shape[-1], padding=p.padding)
    grad_y1 = conv2d_transpose(grad_c2, p.w2, cache.y1.shape, padding=p.padding)  # Conv^T(∇Z2)
    grad_z1 = grad_y1 * activate_grad(cache.z1, p.activation)  # ∇Y1 ⊙ f'(Z1)
    # Through N1 and the first conv.
    if p.norm1:
        grad_c1, dgamma1, dbeta1 = p.norm1.backward(cache.c1, grad_z1)
    else:
        grad_c1, dgamma1, dbeta1 = grad_z1, None, None
    grad_w1 = conv2d_weight_grad(
        cache.x, grad_c1, p.w1.shape[-1], stride=p.stride, padding=p.padding
    )
    grad_x_residual = conv2d_transpose(
        grad_c1, p.w1, cache.x.shape, stride=p.stride, padding=p.padding
    )  # Conv^T(∇Z1)

    # The skip term: W^T applied to ∇Y ⊙ f'(Z2 + W X).
    out = UnitGradients(
        x=grad_x_residual,
        x_residual=grad_x_residual,
        x_skip=np.zeros_like(cache.x),
        w1=grad_w1,
        w2=grad_w2,
        norm1=None if dgamma1 is None else (dgamma1, dbeta1),
        norm2=None if dgamma2 is None else (dgamma2, dbeta2),
    )
    if p.shortcut == "identity":
        out.x_skip = g
    elif p.shortcut in ("fixed", "scalar"):
        out.x_skip = p.skip_scale * g
        if p.shortcut == "scalar":
            out.skip_scale = float(np.sum(g * cache.x))
    elif p.shortcut == "pad":
        out.x_skip = _pad_backward(g, cache.x.shape, p.stride)
    elif p.shortcut == "projection":
        if p.proj_norm:
            grad_pc, pg, pb = p.proj_norm.backward(cache.skip_c, g)
            out.proj_norm = (pg, pb)
        else:
            grad_pc = g
        out.proj_weight = conv2d_weight_grad(cache.skip_in, grad_pc, 1, stride=p.stride)
        if p.proj_bias is not None:
            out.proj_bias = np.sum(grad_pc, axis=(0, 2, 3))
        out.x_skip = conv2d_transpose(grad_pc, p.proj_weight, cache.x.shape, stride=p.stride)
    out.x = grad_x_residual + out.x_skip  # ∇X = Conv^T(∇Z1) + W^T(∇Y ⊙ f'(Z2 + W X))
    return out


@dataclass(frozen=True)
class SkipShare:
    """How ∇X splits between the residual branch and the shortcut."""

    residual_norm: float  # ‖Conv^T(∇Z1)‖
    skip_norm: float  # ‖W^T(∇Y ⊙ f'(Z2 + W X))‖
    total_norm: float  # ‖∇X‖
    share: float  # skip_norm / (skip_norm + residual_norm): 1 = all through the shortcut
    cosine: float  # cosine between the two terms (0 = orthogonal, so norms add in quadrature)


def skip_share(grads: UnitGradients) -> SkipShare:
    """Summarise which path ∇X took."""
    r = float(np.linalg.norm(grads.x_residual))
    s = float(np.linalg.norm(grads.x_skip))
    t = float(np.linalg.norm(grads.x))
    denom = r * s
    cos = float(np.sum(grads.x_residual * grads.x_skip) / denom) if denom > 0 else 0.0
    share = s / (s + r) if s + r > 0 else 0.0
    return SkipShare(residual_norm=r, skip_norm=s, total_norm=t, share=share, cosine=cos)
