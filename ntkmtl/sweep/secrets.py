"""Credentials stay out of Ray's runtime environments, which Ray logs in plain text.

Ray writes every runtime environment it creates, ``env_vars`` values included, to its session log
``<temp dir>/session_*/logs/runtime_env_agent.log`` (mode 644 under the usual umask 022). Two
parts of Ray 2.x put credentials there for a Tune sweep:

* ``ray.tune.execution.class_cache.ENV_VARS_TO_PROPAGATE`` copies ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SECURITY_TOKEN`` and ``AWS_SESSION_TOKEN`` from the driver into
  the runtime environment of every trainable actor (``_ActorClassCache.get``);
* ``ray.air.integrations.wandb.WandbLoggerCallback._start_logging_actor`` copies
  ``WANDB_API_KEY`` into the runtime environment of its logging actor.

``keep_out_of_ray`` removes every secret-looking name from the first list, and
``wandb_logging_actor`` builds the W&B logging actor with Ray's options minus that environment
(``ntkmtl/sweep/tune.py`` calls both). Workers then read credentials where they run: on one
machine they inherit the driver's environment through the Ray processes it starts; on a cluster
each node uses its own (instance role or ``~/.aws/credentials``, ``~/.netrc`` from ``wandb
login``, the environment ``ray start`` ran in). What ntkmtl cannot remove — a job runtime
environment the user gave Ray (``ray job submit --runtime-env-json``) — is warned about.
docs/SWEEP.md#secrets says how to keep Ray's session logs private.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Iterable, cast

SECRET_WORDS = frozenset(
    {
        "KEY",
        "APIKEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "CREDENTIALS",
        "PRIVATE",
    }
)
"""A variable looks secret when one of its ``_``-separated words is one of these."""

DOCS = "docs/SWEEP.md#secrets"
_withheld: set[str] = set()  # the secret-looking names removed from Ray's propagation list


def looks_secret(name: str) -> bool:
    """``WANDB_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``HF_TOKEN``: yes; ``RAY_AUTH_MODE``: no."""
    return any(word in SECRET_WORDS for word in re.split(r"[^A-Z0-9]+", name.upper()))


def withhold_from_trainables() -> list[str]:
    """Drop secret-looking names from the variables Ray Tune copies into its trainables'
    runtime environment; return the dropped names, as they are set in this process."""
    from ray.tune.execution import class_cache

    propagated = set(class_cache.ENV_VARS_TO_PROPAGATE)
    _withheld.update(name for name in propagated if looks_secret(name))
    class_cache.ENV_VARS_TO_PROPAGATE = propagated - _withheld
    return sorted(name for name in _withheld if name in os.environ)


def wandb_logging_actor(callback: Any):
    """The remote class of a ``WandbLoggerCallback``'s logging actor: Ray's own options (on this
    node, restartable) without the runtime environment that would carry ``WANDB_API_KEY``."""
    import ray
    from ray.air.integrations.wandb import _force_on_current_node

    # called without an argument, _force_on_current_node returns the options dict (Ray annotates the union)
    node_options = cast(dict[str, Any], _force_on_current_node())
    return ray.remote(num_cpus=0, **node_options, max_restarts=-1, max_task_retries=-1)(callback._logger_actor_cls)


def job_secrets(runtime_env: Any) -> list[str]:
    """The secret-looking variables a (job's) runtime environment sets, sorted."""
    env_vars = (runtime_env or {}).get("env_vars") or {}
    return sorted(name for name in env_vars if looks_secret(name))


def messages(withheld: Iterable[str], job: Iterable[str], cluster: bool) -> list[str]:
    """The lines ``keep_out_of_ray`` prints: a warning for a job environment's secrets (they reach
    Ray's logs), and on a cluster a note naming the credentials workers must find on their nodes."""
    lines = []
    job = list(job)
    if job:
        lines.append(
            f"warning: the Ray job's runtime environment sets {', '.join(job)} for every worker, and Ray writes "
            f"runtime environments in plain text to its session logs (runtime_env_agent.log); set credentials "
            f"on the nodes instead ({DOCS})"
        )
    withheld = sorted(set(withheld) - set(job))
    if cluster and withheld:
        lines.append(
            f"note: {', '.join(withheld)} {'is' if len(withheld) == 1 else 'are'} not passed to Ray's workers "
            "(Ray would write them to its session logs); workers on every node read credentials from their "
            f"own environment or config files ({DOCS})"
        )
    return lines


def keep_out_of_ray(address: str | None, wandb_enabled: bool = False) -> list[str]:
    """After ``ray.init``: withhold credentials from the trainables' runtime environment and
    print (stderr) and return the lines of ``messages``."""
    import ray

    withheld = withhold_from_trainables()
    if wandb_enabled and "WANDB_API_KEY" in os.environ:
        withheld.append("WANDB_API_KEY")
    lines = messages(withheld, job_secrets(ray.get_runtime_context().runtime_env), cluster=address is not None)
    for line in lines:
        print(line, file=sys.stderr, flush=True)
    return lines
