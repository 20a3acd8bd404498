"""log-CAGrad — CAGrad (Liu et al., NeurIPS 2021) on the gradients of log L_k.

The log-variant baseline of the FAMO paper (Liu et al., NeurIPS 2023): the same dual and update
as ``cagrad``, with g_k = ∇ log L_k so that the method does not depend on the losses' scales.
The heads get Σ_k ∇ log L_k, the gradients the reference's K backward passes of log L_k leave
on them (``head_gradients: plain`` gives them the plain ∇L_k instead). The reference takes
log L_k without the 1e-8 that keeps a zero loss finite here.
"""

from ntkmtl.methods.cagrad import CAGrad


class LogCAGrad(CAGrad):
    name = "log_cagrad"
    paper = "CAGrad (Liu et al. 2021) on log L_k, as in Liu et al., FAMO, NeurIPS 2023"
    log_losses = True
    objective_heads = True

    def head_objective(self, losses, weights):
        if self.head_gradients == "objective":
            return self.task_objectives(losses).sum()
        return super().head_objective(losses, weights)
