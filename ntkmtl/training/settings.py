"""What defines one trial (``TrialConfig``), with its training settings declared once.

``TRAIN_SETTINGS`` declares every training setting (type, default, valid range) as an ``HParam``:
the sweep config's ``train:`` section accepts exactly these keys and checks them by these
declarations, ``python -m ntkmtl.train`` takes them as options, and ``TrialConfig.resolved()``
validates with them. ``None`` as a default means the benchmark's (``Benchmark.defaults``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from ntkmtl.benchmarks import LR_SCHEDULES, benchmark_class
from ntkmtl.methods import method_class
from ntkmtl.methods.gradients import DEFAULT_TASK_GRADIENTS, TASK_GRADIENT_MODES
from ntkmtl.options import HParam
from ntkmtl.precision import PRECISIONS, check_precision

DEVICES = ("auto", "cpu", "cuda")
TASK_GRADIENTS = ("auto",) + TASK_GRADIENT_MODES  # auto: DEFAULT_TASK_GRADIENTS of the device

TRAIN_SETTINGS: tuple[HParam, ...] = (
    HParam("epochs", int, None, "training epochs (default: the benchmark's)", low=1),
    HParam("batch_size", int, None, "training batch size (default: the benchmark's)", low=1),
    HParam("lr", float, None, "Adam learning rate of the model (default: the benchmark's)", low=0.0, low_open=True),
    HParam(
        "scheduler",
        str,
        None,
        "learning-rate schedule, stepped per epoch (default: the benchmark's)",
        choices=tuple(LR_SCHEDULES),
    ),
    HParam(
        "method_lr",
        float,
        0.025,
        "learning rate of the method's own parameters (UW's log-variances)",
        low=0.0,
        low_open=True,
    ),
    HParam("device", str, "auto", "auto (cuda when available), cpu or cuda", choices=DEVICES),
    HParam("num_workers", int, 0, "data-loader worker processes", low=0),
    HParam("precision", str, "fp32", "autocast dtype of the forward passes (ntkmtl/precision.py)", choices=PRECISIONS),
    HParam(
        "task_gradients",
        str,
        "auto",
        "how gradient methods get the K per-task gradients: loop or one batched backward (auto: the device's default)",
        choices=TASK_GRADIENTS,
    ),
)
SEED = HParam("seed", int, 0, "the trial's seed: every RNG and, on QM9, the split", low=0)
_SETTINGS = {h.name: h for h in TRAIN_SETTINGS + (SEED,)}


def check_train_settings(values: dict[str, Any], owner: str = "trial") -> dict[str, Any]:
    """``values`` (a subset of TRAIN_SETTINGS) checked and converted; ValueError naming the first
    unknown or invalid one. ``None`` keeps a setting whose default is None (the benchmark's)."""
    unknown = sorted(set(values) - {h.name for h in TRAIN_SETTINGS})
    if unknown:
        valid = ", ".join(h.name for h in TRAIN_SETTINGS)
        raise ValueError(
            f"{owner}: unknown setting {unknown[0]!r} (value {values[unknown[0]]!r}); valid settings: {valid}"
        )
    return {name: _check(name, value, owner) for name, value in values.items()}


def _check(name: str, value: Any, owner: str) -> Any:
    spec = _SETTINGS[name]
    if value is None and spec.default is None:
        return None
    return spec.check(value, owner, what="setting")


@dataclass
class TrialConfig:
    """Everything that defines one trial. ``None`` means the benchmark's default (``Benchmark.defaults``).

    The fields after ``data`` and ``seed`` are the ``TRAIN_SETTINGS``, with their declared defaults."""

    benchmark: str
    method: str = "ls"
    hparams: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seed: int = SEED.default
    epochs: int | None = _SETTINGS["epochs"].default
    batch_size: int | None = _SETTINGS["batch_size"].default
    lr: float | None = _SETTINGS["lr"].default
    scheduler: str | None = _SETTINGS["scheduler"].default
    method_lr: float = _SETTINGS["method_lr"].default
    device: str = _SETTINGS["device"].default
    num_workers: int = _SETTINGS["num_workers"].default
    precision: str = _SETTINGS["precision"].default
    task_gradients: str = _SETTINGS["task_gradients"].default

    def resolved(self) -> "TrialConfig":
        """A validated copy with every ``None`` replaced by the benchmark's default."""
        benchmark = benchmark_class(self.benchmark)
        defaults = benchmark.defaults
        config = dataclasses.replace(
            self,
            hparams=benchmark.method_hparams(self.method, self.hparams),
            data=dict(self.data),
            epochs=defaults.epochs if self.epochs is None else self.epochs,
            batch_size=defaults.batch_size if self.batch_size is None else self.batch_size,
            lr=defaults.lr if self.lr is None else self.lr,
            scheduler=defaults.scheduler if self.scheduler is None else self.scheduler,
        )
        checked = {name: _check(name, getattr(config, name), "trial") for name in _SETTINGS}
        config = dataclasses.replace(config, **checked)
        if config.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("trial: device='cuda' but CUDA is not available here; valid devices: auto, cpu")
        device = resolve_device(config.device)
        check_precision(config.precision, device, method_class(config.method), task_gradient_mode(config, device))
        return config


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def task_gradient_mode(config: TrialConfig, device: torch.device) -> str:
    """``task_gradients`` with ``auto`` resolved: the device's default, the loop under fp16 loss scaling."""
    if config.task_gradients != "auto":
        return config.task_gradients
    return "loop" if config.precision == "fp16" else DEFAULT_TASK_GRADIENTS.get(device.type, "loop")
