"""The weighting methods: NTKMTL, NTKMTL-SR and the baselines they are compared with.

``get_method(name, n_tasks, **hparams)`` builds one; ``METHODS`` maps each name to its class,
whose ``all_hparams()`` declares every hyperparameter (type, default, valid range).
"""
from __future__ import annotations

from typing import Any

from ntkmtl.methods.base import GradientMethod, LossWeightingMethod, WeightMethod
from ntkmtl.methods.contract import Requirements, StepResult
from ntkmtl.methods.cagrad import CAGrad
from ntkmtl.methods.consmtl import ConsMTL
from ntkmtl.methods.dwa import DynamicWeightAverage
from ntkmtl.methods.fairgrad import FairGrad
from ntkmtl.methods.famo import FAMO
from ntkmtl.methods.go4align import GO4Align
from ntkmtl.methods.gradients import chunk_slices
from ntkmtl.methods.graddrop import GradDrop
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.methods.imtl import IMTLG
from ntkmtl.methods.log_cagrad import LogCAGrad
from ntkmtl.methods.log_imtl import LogIMTLG
from ntkmtl.methods.log_mgda import LogMGDA
from ntkmtl.methods.ls import LinearScalarization
from ntkmtl.methods.mgda import MGDA
from ntkmtl.methods.nashmtl import NashMTL
from ntkmtl.methods.ntkmtl import NTKMTL
from ntkmtl.methods.ntkmtl_sr import NTKMTLSR
from ntkmtl.methods.pcgrad import PCGrad
from ntkmtl.methods.pivrg import PIVRG
from ntkmtl.methods.rlw import RandomLossWeighting
from ntkmtl.methods.scaleinvls import ScaleInvariantLS
from ntkmtl.methods.stl import STL
from ntkmtl.methods.uw import UncertaintyWeighting

# The reference library's 21 names in its order, then NTKMTL-SR.
METHODS: dict[str, type[WeightMethod]] = {
    cls.name: cls
    for cls in (
        STL, LinearScalarization, UncertaintyWeighting, ScaleInvariantLS, RandomLossWeighting,
        DynamicWeightAverage, PCGrad, MGDA, GradDrop, LogMGDA, CAGrad, LogCAGrad, IMTLG, LogIMTLG,
        NashMTL, FAMO, FairGrad, PIVRG, ConsMTL, GO4Align, NTKMTL, NTKMTLSR,
    )
}


def method_class(name: str) -> type[WeightMethod]:
    """The class registered under ``name``, or a ValueError listing the valid names."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def get_method(name: str, n_tasks: int, device: Any = None, **hparams: Any) -> WeightMethod:
    """Build method ``name`` for ``n_tasks`` tasks; unknown or out-of-range values raise ValueError."""
    return method_class(name)(n_tasks=n_tasks, device=device, **hparams)


def describe_methods() -> str:
    """One block per method: name, what the trainer computes for it, its paper and hyperparameters (for --help)."""
    lines = []
    for name in sorted(METHODS):
        cls = METHODS[name]
        needs = cls(n_tasks=2).requirements.describe()  # with the default hyperparameters
        lines.append(f"{name}  [{needs}]  {cls.paper}")
        for h in cls.all_hparams():
            lines.append(f"    {h.name} = {h.default!r}  ({h.valid_range()}): {h.help}")
    return "\n".join(lines)


__all__ = [
    "METHODS", "GradientMethod", "GramianMethod", "LossWeightingMethod", "Requirements", "StepResult", "WeightMethod",
    "chunk_slices", "describe_methods", "get_method", "method_class",
]
