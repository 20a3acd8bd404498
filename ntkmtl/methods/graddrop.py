"""GradDrop — gradient sign dropout (Chen et al., NeurIPS 2020).

Per coordinate p of the shared gradient, the sign purity P = ½ (1 + Σ_k g_kp / Σ_k |g_kp|) and a
draw U ~ U(0, 1) keep only the positive components (P > U) or only the negative ones (P < U):

    update_p = Σ_k g_kp · [P_p > U_p and g_kp > 0  or  P_p < U_p and g_kp < 0]

(on the LS scale: the reference's mean times K). Applied to the shared parameters' gradients as
in the reference (the paper applies it at activations). U comes from the global generator of the
gradients' device. Reported weights: the share of each task's gradient mass kept, ‖M_k g_k‖₁/‖g_k‖₁.
"""

import torch

from ntkmtl.methods.base import GradientMethod
from ntkmtl.methods.contract import StepResult


class GradDrop(GradientMethod):
    name = "graddrop"
    paper = "Chen et al., Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout, NeurIPS 2020"
    default_max_norm = 1.0

    def aggregate(self, grads, losses):
        # Σ_k max(g_k, 0) = (Σg + Σ|g|)/2 and Σ_k min(g_k, 0) = (Σg − Σ|g|)/2: no K × P mask needed
        magnitudes = grads.abs()
        total, l1 = grads.sum(0), magnitudes.sum(0)
        purity = 0.5 * (1.0 + total / (l1 + 1e-8))
        draw = torch.rand(grads.shape[1], dtype=grads.dtype, device=grads.device)
        keep_positive = (purity > draw).to(grads.dtype)
        keep_negative = (purity < draw).to(grads.dtype)
        direction = 0.5 * (keep_positive * (total + l1) + keep_negative * (total - l1))
        kept = 0.5 * (magnitudes @ (keep_positive + keep_negative) + grads @ (keep_positive - keep_negative))
        mass = magnitudes.sum(1)
        weights = torch.where(mass > 0, kept / mass.clamp_min(1e-30), torch.ones_like(mass))
        return direction, StepResult(weights)
