"""log-MGDA — MGDA on the log losses (the log-variant baseline of Liu et al., FAMO, NeurIPS 2023).

x* = MGDA's min-norm weights of the gradients of log L_k (scale-free). The update is that of
Σ_k x*_k log L_k / c with c = Σ_k x*_k / L_k, i.e. Σ_k w_k ∇log L_k with w_k = x*_k / c, so the
weights it puts on the raw gradients ∇L_k (w_k / L_k) sum to 1, as in the reference. The heads
get the gradient of that objective, Σ_k w_k log L_k, as in the reference (``head_gradients``).
"""

from ntkmtl.methods.base import LOG_EPS
from ntkmtl.methods.contract import StepResult
from ntkmtl.methods.mgda import MGDA, min_norm_point


class LogMGDA(MGDA):
    name = "log_mgda"
    paper = "MGDA (Sener & Koltun 2018) on log L_k, as in Liu et al., FAMO, NeurIPS 2023"
    log_losses = True

    k_scaling = None  # x / c: the weights on the raw gradients sum to 1

    def gramian_weights(self, gram, losses):
        x, info = min_norm_point(gram, self.solver, self.name)
        return StepResult(x / (x / (losses + LOG_EPS)).sum(), info)
