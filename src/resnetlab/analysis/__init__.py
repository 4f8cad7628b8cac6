"""Analyses of why skip connections work: the scalar chain, a NumPy reference backward pass of
the residual unit, and gradient-flow measurements on deep networks (`resnetlab gradients`)."""

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
from resnetlab.analysis.flow import (
    GradientFlow,
    GradientFlowRecorder,
    measure_gradient_flow,
    weighted_layers,
)
from resnetlab.analysis.reference import (
    BatchNormEval,
    ResidualUnitParams,
    skip_share,
    unit_backward,
    unit_forward,
)
from resnetlab.analysis.report import GradientReportConfig, run_gradient_report
from resnetlab.analysis.unit_check import check_against_autograd, reference_params

__all__ = [
    "ACTIVATIONS",
    "BatchNormEval",
    "ChainGradient",
    "DecayFit",
    "DepthSweep",
    "GradientFlow",
    "GradientFlowRecorder",
    "GradientReportConfig",
    "ResidualUnitParams",
    "autograd_grad",
    "chain_weights",
    "check_against_autograd",
    "closed_form_grad",
    "depth_sweep",
    "fit_decay_rate",
    "measure_gradient_flow",
    "reference_params",
    "run_gradient_report",
    "skip_share",
    "unit_backward",
    "unit_forward",
    "weighted_layers",
]
