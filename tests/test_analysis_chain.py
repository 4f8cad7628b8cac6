"""The scalar chain: closed form = autograd, and the depth behaviour the chapter claims."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resnetlab.analysis.chain import (
    ACTIVATIONS,
    autograd_grad,
    chain_weights,
    closed_form_grad,
    depth_sweep,
    fit_decay_rate,
)

finite = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(finite, min_size=2, max_size=40),
    x=finite,
    activation=st.sampled_from(ACTIVATIONS),
    skip=st.booleans(),
    target=st.one_of(st.none(), finite),
)
def test_closed_form_matches_autograd(weights, x, activation, skip, target):
    closed = closed_form_grad(weights, x, activation, skip=skip, target=target)
    auto = autograd_grad(weights, x, activation, skip=skip, target=target)
    # Scale of the two summands, so cancellation (product ~ -1) does not fake a mismatch.
    scale = abs(closed.theta_bar * x) * (abs(closed.product) + (1.0 if skip else 0.0))
    assert abs(closed.grad - auto) <= 1e-12 * scale + 1e-300


def test_skip_adds_exactly_theta_bar_x():
    w = chain_weights(20, low=-1.5, high=1.5, seed=7)
    for act in ACTIVATIONS:
        plain = closed_form_grad(w, 0.8, act, skip=False)
        skip = closed_form_grad(w, 0.8, act, skip=True)
        # With R = theta, theta_bar = 1 for both, so the skip adds exactly x.
        assert skip.grad - plain.grad == pytest.approx(0.8, abs=1e-15)


def test_relu_constant_weights_decay_rate_is_the_weight():
    # With positive constant weights w, the ReLU chain's plain gradient is exactly x * w^L.
    w = np.full(61, 0.9)
    sweep = depth_sweep("relu", range(1, 61), weights=w, x=1.5)
    np.testing.assert_allclose(sweep.plain, 1.5 * 0.9**sweep.depths, rtol=1e-12)
    fit = fit_decay_rate(sweep.depths, sweep.plain)
    assert fit.rate == pytest.approx(0.9, rel=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)


def test_sigmoid_decay_rate_matches_fixed_point():
    # Constant w: y converges to y* = sigmoid(w y*), so each layer multiplies by w sigmoid'(w y*).
    w = 1.0
    y = 0.5
    for _ in range(200):
        y = 1.0 / (1.0 + math.exp(-w * y))
    expected = w * y * (1.0 - y)
    sweep = depth_sweep("sigmoid", range(20, 101), weights=np.full(101, w))
    fit = fit_decay_rate(sweep.depths, sweep.plain)
    assert fit.rate == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_plain_vanishes_skip_tends_to_theta_bar_x(activation):
    sweep = depth_sweep(activation, range(1, 101), x=1.0)
    fit = fit_decay_rate(sweep.depths, sweep.plain)
    assert fit.rate < 0.8  # geometric decay with weights in [0.5, 1]
    assert fit.r2 > 0.95
    assert abs(sweep.plain[-1]) < 1e-10
    np.testing.assert_allclose(sweep.skip[-1], sweep.skip_limit[-1], rtol=1e-9)
    assert np.all(np.abs(sweep.skip) >= np.abs(sweep.skip_limit) * 0.999)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="activation"):
        closed_form_grad([1.0, 1.0], 1.0, "gelu", skip=True)
    with pytest.raises(ValueError, match="at least 2 weights"):
        closed_form_grad([1.0], 1.0, "relu", skip=True)
    with pytest.raises(ValueError, match="depths"):
        depth_sweep("relu", [0, 3])
    with pytest.raises(ValueError, match="non-zero"):
        fit_decay_rate([1, 2, 3], [0.0, 0.0, 1.0])
