"""Driver cost per reported result at N trials: ntkmtl's sweep driver against plain Ray Tune.

    python bench/driver_scale.py                          # N = 100, 300, 1000; 4 epochs; 3 runs per side
    python bench/driver_scale.py --trials 100 --repeats 1 # shorter
    python bench/driver_scale.py --smoke                  # N = 8, one run per side (the test runs this)
    python bench/driver_scale.py --trials 300 --only none # one side, in this process, printed alone

Both drivers run the same trivial trainable: it reports one synthetic epoch record per epoch at
once with a tiny checkpoint (restored after a pause, as the real trainable does), as wide as a
QM9 trial's (11 tasks: train losses, val/test MAEs, Δm, weights, lr, timings), with
the early-stopping metric equal across configurations (early stopping judges every rung, stops none).
ntkmtl's side is ``ntkmtl.sweep.tune.run_sweep`` itself — Parquet callback (one file per trial,
rewritten each epoch), the progress reporter, the final summary — on a grid of N/2
configurations × 2 seeds, once without early stopping and once with seed-aware ASHA (whose
pauses at every rung are Ray's pause: the trial's actor stops and restarts from its checkpoint);
plain Ray Tune's side is ``tune.Tuner`` with the same trainable and grid, FIFO, no callbacks,
actors reused and ``num_to_keep=2`` as ntkmtl's, run twice: as Ray runs it (a whole experiment
snapshot forced whenever a trial has made ``num_to_keep`` checkpoints since the last one), and
with snapshots on Ray's schedule only, as ntkmtl's driver takes them
(``ntkmtl.sweep.checkpoints.snapshots_on_schedule``): the same work as ntkmtl's driver. The figure is the driver process's CPU seconds (all its threads,
``time.process_time``) per reported result, so other load on the machine inflates it less than
wall time. Every run of a side is a fresh interpreter with its own local Ray cluster (2 CPUs),
so no side pays for another's actors, placement groups or memory; the sides' order alternates
between repeats (as listed, then reversed) and the table reports medians with their range.
The target: ntkmtl ≤ 1.1× plain Ray Tune per result, and flat in N (no path whose cost per
result grows with the number of trials or epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Ray Tune alone (as Ray runs it; snapshots on schedule only); ntkmtl without early stopping; with seed-aware ASHA
SIDES = ("plain", "plain_on_schedule", "none", "seed_asha")
QM9_TASKS = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "U0", "U", "H", "G", "Cv")


def synthetic_trial(config: dict) -> None:
    """Reports ``epochs`` QM9-wide records at once. The early-stopping metric (val Δm) is the same for
    every configuration, so seed-aware ASHA pauses and judges every rung but stops no trial, and
    both drivers handle the same N × epochs results."""
    from ray import tune

    spec, epochs = config["trial"], config["sweep"]["train"]["epochs"]
    level = float(spec["hparams"].get("max_norm", 0.0)) + 0.01 * spec["seed"]
    start = 1
    checkpoint = tune.get_checkpoint()  # a paused seed resumes where it stopped, as run_trial does
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start = int((Path(directory) / "epoch").read_text()) + 1
    for epoch in range(start, epochs + 1):
        record: dict = {"epoch": epoch, "status": "completed" if epoch == epochs else "running"}
        for i, task in enumerate(QM9_TASKS):
            record[f"train_loss_{task}"] = level + 1.0 / epoch + i
            record[f"val_mae_{task}"] = level + 2.0 / epoch + i
            record[f"test_mae_{task}"] = level + 2.1 / epoch + i
            record[f"weight_{task}"] = 1.0
        record.update(
            val_delta_m=10.0 / epoch,
            test_delta_m=100 * level + 11.0 / epoch,
            lr=1e-3,
            epoch_seconds=0.0,
            samples_per_second=0.0,
            node_id="bench",
        )
        with tempfile.TemporaryDirectory(prefix="scale-ckpt-") as directory:
            (Path(directory) / "epoch").write_text(str(epoch))
            tune.report(record, checkpoint=tune.Checkpoint.from_directory(directory))


def sweep_config(root: Path, n_trials: int, epochs: int, early_stopping: str = "seed_asha"):
    from ntkmtl.sweep.config import parse_config

    raw = {
        "name": f"scale{n_trials}-{early_stopping}",
        "benchmark": "toy",
        "seeds": [0, 1],
        "train": {"epochs": epochs},
        "methods": {"ls": {"max_norm": [round(0.001 * i, 3) for i in range(n_trials // 2)]}},
        "early_stopping": {"type": "seed_asha", "grace_period": 1, "reduction_factor": 2}
        if early_stopping == "seed_asha"
        else {"type": "none"},
        "storage": str(root / "ray"),
        "output": str(root / f"out-{early_stopping}"),  # one sweep per directory
    }
    return parse_config(raw, source="bench/driver_scale.py")


def run_ntkmtl(n_trials: int, epochs: int, root: Path, early_stopping: str = "seed_asha") -> tuple[float, int]:
    from ntkmtl.sweep.export import read_results
    from ntkmtl.sweep.tune import run_sweep

    cfg = sweep_config(root, n_trials, epochs, early_stopping)
    start = time.process_time()  # after the imports: both sides are timed from a loaded driver
    run_sweep(cfg, verbose=1, trainable=synthetic_trial)
    cpu = time.process_time() - start
    return cpu, len(read_results(cfg.output).query("sweep == @cfg.name"))


def run_plain(n_trials: int, epochs: int, root: Path) -> tuple[float, int]:
    from ray import tune

    from ntkmtl.sweep.plan import build_plan

    cfg = sweep_config(root, n_trials, epochs)
    specs = [s.to_dict() for s in build_plan(cfg)]
    tuner = tune.Tuner(
        tune.with_resources(synthetic_trial, {"cpu": 1}),
        param_space={"sweep": {"train": {"epochs": epochs}}, "trial": tune.grid_search(specs)},
        tune_config=tune.TuneConfig(reuse_actors=True),  # as ntkmtl's driver
        run_config=tune.RunConfig(
            name=f"plain{n_trials}",
            storage_path=str(root / "plain"),
            verbose=1,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),  # as ntkmtl's
    )
    start = time.process_time()
    grid = tuner.fit()
    cpu = time.process_time() - start
    return cpu, sum(int((r.metrics or {}).get("training_iteration", 0)) for r in grid)


def measure_alone(side: str, n_trials: int, epochs: int) -> dict:
    """One side in this process's own Ray session (nothing ran before it): its CPU seconds and results."""
    import ray

    import ntkmtl.sweep.tune  # noqa: F401  (torch, pandas, pyarrow: loaded once, before any timing)

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="ntkmtl-scale-") as tmp:
            wall, root = time.monotonic(), Path(tmp)
            if side == "plain":
                cpu, results = run_plain(n_trials, epochs, root)
            elif side == "plain_on_schedule":
                from ntkmtl.sweep.checkpoints import snapshots_on_schedule

                with snapshots_on_schedule():
                    cpu, results = run_plain(n_trials, epochs, root)
            else:
                cpu, results = run_ntkmtl(n_trials, epochs, root, side)
            return {"side": side, "trials": n_trials, "cpu": cpu, "results": results, "wall": time.monotonic() - wall}
    finally:
        ray.shutdown()


