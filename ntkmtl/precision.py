"""Mixed precision for one trial: autocast forward passes, fp32 master weights and Gramians, fp16 loss scaling.

``train.precision`` (``TrialConfig.precision``) is ``fp32`` (the default, as the reference code),
``bf16`` or ``fp16``:

- The model's training forward pass runs under ``torch.autocast`` at that dtype; its outputs are
  cast to fp32 and the loss terms computed from them in fp32 (a pixel count of 110,592 is not a
  bf16 number). Methods run outside autocast, so every method sees fp32 losses, its per-task gradients G are gradients of the fp32 parameters, and G, the K × K Gramian
  G Gᵀ and the update are fp32. Parameters and optimizer state stay fp32 (master weights).
- Evaluation runs in fp32: a validation or test metric is never quantised by bf16's 8-bit
  mantissa (QM9's un-standardised energies are ~75,000 meV, where bf16 steps by 512 meV).
- fp16 (5-bit exponent) lets small gradients underflow, so it uses dynamic loss scaling with
  ``torch.amp.GradScaler``'s rule and defaults: scale 2¹⁶, doubled after 2,000 steps without
  overflow, halved (and the step skipped) on overflow. GradScaler itself multiplies the loss and
  unscales ``.grad`` before ``optimizer.step()``; a weighting method, though, reads the loss values
  (UW, DWA, FAMO, GO4Align, the log-methods) and forms and clips its update inside ``backward``, so
  here the scale lives only in the graph: the gradient entering the loss terms is multiplied by
  the scale (a hook on the loss terms) and each model parameter's gradient is divided by it on
  arrival (a hook on the parameter), however it is computed (``backward``, ``autograd.grad``).
  Every method thus sees its true losses and the true gradients of the parameters; only the
  activations' gradients in between are scaled. A non-finite parameter gradient is zeroed before
  any method sees it (their solvers need a finite Gramian) and marks the step: the optimizer does
  not step and the scale halves (the method's own state, e.g. Nash-MTL's α, has taken the step).

fp16 is refused, with a one-line reason, for methods that read gradients with respect to the
shared representation (NTKMTL-SR, ConsMTL: those gradients would carry the loss scale), for
``task_gradients: batched`` (the overflow of one task's gradient cannot be recorded inside the
vectorised backward) and on a CPU whose torch has no fp16 autocast; bf16 needs no loss scale and
has none of these limits (on CUDA it needs a GPU with bf16 support, compute capability ≥ 8.0).
A forward pass that overflows fp16 gives a non-finite loss: the trial ends ``diverged``, as for
any non-finite loss.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any, Iterable

import torch

if TYPE_CHECKING:
    from ntkmtl.methods.base import WeightMethod

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# torch.amp.GradScaler's defaults
INIT_SCALE = 2.0**16
GROWTH_FACTOR = 2.0
BACKOFF_FACTOR = 0.5
GROWTH_INTERVAL = 2000


def precision_conflict(precision: str, method: type[WeightMethod], task_gradients: str) -> str | None:
    """Why ``precision`` cannot train ``method`` with this task-gradient mode (on any device), or None."""
    if precision != "fp16":
        return None
    if method.requires.representation:
        return (
            f"fp16 is not available for method {method.name!r}: it reads gradients with respect to the "
            "representation, which would carry fp16's loss scale; use bf16 or fp32"
        )
    if task_gradients == "batched":
        return (
            "fp16 needs task_gradients 'loop' (an overflowing task gradient cannot be detected inside the "
            "batched backward); use task_gradients 'loop' or precision 'bf16'"
        )
    return None


def check_precision(precision: str, device: torch.device, method: type, task_gradients: str) -> None:
    """Raise ValueError (one line, with the reason and the alternatives) for an unusable combination."""
    if precision not in PRECISIONS:
        raise ValueError(f"trial: precision={precision!r} is not valid; valid precisions: {', '.join(PRECISIONS)}")
    conflict = precision_conflict(precision, method, task_gradients)
    if conflict:
        raise ValueError(f"trial: precision={precision!r}: {conflict}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            "trial: precision='bf16' needs a GPU with bf16 support (compute capability >= 8.0); use fp16 or fp32"
        )
    if precision == "fp16" and device.type == "cpu" and not _cpu_fp16_autocast():
        raise ValueError(
            f"trial: precision='fp16' is not supported by the CPU autocast of torch {torch.__version__}; use bf16 or fp32 on CPU"
        )


def _cpu_fp16_autocast() -> bool:
    """Whether this torch's CPU autocast really computes in fp16 (older versions disable it with a warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autocast("cpu", dtype=torch.float16):
            probe = torch.ones(2, 2) @ torch.ones(2, 2)
    return probe.dtype == torch.float16


def _to_fp32(outputs: Any) -> Any:
    """Model outputs (a tensor, or lists/tuples/dicts of them) with low-precision floats cast to fp32."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.dtype in (torch.float16, torch.bfloat16) else outputs
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_to_fp32(o) for o in outputs)
    if isinstance(outputs, dict):
        return {k: _to_fp32(v) for k, v in outputs.items()}
    return outputs


class MixedPrecision:
    """One trial's precision: the autocast context, fp32 loss terms and (fp16) the dynamic loss scale."""

    def __init__(self, precision: str, device: torch.device, parameters: Iterable[torch.nn.Parameter]):
        self.precision = precision
        self.device = device
        self.dtype = AUTOCAST_DTYPES.get(precision)
        self.loss_scaled = precision == "fp16"
        self.scale = INIT_SCALE if self.loss_scaled else 1.0
        self.good_steps = 0
        self.skipped_steps = 0
        self._overflow = torch.zeros((), dtype=torch.bool, device=device)
        if self.loss_scaled:
            for parameter in parameters:
                parameter.register_hook(self._unscale)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Forward passes under this: autocast at bf16/fp16, nothing at fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def loss_terms(self, benchmark: Any, outputs: Any, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The benchmark's loss terms (sums, counts) computed in fp32 from the outputs cast to fp32;
        under fp16 the gradient entering them is multiplied by the loss scale."""
        sums, counts = benchmark.loss_terms(_to_fp32(outputs), batch)
        if self.loss_scaled and sums.requires_grad:
            scale = self.scale
            sums.register_hook(lambda grad: grad * scale)
        return sums, counts

    def _unscale(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad / self.scale  # a power of two: exact
        finite = torch.isfinite(grad).all()
        self._overflow |= ~finite  # stays on the device: no synchronisation per gradient
        return torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """``optimizer.step()`` unless an fp16 gradient overflowed; update the scale; whether it stepped."""
        if not self.loss_scaled:
            optimizer.step()
            return True
        overflow = bool(self._overflow)  # one synchronisation per step, as GradScaler's step
        self._overflow.zero_()
        if overflow:
            self.scale *= BACKOFF_FACTOR
            self.good_steps = 0
            self.skipped_steps += 1
            return False
        optimizer.step()
        self.good_steps += 1
        if self.good_steps == GROWTH_INTERVAL:
            self.scale *= GROWTH_FACTOR
            self.good_steps = 0
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "scale": self.scale,
            "good_steps": self.good_steps,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("precision") == self.precision:  # a checkpoint of another precision: a fresh scale
            self.scale = float(state["scale"])
            self.good_steps = int(state["good_steps"])
            self.skipped_steps = int(state["skipped_steps"])
