"""IMTL-G — impartial MTL, gradient balance (Liu et al., ICLR 2021).

Find weights α (Σ α = 1) such that the update g = Σ_k α_k g_k has equal projections on every
unit task gradient u_k = g_k / ‖g_k‖: gᵀ(u_1 − u_k) = 0 for k = 2..K. With D = [g_1 − g_k]_k and
U = [u_1 − u_k]_k this is the closed form

    α_{2..K} = g_1 Uᵀ (D Uᵀ)⁻¹,    α_1 = 1 − Σ_{k≥2} α_k,

computed here from the K × K Gramian only (no P-sized products). A singular system (e.g. two
identical task gradients) is counted in ``solver_failures`` and, as in the reference, solved with
D Uᵀ + 1e-8·I (``singular: lstsq`` takes the least-squares solution instead). As in the reference,
the heads get the gradient of Σ_k α_k L_k (``head_gradients: plain``: their plain ∇L_k).
"""

import torch

from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.gramian_method import GramianMethod
from ntkmtl.methods.solvers import report_failure
from ntkmtl.options import HParam

NORM_EPS = 1e-12


class IMTLG(GramianMethod):
    name = "imtl"
    paper = "Liu et al., Towards Impartial Multi-task Learning (IMTL-G), ICLR 2021"
    objective_heads = True
    hparams = (
        HParam(
            "singular",
            str,
            "regularize",
            "a singular system: regularize (the reference: add 1e-8·I) or lstsq (the least-squares solution)",
            choices=("regularize", "lstsq"),
        ),
    )

    def gramian_weights(self, gram, losses):
        info = {"solver_failures": 0}
        return StepResult(imtl_weights(gram.double(), self.singular, info, self.name).to(gram.dtype), info)


def imtl_weights(
    gram: torch.Tensor, singular: str = "regularize", info: dict | None = None, owner: str = "imtl"
) -> torch.Tensor:
    """IMTL-G's α from the Gramian A = G Gᵀ (float64); a singular system is counted in ``info``."""
    info = {} if info is None else info
    k = gram.shape[0]
    if k == 1:
        return torch.ones(1, dtype=gram.dtype, device=gram.device)
    inv_norm = 1.0 / gram.diagonal().clamp_min(0).sqrt().clamp_min(NORM_EPS)
    gu = gram * inv_norm  # gu[i, j] = g_i · u_j
    first = gu[0, 0] - gu[0, 1:]  # g_1 · (u_1 − u_k)
    # (D Uᵀ)[a, b] = (g_1 − g_a) · (u_1 − u_b), a, b = 2..K
    du = gu[0, 0] - gu[0, 1:][None, :] - gu[1:, 0][:, None] + gu[1:, 1:]
    try:
        rest = torch.linalg.solve(du.T, first)  # α_restᵀ = first · (DUᵀ)⁻¹
        if not torch.isfinite(rest).all():
            raise RuntimeError("non-finite solution")
    except RuntimeError as error:
        if singular == "regularize":
            report_failure(info, owner, f"singular IMTL system ({error}); adding 1e-8·I")
            rest = torch.linalg.solve((du + 1e-8 * torch.eye(k - 1, dtype=du.dtype, device=du.device)).T, first)
        else:
            report_failure(info, owner, f"singular IMTL system ({error}); using least squares")
            rest = torch.linalg.lstsq(du.T, first.unsqueeze(1)).solution.squeeze(1)
    return torch.cat([(1 - rest.sum()).reshape(1), rest])
