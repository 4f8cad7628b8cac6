"""Generic tests over the registry, parameter counts, torchvision equivalence, bad input."""

import pytest
import torch
import torchvision

from resnetlab import create_model, list_models
from resnetlab.models import get_model_spec
from resnetlab.models.summary import count_macs, count_params, summarize

ALL = list_models()
# Each of these takes 5-30 s on 2 cores even at the smallest input: run them under `-m slow`.
HEAVY = {"resnet101", "resnet152", "resnet1202", "preact_resnet1001"}


def _smallest_input(name: str, in_chans: int) -> torch.Tensor:
    # ImageNet-style nets downsample by 32; the CIFAR-style ones by 4.
    size = 32 if get_model_spec(name).family == "imagenet" else 8
    return torch.randn(2, in_chans, size, size)


def _cases():
    for name in ALL:
        marks = pytest.mark.slow if name in HEAVY else ()
        for c in (1, 3, 4) if name in ("resnet20", "resnet18", "preact_resnet110") else (1,):
            yield pytest.param(name, c, marks=marks, id=f"{name}-{c}ch")


@pytest.mark.parametrize("name,in_chans", list(_cases()))
def test_every_model(name, in_chans):
    """Output shape, finite output, a gradient for every parameter, the common interface."""
    model = create_model(name, num_classes=7, in_chans=in_chans)
    x = _smallest_input(name, in_chans)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)
    assert len(model.residual_units()) > 0


TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
CIFAR_PARAMS = {  # exact, option A, 10 classes, 3 channels (REFERENCE.md)
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
}


def _meta(name, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


@pytest.mark.parametrize("name,expected", {**TORCHVISION_PARAMS, **CIFAR_PARAMS}.items())
def test_parameter_counts(name, expected):
    assert count_params(_meta(name)) == expected


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_twin_has_identical_layers(depth):
    res = _meta(f"resnet{depth}").state_dict()
    plain = _meta(f"plain{depth}").state_dict()
    assert {k: v.shape for k, v in res.items()} == {k: v.shape for k, v in plain.items()}
    assert all(u.downsample is None for _, u in _meta(f"plain{depth}").residual_units())


def test_torchvision_counts_of_plain_imagenet_nets_drop_only_projections():
    for depth in (18, 34, 50):
        res, plain = _meta(f"resnet{depth}"), _meta(f"plain{depth}")
        proj = sum(
            count_params(u.downsample) for _, u in res.residual_units() if u.downsample is not None
        )
        assert count_params(plain) == count_params(res) - proj


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_same_outputs_as_torchvision(name):
    theirs = getattr(torchvision.models, name)().eval()
    # Give BN non-trivial running statistics so eval-mode equality is a real check.
    for m in theirs.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours = create_model(name).eval()
    ours.load_state_dict(theirs.state_dict())  # strict: keys must match exactly
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)
    # and back: our weights load into torchvision
    theirs.load_state_dict(create_model(name).state_dict())


def test_gmacs_match_torchvision_published():
    for name, gflops in {"resnet18": 1.814, "resnet50": 4.089, "resnet152": 11.514}.items():
        macs, _ = count_macs(_meta(name).eval(), (3, 224, 224))
        assert abs(macs / 1e9 - gflops) < 0.002, name


def test_bottleneck_v1_puts_stride_on_first_conv():
    v15 = create_model("resnet50")
    v1 = create_model("resnet50", stride_in_1x1=True)
    assert v15.layer2[0].conv2.stride == (2, 2) and v15.layer2[0].conv1.stride == (1, 1)
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)


def test_cifar_stem_on_imagenet_net_keeps_resolution():
    model = create_model("resnet18", stem="cifar", num_classes=10, in_chans=1)
    assert model.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, 512, 4, 4)


@pytest.mark.parametrize(
    "shortcut,kinds",
    [("A", {"pad (A)", "identity"}), ("B", {"projection", "identity"}), ("C", {"projection"})],
)
def test_shortcut_options(shortcut, kinds):
    from resnetlab.layers import skip_weight_kind

    model = create_model("resnet20", shortcut=shortcut)
    assert {skip_weight_kind(u.downsample) for _, u in model.residual_units()} == kinds
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_zero_init_last_makes_units_start_as_identity():
    model = create_model("resnet20", zero_init_last=True).eval()
    unit = model.layer1[1]
    x = torch.rand(2, 16, 8, 8)  # non-negative, like a ReLU output
    torch.testing.assert_close(unit(x), x)
    pre = create_model("preact_resnet110", zero_init_last=True).eval()
    torch.testing.assert_close(pre.layer1[1](x), x)


def test_drop_path_decays_linearly_and_is_off_in_eval():
    model = create_model("resnet20", drop_path_rate=0.3)
    rates = [u.drop_path.p for _, u in model.residual_units()]
    assert rates == sorted(rates) and abs(rates[-1] - 0.3) < 1e-9 and rates[0] > 0
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model.layer3[2].drop_path(torch.ones(64, 1))
    kept = a[a != 0]
    assert (a == 0).any() and len(kept) > 0
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))


def test_default_cfg_and_spec():
    model = create_model("resnet56", in_chans=1)
    assert model.default_cfg["input_size"] == (1, 32, 32)
    assert model.default_cfg["depth"] == 56
    assert get_model_spec("resnet50").family == "imagenet"
    assert list_models("plain*") == [
        "plain18",
        "plain20",
        "plain32",
        "plain34",
        "plain44",
        "plain50",
        "plain56",
        "plain110",
    ]


# ---- bad input --------------------------------------------------------------------------


def test_wrong_input_channels_says_what_to_pass():
    model = create_model("resnet20")
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 1; pass in_chans=1"):
        model(torch.randn(2, 1, 32, 32))


def test_non_4d_input():
    with pytest.raises(ValueError, match=r"4-D input.*unsqueeze"):
        create_model("resnet20")(torch.randn(3, 32, 32))


def test_too_small_input():
    with pytest.raises(ValueError, match=r"too small.*at least 32x32.*stem='cifar'"):
        create_model("resnet18")(torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"shortcut": "D"}, "unknown shortcut option 'D'"),
        ({"stem": "tiny"}, "unknown stem 'tiny'"),
        ({"in_chans": 0}, "in_chans must be a positive integer"),
        ({"num_classes": -1}, "num_classes must be"),
        ({"drop_path_rate": 1.5}, "drop_path_rate must be in"),
        ({"colour": True}, "unknown argument.*colour"),
        ({"layers": (1, 1, 1)}, "fixed by the name"),
    ],
)
def test_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("resnet20", **kwargs)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean .*resnet50"):
        create_model("resnet05")


def test_summary_reports_stages_and_skips():
    text = summarize("resnet20", (1, 28, 28))
    assert "layer3  1x64x7x7" in text
    assert "7 identity" in text and "2 pad (A)" in text
    assert "shortcuts: 9 none" in summarize("plain20")
