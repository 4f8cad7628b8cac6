"""Small building blocks: the skip connection, shortcuts, drop-path, norm/act factories."""

from .drop import DropPath, drop_path
from .factory import get_act_layer, get_norm_layer, make_act
from .shortcut import SHORTCUT_OPTIONS, check_shortcut, make_shortcut
from .skip import (
    MERGE_MODES,
    WEIGHT_MODES,
    FixedScale,
    Gate,
    LearnedScale,
    PadIdentity,
    Projection,
    SkipConnection,
    make_skip_weight,
    skip_weight_kind,
)

__all__ = [
    "DropPath",
    "drop_path",
    "get_act_layer",
    "get_norm_layer",
    "make_act",
    "SHORTCUT_OPTIONS",
    "check_shortcut",
    "make_shortcut",
    "MERGE_MODES",
    "WEIGHT_MODES",
    "FixedScale",
    "Gate",
    "LearnedScale",
    "PadIdentity",
    "Projection",
    "SkipConnection",
    "make_skip_weight",
    "skip_weight_kind",
]