def run_in_subprocess(side: str, n_trials: int, epochs: int) -> dict:
    """``measure_alone`` in a fresh interpreter, so no side inherits another's Ray session or memory."""
    with tempfile.TemporaryDirectory(prefix="ntkmtl-scale-record-") as tmp:
        record = Path(tmp) / "record.json"
        command = [
            sys.executable,
            __file__,
            "--only",
            side,
            "--trials",
            str(n_trials),
            "--epochs",
            str(epochs),
        ]
        done = subprocess.run([*command, "--record", str(record)], stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0 or not record.exists():
            raise SystemExit(f"error: {' '.join(command)} failed (exit {done.returncode}); run it alone to see why")
        return json.loads(record.read_text().splitlines()[-1])


def orders(repeats: int) -> list[tuple[str, ...]]:
    """The sides' order in each repeat: as SIDES, then reversed, alternating, so no side always runs first."""
    return [SIDES if r % 2 == 0 else SIDES[::-1] for r in range(repeats)]


def table(runs: list[dict], epochs: int, repeats: int) -> str:
    """Markdown: per N and side the median cost per result over the repeats (min–max), and the ratios of medians."""
    lines = [
        f"Driver CPU time per reported result (ms), {epochs} epochs per trial; median over {repeats} run(s) of each "
        "side alone in its own process and Ray session (min–max; results per run; median wall seconds)",
        "",
        "| N trials | Ray Tune | Ray Tune, snapshots on schedule | ntkmtl, no early stopping "
        "| ntkmtl, seed-aware ASHA | ntkmtl (none) / Ray Tune on schedule | ntkmtl (seed_asha) / Ray Tune on schedule "
        "| ntkmtl (none) / Ray Tune |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted({run["trials"] for run in runs}):
        cells, medians = [], {}
        for side in SIDES:
            mine = [run for run in runs if run["trials"] == n and run["side"] == side]
            per = [1000 * run["cpu"] / max(run["results"], 1) for run in mine]
            counts = "/".join(sorted({str(run["results"]) for run in mine}))
            wall = statistics.median(run["wall"] for run in mine)
            medians[side] = statistics.median(per)
            cells.append(f"{medians[side]:.2f} ({min(per):.2f}–{max(per):.2f}; {counts} results, {wall:.0f} s)")
        ratios = (
            medians["none"] / medians["plain_on_schedule"],
            medians["seed_asha"] / medians["plain_on_schedule"],
            medians["none"] / medians["plain"],
        )
        lines.append(f"| {n} | {' | '.join(cells)} | {' | '.join(f'{r:.2f}' for r in ratios)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per N (medians are reported)")
    parser.add_argument("--smoke", action="store_true", help="N = 8, 2 epochs, one run per side: every code path")
    parser.add_argument(
        "--only",
        choices=SIDES,
        help="run this side alone in this process (its own Ray session) and print its cost per result",
    )
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)  # --only's figures as JSON, for the parent
    args = parser.parse_args(argv)
    trials, epochs, repeats = ([8], 2, 1) if args.smoke else (args.trials, args.epochs, args.repeats)
    if any(n < 2 or n % 2 for n in trials):
        parser.error("--trials: each N must be an even number ≥ 2 (N/2 configurations × 2 seeds)")
    if repeats < 1:
        parser.error("--repeats: at least 1")
    if args.only:
        for n in trials:
            run = measure_alone(args.only, n, epochs)
            per = 1000 * run["cpu"] / max(run["results"], 1)
            print(f"N={n} {args.only}: {per:.2f} ms/result ({run['results']} results, {run['wall']:.0f} s)", flush=True)
            if args.record:
                with args.record.open("a") as record:
                    record.write(json.dumps(run) + "\n")
        return
    runs = []
    for n in trials:
        for r, order in enumerate(orders(repeats), 1):
            for side in order:
                runs.append(run_in_subprocess(side, n, epochs))
                per = 1000 * runs[-1]["cpu"] / max(runs[-1]["results"], 1)
                print(f"N={n} run {r}/{repeats} {side}: {per:.2f} ms/result", file=sys.stderr, flush=True)
    print("\n" + table(runs, epochs, repeats))


if __name__ == "__main__":
    main()
