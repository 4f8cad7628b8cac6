"""The NumPy reference backward pass of the residual unit = autograd on the library's BasicBlock."""

import ast

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from resnetlab.analysis.reference import (
    conv2d,
    conv2d_transpose,
    skip_share,
    unit_backward,
    unit_forward,
)
from resnetlab.analysis.unit_check import check_against_autograd, reference_params
from resnetlab.blocks import BasicBlock
from resnetlab.layers import make_skip_weight

ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _randomise_bn(block: nn.Module, gen: torch.Generator) -> None:
    # Non-trivial running statistics and affine parameters, so eval-mode BN is a real affine map.
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    in_chs=st.integers(1, 5),
    extra=st.integers(0, 3),
    h=st.integers(3, 9),
    w=st.integers(3, 9),
    stride=st.sampled_from([1, 2]),
    shortcut=st.sampled_from(["A", "B", "C", "none"]),
    norm=st.sampled_from(["identity", "bn_eval"]),
    act=st.sampled_from(sorted(ACTS)),
    seed=st.integers(0, 2**16),
)
def test_reference_matches_autograd_on_basic_block(
    n, in_chs, extra, h, w, stride, shortcut, norm, act, seed
):
    planes = in_chs + extra
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    block = BasicBlock(
        in_chs,
        planes,
        stride,
        shortcut=shortcut,
        norm_layer=nn.Identity if norm == "identity" else nn.BatchNorm2d,
        act_layer=ACTS[act],
    )
    _randomise_bn(block, gen)
    block.eval()
    x = torch.randn(n, in_chs, h, w, generator=gen)
    check = check_against_autograd(block, x)
    assert check.worst < 1e-10, check.max_rel_error
    # Every gradient of the unit was compared (weights of both convs, input, output).
    assert {"x", "y", "w1", "w2"} <= set(check.max_rel_error)


@pytest.mark.parametrize("mode", ["fixed", "scalar"])
def test_reference_matches_autograd_with_weighted_skip(mode):
    torch.manual_seed(1)
    block = BasicBlock(4, 4, shortcut="B", norm_layer=nn.Identity)
    block.downsample = make_skip_weight(mode, 4, 4, scale=0.5)
    block.eval()
    check = check_against_autograd(block, torch.randn(2, 4, 6, 6))
    assert check.worst < 1e-10, check.max_rel_error
    if mode == "scalar":
        assert "downsample.scale" in check.max_rel_error


def test_gradient_splits_into_residual_and_skip_terms():
    torch.manual_seed(0)
    block = BasicBlock(3, 3, shortcut="B", norm_layer=nn.Identity).eval()
    params = reference_params(block)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    y, cache = unit_forward(x, params)
    grad_y = np.ones_like(y)
    g = unit_backward(grad_y, cache, params)
    np.testing.assert_allclose(g.x, g.x_residual + g.x_skip, rtol=0, atol=1e-14)
    # Identity shortcut: the skip term is exactly ∇Y ⊙ f'(Z2 + X).
    np.testing.assert_array_equal(g.x_skip, grad_y * (cache.z2 + x > 0))
    share = skip_share(g)
    assert 0.0 < share.share < 1.0
    # The plain twin has no skip term.
    plain = reference_params(BasicBlock(3, 3, shortcut="none", norm_layer=nn.Identity).eval())
    _, pc = unit_forward(x, plain)
    gp = unit_backward(grad_y, pc, plain)
    assert skip_share(gp).skip_norm == 0.0


def test_conv_transpose_is_the_adjoint_of_conv():
    # <conv(x), g> = <x, conv^T(g)> for every x, g: the definition of the transpose.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    for stride in (1, 2):
        y = conv2d(x, w, stride=stride, padding=1)
        g = rng.standard_normal(y.shape)
        lhs = np.sum(y * g)
        rhs = np.sum(x * conv2d_transpose(g, w, x.shape, stride=stride, padding=1))
        assert lhs == pytest.approx(rhs, rel=1e-12)


def test_training_mode_batchnorm_is_rejected():
    block = BasicBlock(2, 2)  # BatchNorm2d, training mode
    with pytest.raises(ValueError, match="eval"):
        reference_params(block)


def test_reference_module_imports_only_numpy():
    # The reference must stand on its own: check its imports, not just that it runs.
    import resnetlab.analysis.reference as ref

    tree = ast.parse(open(ref.__file__).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "dataclasses", "numpy"}, imported
