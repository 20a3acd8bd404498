"""The Ray Tune function trainable: one ``ntkmtl.train.Trial``, one report + checkpoint per epoch.

It calls ``tune.report(record, checkpoint=…)`` after every epoch (the trial's state and the
info file that names its epoch, ``checkpoints.describe_checkpoint``) and ``tune.get_checkpoint()``
to resume. Data is loaded once per worker process, not once per trial: the loaded benchmark is
kept in a process-level cache keyed by benchmark and data options, and actors are reused between
trials (``reuse_actors``), so a worker trains trial after trial on data it already holds.

A trial whose record is ``diverged`` (non-finite loss or metric) or whose early-stopping metric is not
finite reports that record and returns: it ends ``diverged`` and the sweep goes on.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from typing import Any

import ray
from ray import tune
from ray.tune.experiment import Trial as RayTrial

from ntkmtl.benchmarks import Benchmark, get_benchmark
from ntkmtl.sweep.checkpoints import describe_checkpoint
from ntkmtl.sweep.faults import inject_after_report, inject_before_report
from ntkmtl.sweep.plan import TrialSpec

_BENCHMARK_CACHE: dict[str, Benchmark] = {}


def cached_benchmark(name: str, data: dict[str, Any]) -> Benchmark:
    """The benchmark with these data options, built once per worker process (its data stays loaded)."""
    key = json.dumps([name, data], sort_keys=True, default=str)
    if key not in _BENCHMARK_CACHE:
        _BENCHMARK_CACHE[key] = get_benchmark(name, **data)
    return _BENCHMARK_CACHE[key]


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one ``ntkmtl.train.Trial``, one report + checkpoint per epoch."""
    import torch

    from ntkmtl.train import Trial, TrialConfig

    sweep, spec = config["sweep"], TrialSpec.from_dict(config["trial"])
    torch.set_num_threads(sweep["threads"])
    for name in ("ray.train", "ray.tune"):  # one INFO line per checkpoint and restore drowns the progress table
        logging.getLogger(name).setLevel(logging.WARNING)
    trial_config = TrialConfig(
        benchmark=sweep["benchmark"],
        method=spec.method,
        hparams=spec.hparams,
        data=sweep["data"],
        seed=spec.seed,
        **sweep["train"],
    )
    trial = Trial(trial_config, benchmark=cached_benchmark(sweep["benchmark"], sweep["data"]))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trial.load_checkpoint(directory)
    trial_dir = tune.get_context().get_trial_dir()
    node_id = ray.get_runtime_context().get_node_id()  # a trial resumed elsewhere reports its new node
    if spec.stop_after is not None and trial.epoch >= spec.stop_after:
        return  # restored after its last epoch (an extension's seed that stops with its configuration)
    for record in trial.run():
        record["node_id"] = node_id
        inject_before_report(sweep["faults"], spec.run_name, record)
        if not math.isfinite(record.get(sweep["metric"], float("nan"))):
            record["status"] = "diverged"
        if record["status"] == "diverged":
            tune.report(record)
            return
        with tempfile.TemporaryDirectory(prefix="ntkmtl-ckpt-") as directory:
            trial.save_checkpoint(directory)
            describe_checkpoint(directory, record["epoch"])  # its epoch, for a resume (checkpoints.py)
            tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))
        inject_after_report(sweep["faults"], spec.run_name, record["epoch"], trial_dir)
        if spec.stop_after is not None and record["epoch"] >= spec.stop_after:
            return  # ends stopped_early (or completed at the last epoch), as its configuration's seeds


def trial_name(trial: RayTrial) -> str:
    """Progress table and W&B run name: ``method-hp=value-…-seedN``."""
    return TrialSpec.from_dict(trial.config["trial"]).run_name


def trial_dirname(trial: RayTrial) -> str:
    return f"{trial_name(trial)}_{trial.trial_id}"
