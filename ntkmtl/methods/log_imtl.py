"""log-IMTL — IMTL-G (Liu et al., ICLR 2021) on the gradients of log L_k.

The log-variant baseline of the FAMO paper (Liu et al., NeurIPS 2023): IMTL-G's weights α for the
gradients of log L_k; the update is Σ_k α_k ∇ log L_k, and the heads get the gradient of
Σ_k α_k log L_k, as in the reference (``head_gradients``).
"""

from ntkmtl.methods.imtl import IMTLG


class LogIMTLG(IMTLG):
    name = "log_imtl"
    paper = "IMTL-G (Liu et al. 2021) on log L_k, as in Liu et al., FAMO, NeurIPS 2023"
    log_losses = True
