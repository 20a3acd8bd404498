"""One prepared script for a GPU machine: step times, precisions, batched gradients, trials per GPU.

    python bench/gpu.py --out gpu-report.md      # on a GPU machine: the full report (< 8 min on one modern GPU)
    python bench/gpu.py --smoke                  # anywhere, CPU, tiny shapes, seconds: the script works
    python bench/gpu.py --device cpu --models qm9 --methods ls ntkmtl --pack 1   # the real shapes on CPU

It prints one Markdown report (and writes it to ``--out``):

1. Per benchmark model at the real input shapes — QM9's MPNN on real molecules (batch 120),
   CelebA's CNN on 64×64 tensors (batch 256, 40 tasks), SegNet-MTAN on NYUv2's 288×384 (batch 2)
   and Cityscapes' 128×256 (batch 8) synthetic tensors — the time of one training step
   (``ntkmtl.train.Trial._step``: forward, ``method.backward``, optimizer step, exactly what a trial
   runs) of ls, famo, ntkmtl with the loop and with batched per-task gradients, ntkmtl_sr, nashmtl
   and pcgrad, in fp32 and bf16, each as a ratio to LS in the same precision from the same run
   (round-robin over methods, median of ``--repeats`` steps), and the peak GPU memory of each trial.
2. QM9 trials packed 1, 2, 4, 8 per GPU as concurrent processes (each one real trial: its own
   model, optimizer and data) stepping together for ``--pack-seconds``: steps/s per trial, the
   aggregate, the per-trial slowdown against one trial alone, peak memory per trial and the
   device memory in use. This decides QM9's ``TrainDefaults.gpu_fraction`` (ntkmtl/benchmarks/qm9.py).
3. What the figures suggest for QM9's ``gpu_fraction`` and for
   ``DEFAULT_TASK_GRADIENTS["cuda"]`` (ntkmtl/methods/gradients.py), by the rules printed with them.

Clock: wall time after ``torch.cuda.synchronize()`` on CUDA; on CPU this process's CPU time (so
other jobs on a shared machine do not inflate a step). ``--smoke`` runs every code path on CPU
with tiny shapes, one timed round and LS trials packed 1 and 2: its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ntkmtl.benchmarks import benchmark_class  # noqa: E402
from ntkmtl.train import EpochStats, Trial, TrialConfig  # noqa: E402

LS = "ls"
NTKMTL_BATCHED = "ntkmtl (batched)"
NTKMTL_LOOP = "ntkmtl (loop)"
METHODS = ("ls", "famo", "ntkmtl", "ntkmtl_sr", "nashmtl", "pcgrad")  # ntkmtl runs twice: loop and batched
MODELS = ("qm9", "celeba", "nyuv2", "cityscapes")
PRECISIONS = ("fp32", "bf16")
PACKING = (1, 2, 4, 8)
MIB = 2.0**20


@dataclass(frozen=True)
class ModelSetup:
    """One benchmark model at its input shape: data options, batch size, image size (None: QM9 graphs)."""

    benchmark: str
    batch_size: int
    image_size: tuple[int, int] | None
    data: dict
    label: str


def model_setups(smoke: bool) -> dict[str, ModelSetup]:
    """The real shapes (the benchmarks' default batch sizes), or tiny ones for ``--smoke``."""
    if smoke:
        thin = {"width_multiplier": 0.125}
        return {
            "qm9": ModelSetup(
                "qm9",
                8,
                None,
                {"train_size": 16, "val_size": 2, "test_size": 2, "progress": False},
                "MPNN, 16 real molecules, batch 8",
            ),
            "celeba": ModelSetup("celeba", 4, (32, 32), thin, "CNN 1/8 width, 32×32, batch 4"),
            "nyuv2": ModelSetup("nyuv2", 2, (32, 32), thin, "SegNet-MTAN 1/8 width, 32×32, batch 2"),
            "cityscapes": ModelSetup("cityscapes", 2, (32, 32), thin, "SegNet-MTAN 1/8 width, 32×32, batch 2"),
        }
    return {
        "qm9": ModelSetup(
            "qm9",
            120,
            None,
            {"train_size": 1200, "val_size": 10, "test_size": 10, "progress": False},
            "MPNN (NNConv + GRU + Set2Set), real molecules, batch 120",
        ),
        "celeba": ModelSetup("celeba", 256, (64, 64), {}, "9-layer CNN, 64×64 synthetic images, batch 256"),
        "nyuv2": ModelSetup("nyuv2", 2, (288, 384), {}, "SegNet-MTAN, 288×384 synthetic tensors, batch 2"),
        "cityscapes": ModelSetup("cityscapes", 8, (128, 256), {}, "SegNet-MTAN, 128×256 synthetic tensors, batch 8"),
    }


# -- data: real QM9 molecules, synthetic image tensors -------------------------------------------
def synthetic_batch(setup: ModelSetup, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One batch in exactly the layout the benchmark's loader yields (random values)."""
    b, (h, w) = setup.batch_size, setup.image_size
    images = torch.rand(b, 3, h, w, generator=generator)
    if setup.benchmark == "celeba":
        return {"image": images, "labels": (torch.rand(b, 40, generator=generator) > 0.5).float()}
    n_classes = benchmark_class(setup.benchmark).n_classes
    label = torch.randint(0, n_classes, (b, h, w), generator=generator)
    label[torch.rand(b, h, w, generator=generator) < 0.1] = -1
    batch = {"image": images, "label": label, "depth": torch.rand(b, 1, h, w, generator=generator) + 0.5}
    if setup.benchmark == "nyuv2":
        normal = torch.randn(b, 3, h, w, generator=generator)
        batch["normal"] = normal / normal.norm(dim=1, keepdim=True)
    return batch


def build_benchmark(setup: ModelSetup):
    """The benchmark object and a few training batches (on the CPU): QM9 from real molecules,
    the image benchmarks as a subclass whose data are synthetic tensors of the real shape."""
    cls = benchmark_class(setup.benchmark)
    if setup.benchmark == "qm9":
        benchmark = cls(**setup.data)
        train, _, _ = benchmark.loaders(setup.batch_size, 0, 0)
        batches = [b for _, b in zip(range(4), train)]
        return benchmark, batches
    generator = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(setup, generator) for _ in range(2)]

    class Synthetic(cls):
        def check_data(self) -> None:
            """Synthetic tensors: nothing on disk."""

        def loaders(self, batch_size, seed, num_workers=0):
            return batches, [], []

    Synthetic.__name__ = f"Synthetic{cls.__name__}"
    return Synthetic(**setup.data), batches


# -- one trial's steps ------------------------------------------------------------------------
class Runner:
    """A real ``Trial`` of one method in one precision and task-gradient mode, stepping on fixed batches."""

    def __init__(self, label: str, setup: ModelSetup, benchmark, batches, precision: str, device: torch.device):
        method = "ntkmtl" if label.startswith("ntkmtl (") else label
        mode = "batched" if label == NTKMTL_BATCHED else "loop"
        config = TrialConfig(
            benchmark=setup.benchmark,
            method=method,
            data=dict(setup.data),
            seed=0,
            batch_size=setup.batch_size,
            device=device.type,
            precision=precision,
            task_gradients=mode,
        )
        self.label = label
        self.trial = Trial(config, benchmark=benchmark)
        self.batches = [benchmark.batch_to(b, device) for b in batches]
        self.stats = EpochStats(benchmark.tasks)
        self.count = 0

    def step(self) -> None:
        batch = self.batches[self.count % len(self.batches)]
        self.count += 1
        if self.trial._step(batch, self.stats) is None:
            raise RuntimeError(f"{self.label}: non-finite loss during the benchmark")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock_for(device: torch.device):
    return time.perf_counter if device.type == "cuda" else time.process_time


def time_model(setup, labels, precision, device, warmup, repeats) -> dict[str, dict[str, float]]:
    """Median step seconds and peak memory (MiB, CUDA) per method label, round-robin over methods."""
    benchmark, batches = build_benchmark(setup)
    clock = clock_for(device)
    runners, peak, failed = [], {}, set()
    for label in labels:
        if device.type == "cuda":
            synchronize(device)
            baseline = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        try:
            runner = Runner(label, setup, benchmark, batches, precision, device)
            for _ in range(warmup):
                runner.step()
        except torch.cuda.OutOfMemoryError:
            failed.add(label)  # reported as OOM; the other methods go on
            runner = None
            torch.cuda.empty_cache()
            continue
        if device.type == "cuda":
            synchronize(device)
            peak[label] = (torch.cuda.max_memory_allocated(device) - baseline) / MIB
        runners.append(runner)
    times: dict[str, list[float]] = {r.label: [] for r in runners}
    for _ in range(repeats):
        for runner in [r for r in runners if r.label not in failed]:
            synchronize(device)
            start = clock()
            try:
                runner.step()
            except torch.cuda.OutOfMemoryError:
                failed.add(runner.label)
                torch.cuda.empty_cache()
                continue
            synchronize(device)
            times[runner.label].append(clock() - start)
    nan = float("nan")
    return {
        label: {
            "seconds": nan if label in failed else statistics.median(times[label]),
            "peak_mib": peak.get(label, nan),
            "oom": label in failed,
        }
        for label in labels
    }


# -- packing: concurrent QM9 trials ------------------------------------------------------------
def pack_worker(rank, setup, method, precision, device_name, seconds, warmup, threads, barrier, results) -> None:
    """One QM9 trial in its own process: warm up, wait for all, step for ``seconds``, report."""
    try:
        torch.set_num_threads(threads)
        device = torch.device(device_name)
        benchmark, batches = build_benchmark(setup)
        runner = Runner(method, setup, benchmark, batches, precision, device)
        for _ in range(warmup):
            runner.step()
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        barrier.wait(timeout=600)
        start = time.perf_counter()
        steps = 0
        while time.perf_counter() - start < seconds:
            runner.step()
            steps += 1
        synchronize(device)
        elapsed = time.perf_counter() - start
        result = {
            "rank": rank,
            "steps": steps,
            "seconds": elapsed,
            "peak_mib": float("nan"),
            "device_used_mib": float("nan"),
        }
        if device.type == "cuda":
            result["peak_mib"] = torch.cuda.max_memory_reserved(device) / MIB
            free, total = torch.cuda.mem_get_info(device)
            result["device_used_mib"] = (total - free) / MIB  # every process's memory, CUDA contexts included
        barrier.wait(timeout=600)  # all alive while rank 0's device reading above is taken
        results.put(result)
    except Exception:  # noqa: BLE001 — any failure is sent to the parent, which reports it; a broken barrier frees the others
        barrier.abort()
        results.put({"rank": rank, "error": traceback.format_exc(limit=3)})


def run_packing(setup, method, precision, device, n_trials, seconds, warmup) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    barrier, results = context.Barrier(n_trials), context.Queue()
    threads = 1 if device.type == "cpu" else max(1, (os.cpu_count() or 1) // n_trials)
    processes = [
        context.Process(
            target=pack_worker,
            args=(rank, setup, method, precision, str(device), seconds, warmup, threads, barrier, results),
        )
        for rank in range(n_trials)
    ]
    for process in processes:
        process.start()
    collected = [results.get(timeout=900) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [r["error"] for r in collected if "error" in r]
    if errors:
        raise RuntimeError(f"packing {n_trials} × {method}: a trial process failed:\n{errors[0]}")
    rates = [r["steps"] / r["seconds"] for r in collected]
    return {
        "per_trial": statistics.mean(rates),
        "aggregate": sum(rates),
        "peak_mib": max(r["peak_mib"] for r in collected),
        "device_used_mib": max(r["device_used_mib"] for r in collected),
    }


# -- the report ---------------------------------------------------------------------------------
def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def device_line(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return (
            f"{props.name} ({props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}), "
            f"{torch.cuda.device_count()} visible; CUDA {torch.version.cuda}"
        )
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def step_table(setup, results, precisions, labels, cuda: bool) -> list[str]:
    header = "| method |"
    rule = "|---|"
    for p in precisions:
        header += f" {p} ms | {p} ×LS |"
        rule += "---|---|"
    if len(precisions) == 2:
        header += f" {precisions[1]}/{precisions[0]} |"
        rule += "---|"
    if cuda:
        header += "".join(f" peak MiB {p} |" for p in precisions)
        rule += "---|" * len(precisions)
    lines = [
        f"### {setup.benchmark}: {setup.label}, K = {len(benchmark_class(setup.benchmark).tasks)}",
        "",
        header,
        rule,
    ]
    for label in labels:
        row = f"| {label} |"
        for p in precisions:
            t, ls = results[p][label]["seconds"], results[p][LS]["seconds"]
            row += " out of memory | - |" if results[p][label]["oom"] else f" {fmt(t * 1e3, 1)} | {fmt(t / ls)} |"
        if len(precisions) == 2:
            row += f" {fmt(results[precisions[1]][label]['seconds'] / results[precisions[0]][label]['seconds'])} |"
        if cuda:
            row += "".join(f" {fmt(results[p][label]['peak_mib'], 0)} |" for p in precisions)
        lines.append(row)
    if NTKMTL_BATCHED in labels and NTKMTL_LOOP in labels:
        ratios = ", ".join(
            f"{p} {fmt(results[p][NTKMTL_BATCHED]['seconds'] / results[p][NTKMTL_LOOP]['seconds'])}" for p in precisions
        )
        lines += ["", f"ntkmtl batched / loop: {ratios}"]
    return lines + [""]


def suggestions(step_results, packing, precisions) -> list[str]:
    lines = ["## What the figures suggest", ""]
    ratios = [
        r[p][NTKMTL_BATCHED]["seconds"] / r[p][NTKMTL_LOOP]["seconds"]
        for r in step_results.values()
        for p in precisions
        if NTKMTL_BATCHED in r[p] and NTKMTL_LOOP in r[p]
    ]
    ratios = [x for x in ratios if not math.isnan(x)]
    if ratios:
        faster = sum(x < 0.95 for x in ratios)
        choice = "batched" if faster > len(ratios) / 2 else "loop"
        lines.append(
            f"- `DEFAULT_TASK_GRADIENTS['cuda']`: **{choice}** (rule: batched when it is ≥ 5% faster than the "
            f"loop in most model × precision cells; here {faster} of {len(ratios)})."
        )
    if any("error" not in row for row in packing.values()):
        by_level: dict[int, list[float]] = {}
        for (method, n), row in packing.items():
            if "error" not in row and "error" not in packing[(method, 1)]:
                by_level.setdefault(n, []).append(row["aggregate"] / packing[(method, 1)]["aggregate"])
        gains = {n: statistics.mean(v) for n, v in sorted(by_level.items())}
        best = max(gains.values())
        chosen = min(n for n, g in gains.items() if g >= 0.95 * best)
        measured = ", ".join(f"{n}: {g:.2f}" for n, g in gains.items())
        lines.append(
            f"- `QM9.defaults.gpu_fraction`: **{1 / chosen:g}** ({chosen} trials per GPU; rule: the fewest trials "
            f"per GPU whose aggregate throughput is within 5% of the best; mean aggregate × 1 trial: {measured}), "
            "if the peak memory per trial fits."
        )
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--smoke", action="store_true", help="CPU, tiny shapes, one timed round, packing 1 and 2: checks the script"
    )
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="ls is always included")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (median; default 10, smoke 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per method first (default 3, smoke 1)")
    parser.add_argument(
        "--pack", type=int, nargs="*", default=None, help="QM9 trials per GPU (default 1 2 4 8, smoke 1 2; none: skip)"
    )
    parser.add_argument(
        "--pack-methods",
        nargs="+",
        default=None,
        choices=("ls", "famo", "ntkmtl", "ntkmtl_sr", "nashmtl", "pcgrad"),
        help="methods of the packed trials (default ls ntkmtl, smoke ls)",
    )
    parser.add_argument(
        "--pack-seconds", type=float, default=None, help="timed window of each packing run (default 10, smoke 0.5)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of this process on CPU")
    parser.add_argument("--out", default=None, help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.smoke or not torch.cuda.is_available() else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if device.type == "cpu" and not args.smoke and args.device != "cpu":
        parser.error("no CUDA device here: this script measures a GPU; use --smoke (a quick CPU check) or --device cpu")
    repeats = args.repeats or (1 if args.smoke else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    levels = args.pack if args.pack is not None else ([1, 2] if args.smoke else list(PACKING))
    if levels and 1 not in levels:
        levels = [1] + levels  # the slowdown needs one trial alone
    seconds = args.pack_seconds or (0.5 if args.smoke else 10.0)
    pack_methods = args.pack_methods or (["ls"] if args.smoke else ["ls", "ntkmtl"])
    torch.set_num_threads(args.threads)
    precisions = list(args.precisions)
    if device.type == "cuda" and "bf16" in precisions and not torch.cuda.is_bf16_supported():
        precisions.remove("bf16")
        print("note: this GPU has no bf16 support; bf16 skipped", file=sys.stderr)
    labels = [LS]
    for m in args.methods:
        if m == "ntkmtl":
            labels += [NTKMTL_LOOP, NTKMTL_BATCHED]
        elif m != LS:
            labels.append(m)
    setups = model_setups(args.smoke)
    started = time.perf_counter()

    step_results = {}
    for name in args.models:
        step_results[name] = {}
        for precision in precisions:
            step_results[name][precision] = time_model(setups[name], labels, precision, device, warmup, repeats)
            print(f"[{time.perf_counter() - started:.0f} s] {name} {precision} timed", file=sys.stderr, flush=True)
    packing = {}
    for method in pack_methods if levels else []:
        for n in sorted(set(levels)):
            try:
                packing[(method, n)] = run_packing(setups["qm9"], method, precisions[0], device, n, seconds, warmup)
            except RuntimeError as error:  # e.g. out of memory at 8 trials: a row saying so, not a lost report
                packing[(method, n)] = {"error": str(error).strip().splitlines()[-1]}
            print(f"[{time.perf_counter() - started:.0f} s] packing {n} × {method} done", file=sys.stderr, flush=True)

    cuda = device.type == "cuda"
    clock = "wall time after torch.cuda.synchronize()" if cuda else "process CPU time"
    lines = ["# ntkmtl GPU report (bench/gpu.py)", ""]
    if args.smoke:
        lines += ["**SMOKE RUN: tiny shapes on the CPU, one timed round. The numbers below measure nothing.**", ""]
    lines += [
        f"- date: {datetime.date.today().isoformat()}; device: {device_line(device)}",
        f"- torch {torch.__version__}, Python {platform.python_version()}; command: `python bench/gpu.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        (
            f"- step = `Trial._step` (forward, method.backward, optimizer step); median of {repeats} round-robin rounds "
            f"after {warmup} warm-up steps; clock: {clock}; ×LS = ratio to LS in the same precision and run"
        ),
        "",
        "## Step time per method",
        "",
    ]
    for name in args.models:
        lines += step_table(setups[name], step_results[name], precisions, labels, cuda)
    if packing:
        lines += [
            f"## QM9 trials packed per {'GPU' if cuda else 'CPU'} ({precisions[0]}, concurrent processes, {seconds:g} s window)",
            "",
            "| method | trials | steps/s per trial | aggregate steps/s | aggregate × 1 trial | per-trial slowdown | peak MiB per trial | device MiB in use |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for (method, n), row in packing.items():
            alone = packing[(method, 1)]
            if "error" in row or "error" in alone:
                lines.append(f"| {method} | {n} | failed: {row.get('error', alone.get('error'))} | | | | | |")
                continue
            lines.append(
                f"| {method} | {n} | {row['per_trial']:.2f} | {row['aggregate']:.2f} | {row['aggregate'] / alone['aggregate']:.2f} | "
                f"{alone['per_trial'] / row['per_trial']:.2f} | {fmt(row['peak_mib'], 0)} | {fmt(row['device_used_mib'], 0)} |"
            )
        lines.append("")
    lines += suggestions(step_results, packing, precisions)
    lines.append(f"Total time: {time.perf_counter() - started:.0f} s.")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
