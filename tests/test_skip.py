"""The general skip connection Y_l = f(Z_l + W∘S_{l-s}) and the generic stacks."""

import pytest
import torch

from resnetlab.layers import WEIGHT_MODES, SkipConnection, make_skip_weight
from resnetlab.models import SkipCNN, SkipMLP

SHAPE_KEEPING = ["identity", "fixed", "scalar", "gate", "projection"]


@pytest.mark.parametrize("mode", SHAPE_KEEPING)
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_each_weight_mode(mode, kind):
    skip = SkipConnection(8, 8, weight=mode, kind=kind, scale=0.5)
    shape = (4, 8) if kind == "dense" else (4, 8, 5, 5)
    z, s = torch.randn(shape), torch.randn(shape)
    out = skip(z, s)
    assert out.shape == shape
    if mode == "identity":
        torch.testing.assert_close(out, z + s)
    elif mode == "fixed":
        torch.testing.assert_close(out, z + 0.5 * s)
    elif mode == "scalar":
        torch.testing.assert_close(out, z + s)  # starts at 1, learnable
        out.sum().backward()
        assert skip.weight.scale.grad is not None
    elif mode == "gate":
        g = torch.sigmoid(torch.tensor(2.0))
        torch.testing.assert_close(out, z + g * s)
    else:
        out.sum().backward()
        assert skip.weight[0].weight.grad is not None


def test_pad_mode_is_option_a():
    w = make_skip_weight("pad", 4, 8, stride=2)
    x = torch.randn(2, 4, 6, 6)
    y = w(x)
    assert y.shape == (2, 8, 3, 3)
    torch.testing.assert_close(y[:, 2:6], x[:, :, ::2, ::2])
    assert y[:, :2].abs().sum() == 0 and y[:, 6:].abs().sum() == 0
    assert sum(p.numel() for p in w.parameters()) == 0


def test_concat_merge_and_projection_changes_width():
    skip = SkipConnection(8, 8, weight="identity", merge="concat", kind="dense")
    z, s = torch.randn(3, 16), torch.randn(3, 8)
    torch.testing.assert_close(skip(z, s), torch.cat([z, s], 1))
    proj = SkipConnection(8, 16, weight="projection", kind="conv", stride=2)
    assert proj(torch.randn(2, 16, 4, 4), torch.randn(2, 8, 8, 8)).shape == (2, 16, 4, 4)


def test_bad_skip_options():
    with pytest.raises(ValueError, match="keeps the shape.*'projection' or 'pad'"):
        make_skip_weight("identity", 8, 16)
    with pytest.raises(ValueError, match="unknown skip weight"):
        make_skip_weight("magic", 8, 8)
    with pytest.raises(ValueError, match="unknown merge"):
        SkipConnection(8, 8, merge="mul")
    with pytest.raises(ValueError, match="cannot shrink"):
        make_skip_weight("pad", 8, 4)
    assert set(SHAPE_KEEPING) | {"pad"} == set(WEIGHT_MODES)


@pytest.mark.parametrize("cls", [SkipMLP, SkipCNN])
@pytest.mark.parametrize("weight", [None, *SHAPE_KEEPING])
@pytest.mark.parametrize("source", ["Y", "Z"])
@pytest.mark.parametrize("merge", ["add", "concat"])
@pytest.mark.parametrize("placement", ["inside", "outside"])
def test_stacks_every_option(cls, weight, source, merge, placement):
    model = cls(3, 8, 7, 5, span=2, weight=weight, source=source, merge=merge, placement=placement)
    x = torch.randn(4, 3) if cls is SkipMLP else torch.randn(4, 3, 6, 6)
    out = model(x)
    assert out.shape == (4, 5) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    n_skips = 0 if weight is None else 3  # span 2, 7 layers: skips end at layers 3, 5, 7
    assert len(model.residual_units()) == n_skips


def test_stack_skip_uses_the_requested_source():
    """With identity W, span 1 and source Z, Y_2 = f(Z_2 + Z_1): check by hand."""
    model = SkipMLP(3, 4, 2, 0, span=1, weight="identity", source="Z", act="tanh")
    x = torch.randn(5, 3)
    z1 = model.layers[0](x)
    z2 = model.layers[1](torch.tanh(z1))
    torch.testing.assert_close(model(x), torch.tanh(z2 + z1))
    model_y = SkipMLP(3, 4, 2, 0, span=1, weight="identity", source="Y", act="tanh")
    model_y.load_state_dict(model.state_dict())
    y1 = torch.tanh(z1)
    torch.testing.assert_close(model_y(x), torch.tanh(model_y.layers[1](y1) + y1))


def test_deep_stacks_are_cheap_to_build():
    import time

    t = time.perf_counter()
    model = SkipMLP(784, 32, 200, 10, span=1)
    assert len(model.layers) == 200
    assert time.perf_counter() - t < 2.0


def _first_layer_grad(weight, depth=50, placement="outside", act="sigmoid", source="Y"):
    torch.manual_seed(0)
    model = SkipMLP(
        16, 16, depth, 1, span=1, weight=weight, act=act, placement=placement, source=source
    )
    x = torch.randn(32, 16)
    model(x).sum().backward()
    return model.layers[0].weight.grad.norm().item()


def test_skips_keep_gradients_alive_in_deep_sigmoid_stack():
    """The chapter's point: 50 sigmoid layers without skips starve the first layer."""
    plain = _first_layer_grad(None)
    skip = _first_layer_grad("identity")
    assert skip > 0.1 and plain < 1e-6 * skip, (plain, skip)


def test_skip_inside_a_saturating_activation_helps_less():
    """Y = f(Z + Y_prev) still multiplies each path by f' <= 1/4 for sigmoid (He et al. 2016's
    argument for a clean identity path): better than plain, far worse than outside."""
    plain = _first_layer_grad(None, depth=10)
    inside = _first_layer_grad("identity", depth=10, placement="inside")
    outside = _first_layer_grad("identity", depth=10)
    assert plain * 10 < inside < outside * 1e-3, (plain, inside, outside)


def test_relu_z_source_is_not_modified_in_place():
    m = SkipMLP(3, 4, 3, 0, span=1, weight="identity", source="Z", act="relu")
    x = torch.randn(5, 3)
    z1 = m.layers[0](x)
    y1 = torch.relu(z1)
    z2 = m.layers[1](y1)
    y2 = torch.relu(z2 + z1)  # skip carries Z_1, negative entries included
    z3 = m.layers[2](y2)
    torch.testing.assert_close(m(x), torch.relu(z3 + z2))


def test_stack_bad_input():
    with pytest.raises(ValueError, match="expected 16 input features, got 8"):
        SkipMLP(16, 8, 3, 2)(torch.randn(2, 8))
    with pytest.raises(ValueError, match="expected 3 input channels, got 1; pass in_chans=1"):
        SkipCNN(3, 8, 3, 2)(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="unknown source"):
        SkipMLP(4, 4, 3, 2, source="X")
