"""Gradient-flow hooks: correct numbers, and no trace left on the model."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resnetlab
from resnetlab.analysis.flow import GradientFlowRecorder, measure_gradient_flow, weighted_layers
from resnetlab.analysis.reference import skip_share, unit_backward, unit_forward
from resnetlab.analysis.unit_check import reference_params
from resnetlab.blocks import BasicBlock
from resnetlab.models import ResNet, SkipMLP


def _hook_state(model: nn.Module):
    mods = [
        (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
        for m in model.modules()
    ]
    params = [len(p._backward_hooks or {}) for p in model.parameters()]
    return mods, params


def test_weight_and_output_gradients_match_plain_autograd():
    torch.manual_seed(0)
    model = SkipMLP(20, 8, 6, 3, weight=None).double()
    x = torch.randn(5, 20, dtype=torch.float64)
    y = torch.randint(0, 3, (5,))
    flow = measure_gradient_flow(model, x, y)
    # The same quantities by hand: an out-of-place forward that keeps every Z_l.
    zs, h = [], x
    for layer in model.layers:
        z = layer(h)
        z.retain_grad()
        zs.append(z)
        h = torch.relu(z)
    F.cross_entropy(model.head(h), y).backward()
    expected_w = [layer.weight.grad.norm().item() for layer in model.layers]
    expected_w.append(model.head.weight.grad.norm().item())
    np.testing.assert_allclose(flow.weight_grad_norms, expected_w, rtol=1e-12)
    np.testing.assert_allclose(
        flow.output_grad_norms[:-1], [z.grad.norm().item() for z in zs], rtol=1e-12
    )
    assert flow.layer_names == [f"layers.{i}" for i in range(6)] + ["head"]


def test_residual_and_skip_split_matches_numpy_reference():
    torch.manual_seed(0)
    block = BasicBlock(3, 3, shortcut="B", norm_layer=nn.Identity).double().eval()

    class OneUnit(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block

        def residual_units(self):
            return [("block", self.block)]

        def forward(self, x):
            return self.block(x)

    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    flow = measure_gradient_flow(OneUnit(), x)  # loss = mean(out^2)
    params = reference_params(block)
    out, cache = unit_forward(x.detach().numpy(), params)
    share = skip_share(unit_backward(2 * out / out.size, cache, params))
    assert flow.residual_grad_norms[0] == pytest.approx(share.residual_norm, rel=1e-10)
    assert flow.skip_grad_norms[0] == pytest.approx(share.skip_norm, rel=1e-10)


def _small(block: str, shortcut: str):
    # A 3-stage CIFAR-style net with one unit per stage: every unit type, in seconds.
    return ResNet(
        block,
        (1, 1, 1),
        widths=(8, 16, 32) if "bottleneck" not in block else (4, 8, 16),
        stem="cifar",
        num_classes=10,
        in_chans=1,
        shortcut=shortcut,
    )


MODELS = {
    "resnet20": lambda: resnetlab.create_model("resnet20", in_chans=1),
    "plain20": lambda: resnetlab.create_model("plain20", in_chans=1),
    "preact_basic_B": lambda: _small("preact_basic", "B"),
    "bottleneck_B": lambda: _small("bottleneck", "B"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_models_leave_no_trace(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before_hooks = _hook_state(model)
    x = torch.randn(2, 1, 16, 16)
    y = torch.randint(0, 10, (2,))
    flow = measure_gradient_flow(model, x, y)
    assert _hook_state(model) == before_hooks
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():  # BN running stats restored too
        assert torch.equal(v, before_state[k]), k
    assert model.training
    n_units = len(model.residual_units())
    assert len(flow.unit_names) == n_units
    assert np.all(np.isfinite(flow.weight_grad_norms)) and np.all(flow.weight_grad_norms > 0)
    assert np.all(np.isfinite(flow.residual_grad_norms)) and np.all(flow.residual_grad_norms > 0)
    if name.startswith("plain"):
        assert np.all(flow.skip_grad_norms == 0)
        assert np.all(np.isinf(flow.skip_ratio))
    else:
        assert np.all(flow.skip_grad_norms > 0)


def test_recorder_works_in_a_training_loop_and_removes_hooks():
    torch.manual_seed(0)
    model = SkipMLP(12, 8, 5, 10, weight="identity", span=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 12), torch.randint(0, 10, (8,))
    before = _hook_state(model)
    firsts = []
    with GradientFlowRecorder(model) as rec:
        assert _hook_state(model) != before
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            flow = rec.result()
            assert flow.weight_grad_norms[0] == pytest.approx(model.layers[0].weight.grad.norm())
            firsts.append(flow.weight_grad_norms[0])
            opt.step()
    assert _hook_state(model) == before
    assert len(set(firsts)) == 3  # a fresh record per step
    assert len(flow.unit_names) == len(model.residual_units())


def test_shortcut_weights_are_not_counted_as_layers():
    model = resnetlab.create_model("resnet20", shortcut="B")
    names = [n for n, _ in weighted_layers(model)]
    assert not any("downsample" in n for n in names)
    assert len(names) == 20  # 19 convs + fc: the 20 weighted layers of ResNet-20


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="torch.Tensor"):
        measure_gradient_flow(SkipMLP(4, 4, 2, 2), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no Conv2d/Linear"):
        GradientFlowRecorder(nn.ReLU())
