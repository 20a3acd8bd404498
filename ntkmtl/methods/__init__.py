"""The weighting methods: NTKMTL, NTKMTL-SR and the baselines they are compared with.

``get_method(name, n_tasks, **hparams)`` builds one; ``METHODS`` maps each name to its class,
whose ``all_hparams()`` declares every hyperparameter (type, default, valid range).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ntkmtl.methods.base import GradientMethod, LossWeightingMethod, WeightMethod
from ntkmtl.methods.contract import Requirements, StepResult
from ntkmtl.methods.gradients import chunk_slices
from ntkmtl.methods.gramian_method import GramianMethod


def _discover() -> dict[str, type[WeightMethod]]:
    """Every method of the package, by name: a module ``ntkmtl/methods/<name>.py`` that defines a
    ``WeightMethod`` subclass whose ``name`` is ``<name>`` registers it (so adding a method is its
    module and its test). The other modules (base, contract, gradients, solvers, …) define none."""
    found: dict[str, type[WeightMethod]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, WeightMethod)
                and obj.__module__ == module.__name__
                and obj.name == info.name
            ):
                found[obj.name] = obj
    return found


METHODS: dict[str, type[WeightMethod]] = _discover()  # by name, alphabetically


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
    "METHODS",
    "GradientMethod",
    "GramianMethod",
    "LossWeightingMethod",
    "Requirements",
    "StepResult",
    "WeightMethod",
    "chunk_slices",
    "describe_methods",
    "get_method",
    "method_class",
]
