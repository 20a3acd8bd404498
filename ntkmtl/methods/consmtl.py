"""ConsMTL — consistent MTL through the task-specific parameters (Qin et al., Towards Consistent
Multi-Task Learning: Unlocking the Potential of Task-Specific Parameters, CVPR 2025).

Shared parameters: the FairGrad-type update with α = 2, (G Gᵀ) x = x^(−1/2), update K · Gᵀx.
Heads: besides its own gradient, head k is pushed to make its representation gradient
δ_k = ∂L_k/∂z_k agree with the consensus δ = Σ_j x_j δ_j (detached):

    L_extra,k = −λ · ⟨δ_k, δ⟩,   grad(θ_k) = ∇L_k + clip(∇L_extra,k, 0.1 ‖∇L_k‖)

(second order through δ_k; λ = ``lambda_``). ``representation`` is z (one tensor shared by all
tasks) or a list of the K per-task representations (MTAN); ``task_specific_parameters`` must list
the heads task by task, the same number of tensors per task, as in the reference.
"""

import torch

from ntkmtl.methods.contract import Requirements
from ntkmtl.methods.fairgrad import fair_update_weights
from ntkmtl.methods.gradients import task_gradients, write_flat_gradient
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.options import HParam

CLIP_RATIO = 0.1  # the extra head gradient is clipped to this fraction of the head's own gradient


def _flat_norm(parts) -> torch.Tensor:
    return torch.sqrt(sum((g.detach() ** 2).sum() for g in parts))


class ConsMTL(GramianMethod):
    name = "consmtl"
    paper = "Qin et al., Towards Consistent Multi-Task Learning: Unlocking the Potential of Task-Specific Parameters, CVPR 2025"
    hparams = (HParam("lambda_", float, 1.0, "strength λ of the head consistency term", low=0.0),)
    default_max_norm = 1.0
    requires = Requirements(task_gradients=True, representation=True)
    k_scaling = "weights"

    def gramian_weights(self, gram, losses):
        return fair_update_weights(gram, 2.0, owner=self.name)

    def _backward(self, losses, shared, heads, representation):
        k = self.n_tasks
        if not heads:  # no head to make consistent: FairGrad (α = 2) alone
            return super()._backward(losses, shared, heads, representation)
        if len(heads) % k:
            raise ValueError(
                f"method 'consmtl': {len(heads)} task-specific parameters do not split into {k} tasks; "
                "pass the same number of head tensors per task, task by task"
            )
        reps = list(representation) if isinstance(representation, (list, tuple)) else [representation] * k
        if len(reps) != k:
            raise ValueError(f"method 'consmtl': {len(reps)} representations for {k} tasks")
        deltas = []
        for task in range(k):
            (delta,) = torch.autograd.grad(
                losses[task], reps[task], retain_graph=True, create_graph=True, allow_unused=True
            )
            deltas.append(delta if delta is not None else torch.zeros_like(reps[task]))
        grads = task_gradients(losses, shared, retain_graph=True)
        direction, result = self.aggregate(grads, losses.detach())
        write_flat_gradient(direction, shared)
        x = result.weights / k
        consensus = sum(x[task] * deltas[task].detach() for task in range(k))
        per_task = len(heads) // k
        for task in range(k):
            theta = heads[task * per_task : (task + 1) * per_task]
            own = self._grads(losses[task], theta)
            extra = self._grads(-self.lambda_ * (deltas[task] * consensus).sum(), theta)
            limit = CLIP_RATIO * _flat_norm(own)
            factor = (limit / (_flat_norm(extra) + 1e-6)).clamp(max=1.0)
            for p, g_own, g_extra in zip(theta, own, extra):
                g = g_own + factor * g_extra
                p.grad = g if p.grad is None else p.grad + g
        return result

    @staticmethod
    def _grads(objective, params):
        if not objective.requires_grad:
            return [torch.zeros_like(p) for p in params]
        parts = torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True)
        return [g if g is not None else torch.zeros_like(p) for p, g in zip(params, parts)]
