"""The weighting-method interface shared by NTKMTL, NTKMTL-SR and every baseline.

A method turns K task losses into gradients on the model's parameters. What the trainer must
give it is declared once, in ``requires`` (a frozen ``contract.Requirements``: the representation,
batch chunks, the losses after the step, per-task gradients); an instance's ``requirements`` adds
what depends on its hyperparameters (NTKMTL's ``n`` chunks). Three bases:

- ``LossWeightingMethod``: a weighting of the losses; one backward pass (LS, UW, DWA, FAMO, …).
- ``GradientMethod``: combines the per-task shared gradients G (K × P) into one update (GradDrop).
- ``GramianMethod`` (gramian_method.py): a ``GradientMethod`` whose weights come from the K × K Gramian G Gᵀ (and the
  losses) alone, in ``gramian_weights`` — testable on a matrix; the base forms G, the Gramian, the
  K-scaling and the update Σ_k w_k g_k once (MGDA, PCGrad, CAGrad, IMTL, Nash-MTL, FairGrad, NTKMTL, …).

Usage: ``result = method.backward(losses, shared, heads, representation=z)`` then
``optimizer.step()``; ``result.weights`` are the K task weights applied. ``losses`` is [K], or
[n, K] for a method that chunks (``method.requirements.batch_chunks(B)``: row j = slice j's loss).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable, Sequence

import torch

from ntkmtl.methods.contract import Requirements, StepResult
from ntkmtl.methods.gradients import (
    CHUNK_LAYOUTS,
    backward_heads,
    clip_shared_gradient,
    task_gradients,
    write_flat_gradient,
)
from ntkmtl.options import HParam

LOG_EPS = 1e-8  # keeps log(L_k + LOG_EPS) finite for a zero loss (the reference's EPS)
MAX_NORM_HELP = "clip the shared parameters' gradient norm to this after the update is formed (0 disables)"
CHUNKING = HParam(
    "chunking",
    str,
    "torch_chunk",
    "how the batch is split into chunks: torch_chunk (the reference's torch.chunk: chunks of ceil(B/n), "
    "maybe fewer than n) or balanced (min(B, n) chunks whose sizes differ by at most one)",
    choices=CHUNK_LAYOUTS,
)
HEAD_GRADIENTS = HParam(
    "head_gradients",
    str,
    "objective",
    "what the task heads receive: objective (the gradient of the method's weighted objective, so head k's "
    "gradient is scaled by its task weight, as in the reference) or plain (every head the plain gradient of its own loss)",
    choices=("objective", "plain"),
)


class WeightMethod(ABC):
    """Base class: validated hyperparameters, the requirements, shared-gradient clipping, the checked
    step result, state for checkpoints.

    Subclasses set ``name``, ``paper``, ``hparams``, ``requires`` and implement ``_backward``; they
    list the attributes that must survive a checkpoint in ``state_attributes``.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    hparams: ClassVar[tuple[HParam, ...]] = ()
    requires: ClassVar[Requirements] = Requirements()
    default_max_norm: ClassVar[float] = 0.0
    state_attributes: ClassVar[tuple[str, ...]] = ()
    max_norm: float  # set by __init__ from all_hparams(), like every hyperparameter

    @classmethod
    def all_hparams(cls) -> tuple[HParam, ...]:
        """The method's own hyperparameters plus ``max_norm``, which every method has."""
        max_norm = HParam("max_norm", float, cls.default_max_norm, MAX_NORM_HELP, low=0.0)
        return tuple(cls.hparams) + (max_norm,)

    @classmethod
    def validate_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """Return the complete, type-converted hyperparameters, or raise ValueError."""
        specs = {h.name: h for h in cls.all_hparams()}
        unknown = sorted(set(hparams) - set(specs))
        if unknown:
            valid = ", ".join(specs) or "none"
            raise ValueError(
                f"method {cls.name!r}: unknown hyperparameter {unknown[0]!r} "
                f"(value {hparams[unknown[0]]!r}); valid hyperparameters: {valid}"
            )
        values = {name: spec.default for name, spec in specs.items()}
        for name, value in hparams.items():
            values[name] = specs[name].check(value, f"method {cls.name!r}")
        return values

    def __init__(self, n_tasks: int, device: torch.device | str | None = None, **hparams: Any):
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"method {self.name!r}: n_tasks={n_tasks!r} must be a positive integer")
        self.n_tasks = n_tasks
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.hparam_values = self.validate_hparams(hparams)
        for key, value in self.hparam_values.items():
            setattr(self, key, value)
        self.step_count = 0

    # -- what the trainer asks ---------------------------------------------------------------
    @property
    def requirements(self) -> Requirements:
        """This instance's requirements: ``requires`` plus what its hyperparameters decide."""
        return self.requires

    def parameters(self) -> list[torch.Tensor]:
        """The method's own learnable tensors trained by the model's optimizer (e.g. UW)."""
        return []

    def on_epoch_end(self, mean_train_losses: torch.Tensor) -> None:
        """Called once per epoch with the epoch's mean training loss per task (DWA uses it)."""

    def update(self, losses_after_step: torch.Tensor) -> None:
        """Called after optimizer.step() with the same batch's new losses (``losses_after_step``)."""

    # -- the step ----------------------------------------------------------------------------
    def backward(
        self,
        losses: torch.Tensor,
        shared_parameters: Iterable[torch.nn.Parameter],
        task_specific_parameters: Iterable[torch.nn.Parameter] | None = None,
        representation: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> StepResult:
        """Set ``.grad`` on the parameters; return the applied weights [K] and the values to log."""
        shared = list(shared_parameters)
        heads = list(task_specific_parameters) if task_specific_parameters is not None else []
        self._check_losses(losses)
        if self.requirements.representation and representation is None:
            raise ValueError(f"method {self.name!r} needs the shared representation: pass representation=")
        result = self._backward(losses, shared, heads, representation)
        if self.max_norm > 0:
            result = result.with_values(grad_norm=clip_shared_gradient(shared, self.max_norm))
        self.step_count += 1
        return result.checked(self.n_tasks, f"method {self.name!r}")

    @abstractmethod
    def _backward(self, losses, shared, heads, representation) -> StepResult:
        """Set the gradients for one step and return the weights and what to log."""

    def _check_losses(self, losses: torch.Tensor) -> None:
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        k, n = self.n_tasks, self.requirements.max_chunks
        ok = isinstance(losses, torch.Tensor) and (
            shape == (k,) or (losses.dim() == 2 and shape[1] == k and 1 <= shape[0] <= n)
        )
        if not ok:
            expected = f"[{k}]" if n == 1 else f"[{k}] or [n, {k}] with n <= {n}"
            raise ValueError(f"method {self.name!r}: losses of shape {shape}, expected {expected}")

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to make the next step identical after a restore."""
        state: dict[str, Any] = {"step_count": self.step_count}
        for attr in self.state_attributes:
            value = getattr(self, attr)
            state[attr] = value.detach().clone() if isinstance(value, torch.Tensor) else _copy(value)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = state["step_count"]
        for attr in self.state_attributes:
            current = getattr(self, attr)
            value = state[attr]
            if isinstance(current, torch.nn.Parameter):
                with torch.no_grad():
                    current.copy_(value)
            elif isinstance(current, torch.Tensor):
                setattr(self, attr, value.detach().clone().to(current.device))
            elif hasattr(current, "load_state_dict"):
                current.load_state_dict(value)
            else:
                setattr(self, attr, _copy(value))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparam_values.items())
        return f"{type(self).__name__}(n_tasks={self.n_tasks}, {args})"


def _copy(value: Any) -> Any:
    if hasattr(value, "state_dict"):  # an optimizer's state_dict shares its live tensors: copy them
        return copy.deepcopy(value.state_dict())
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return value


class LossWeightingMethod(WeightMethod):
    """A method that only re-weights the losses: loss = Σ_k w_k L_k, one backward pass."""

    @abstractmethod
    def loss_weights(self, losses: torch.Tensor) -> torch.Tensor:
        """The K weights for this step (may carry gradient, as UW's do)."""

    def weighted_loss(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar to back-propagate and the weights to report; Σ_k w_k L_k by default."""
        weights = self.loss_weights(losses)
        return (weights * losses).sum(), weights

    def _backward(self, losses, shared, heads, representation):
        total, weights = self.weighted_loss(losses)
        total.backward()
        return StepResult(weights.detach().clone(), {"loss": total.detach()})


class GradientMethod(WeightMethod):
    """A method that combines per-task shared gradients G (K × P) into one update direction.

    The shared parameters get ``aggregate(G, losses)``. What the heads get follows the reference
    library: methods that overwrite the shared gradient (NTKMTL, PCGrad, CAGrad, FairGrad, …) give
    each head the plain gradient of its own loss; the methods it writes as a loss weighting
    (MGDA, IMTL-G, Nash-MTL and their log variants; ``objective_heads = True``) back-propagate
    their weighted objective into the heads too, so head k's gradient is scaled by task k's weight.
    Those methods have the ``head_gradients`` hyperparameter: ``plain`` gives their heads the plain
    gradients instead, as LibMTL does.
    """

    requires = Requirements(task_gradients=True)
    # True for the log_* variants: G holds the gradients of log(L_k + LOG_EPS) instead of L_k,
    # which makes the method invariant to each loss's scale (as in the FAMO paper's log-baselines).
    log_losses: ClassVar[bool] = False
    # True for the methods whose reference back-propagates the weighted objective into the heads.
    objective_heads: ClassVar[bool] = False
    head_gradients: str  # set by __init__ when objective_heads (the HEAD_GRADIENTS hyperparameter)

    @classmethod
    def all_hparams(cls) -> tuple[HParam, ...]:
        own = super().all_hparams()
        return own[:-1] + (HEAD_GRADIENTS,) + own[-1:] if cls.objective_heads else own

    @abstractmethod
    def aggregate(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, StepResult]:
        """Return the update direction [P] for the shared parameters, the weights and what to log."""

    def task_objectives(self, losses: torch.Tensor) -> torch.Tensor:
        """The K functions whose shared gradients form G: L_k, or log(L_k + LOG_EPS)."""
        return (losses + LOG_EPS).log() if self.log_losses else losses

    def head_objective(self, losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The scalar whose gradient the heads receive: Σ_k w_k · objective_k with ``head_gradients:
        objective`` (w = the applied weights), else Σ_k L_k (each head its plain ∇L_k; for [n, K]
        chunk losses the chunk mean, as in the full-batch loss)."""
        if self.objective_heads and self.head_gradients == "objective":
            return (weights.detach().to(losses) * self.task_objectives(losses)).sum()
        return losses.mean(0).sum() if losses.dim() == 2 else losses.sum()

    def _backward(self, losses, shared, heads, representation):
        grads = task_gradients(self.task_objectives(losses), shared, retain_graph=bool(heads))
        direction, result = self.aggregate(grads, losses.detach())
        self.apply_update(direction, shared, heads, losses, result.weights)
        return result

    def apply_update(self, direction, shared, heads, losses, weights) -> None:
        """Shared parameters get ``direction``; heads the gradient of ``head_objective``."""
        write_flat_gradient(direction, shared)
        if heads:
            backward_heads(self.head_objective(losses, weights), heads)
