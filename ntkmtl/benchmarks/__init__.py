"""The benchmarks: the paper's four (QM9, CelebA, NYUv2, Cityscapes) and a tiny synthetic one.

Modules are imported on first use, so validating a config for one benchmark never imports the
heavy dependencies of another.
"""

from __future__ import annotations

import importlib
from typing import Any

from ntkmtl.benchmarks.base import LR_SCHEDULES, Benchmark, DataError, Metric, TrainDefaults, delta_m

BENCHMARKS: dict[str, str] = {
    "qm9": "ntkmtl.benchmarks.qm9:QM9",
    "celeba": "ntkmtl.benchmarks.celeba:CelebA",
    "nyuv2": "ntkmtl.benchmarks.nyuv2:NYUv2",
    "cityscapes": "ntkmtl.benchmarks.cityscapes:Cityscapes",
    "toy": "ntkmtl.benchmarks.toy:Toy",
}


def benchmark_class(name: str) -> type[Benchmark]:
    """The class registered under ``name``, or a ValueError listing the valid names."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(sorted(BENCHMARKS))}")
    module, attr = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def describe_benchmarks() -> str:
    """One block per benchmark: its data options and its defaults of method hyperparameters (for --help)."""
    lines = []
    for name in sorted(BENCHMARKS):
        cls = benchmark_class(name)
        d = cls.defaults
        lines.append(f"{name}  ({d.epochs} epochs, batch {d.batch_size}, lr {d.lr:g}, {d.scheduler} schedule)")
        for h in cls.data_options:
            lines.append(f"    data.{h.name} = {h.default!r}  ({h.valid_range()}): {h.help}")
        for method, values in sorted(cls.method_defaults.items()):
            settings = ", ".join(f"{k}={v!r}" for k, v in values.items())
            lines.append(f"    methods.{method}: {settings} by default on this benchmark")
    return "\n".join(lines)


def get_benchmark(name: str, **options: Any) -> Benchmark:
    """Build benchmark ``name`` with its data options (validated; data not loaded yet)."""
    return benchmark_class(name)(**options)


__all__ = [
    "BENCHMARKS",
    "LR_SCHEDULES",
    "Benchmark",
    "DataError",
    "Metric",
    "TrainDefaults",
    "benchmark_class",
    "delta_m",
    "describe_benchmarks",
    "get_benchmark",
]
