"""Weights & Biases settings for a sweep: one run per trial, grouped by sweep name.

The runs themselves are created by Ray's own ``WandbLoggerCallback`` (wired up in
``ntkmtl/sweep/tune.py``, the only module that imports Ray); this module holds what is ours:
the ``wandb.init`` arguments (project, entity, group = sweep name, mode, directory), each run's
name (``method-hp=value-…-seedN``) and config (benchmark, data, training set-up, method, every
hyperparameter, seed, config_id), and the check that online mode has an API key — made while the
config is validated, before Ray starts. ``wandb`` itself is imported only when W&B is enabled.
With ``mode: offline`` (or ``WANDB_MODE=offline``) no key is needed; ``wandb sync`` uploads later.
"""

from __future__ import annotations

import netrc
import os
from typing import Any, Mapping


def api_key_present() -> bool:
    """True when W&B online mode can authenticate: WANDB_API_KEY or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def init_kwargs(wandb_config: Any, sweep_name: str) -> dict[str, Any]:
    """Arguments shared by every run's ``wandb.init`` (the run's name and config are per trial)."""
    kwargs: dict[str, Any] = {"project": wandb_config.project, "group": sweep_name, "mode": wandb_config.mode}
    if wandb_config.entity:
        kwargs["entity"] = wandb_config.entity
    if wandb_config.dir:
        kwargs["dir"] = os.path.expanduser(wandb_config.dir)
    return kwargs


def run_config(sweep: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """The flat config logged with a trial's run: what defines it, nothing Ray-internal."""
    return {
        "benchmark": sweep["benchmark"],
        "method": spec["method"],
        "seed": spec["seed"],
        "config_id": spec["config_id"],
        **{f"hp_{k}": v for k, v in spec["hparams"].items()},
        **{f"data_{k}": v for k, v in sweep["data"].items()},
        **{f"train_{k}": v for k, v in sweep["train"].items()},
    }


def prepare_environment(wandb_config: Any) -> None:
    """Make the mode visible to every process (Ray's callback reads WANDB_MODE to skip the key check)."""
    os.environ["WANDB_MODE"] = wandb_config.mode
