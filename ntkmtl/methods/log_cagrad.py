"""log-CAGrad — CAGrad (Liu et al., NeurIPS 2021) on the gradients of log L_k.

The log-variant baseline of the FAMO paper (Liu et al., NeurIPS 2023): the same dual and update
as ``cagrad``, with g_k = ∇ log L_k so that the method does not depend on the losses' scales.
"""
from ntkmtl.methods.cagrad import CAGrad


class LogCAGrad(CAGrad):
    name = "log_cagrad"
    paper = "CAGrad (Liu et al. 2021) on log L_k, as in Liu et al., FAMO, NeurIPS 2023"
    log_losses = True
