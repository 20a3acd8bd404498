"""bench/gpu.py --smoke: every code path of the GPU report (all models, methods, precisions,
batched gradients, packed trial processes) runs on the CPU and yields a complete report."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu.py"
LABELS = ("ls", "famo", "ntkmtl (loop)", "ntkmtl (batched)", "ntkmtl_sr", "nashmtl", "pcgrad")


def run(args, tmp_path, timeout=300):
    env = {**os.environ, "NTKMTL_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.slow
def test_smoke_run_writes_the_whole_report(tmp_path):
    out = tmp_path / "report.md"
    result = run(["--smoke", "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report.strip() == result.stdout.strip()
    assert "SMOKE RUN" in report and "Traceback" not in result.stderr
    for model, k in (("qm9", 11), ("celeba", 40), ("nyuv2", 3), ("cityscapes", 2)):
        section = report.split(f"### {model}:")[1].split("###")[0].split("## QM9")[0]
        assert f"K = {k}" in section
        for label in LABELS:
            (row,) = [line for line in section.splitlines() if line.startswith(f"| {label} |")]
            cells = [c.strip() for c in row.strip("|").split("|")]
            ms_fp32, ratio_fp32, ms_bf16, ratio_bf16, bf16_over_fp32 = map(float, cells[1:6])
            assert ms_fp32 > 0 and ms_bf16 > 0 and bf16_over_fp32 > 0
            if label == "ls":
                assert ratio_fp32 == ratio_bf16 == 1.0
        assert re.search(r"ntkmtl batched / loop: fp32 \d+\.\d\d, bf16 \d+\.\d\d", section)
    packing = report.split("## QM9 trials packed")[1].split("## What")[0]
    packed = [line for line in packing.splitlines() if line.startswith("| ls | ")]
    assert [line.split("|")[2].strip() for line in packed] == ["1", "2"]
    assert "DEFAULT_TASK_GRADIENTS['cuda']" in report and "QM9.defaults.gpu_fraction" in report


def test_without_a_gpu_the_full_run_says_what_to_do(tmp_path):
    result = run([], tmp_path, timeout=60)
    assert result.returncode == 2
    assert "no CUDA device here" in result.stderr and "--smoke" in result.stderr
    assert "Traceback" not in result.stderr


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_method_out_of_gpu_memory_is_a_row_not_a_lost_report(monkeypatch):
    import torch

    gpu = load_script()
    original = gpu.Runner.step

    def step(self):
        if self.label == "pcgrad":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        original(self)

    monkeypatch.setattr(gpu.Runner, "step", step)
    setup = gpu.model_setups(smoke=True)["celeba"]
    results = {"fp32": gpu.time_model(setup, ["ls", "pcgrad"], "fp32", torch.device("cpu"), warmup=1, repeats=1)}
    assert results["fp32"]["pcgrad"]["oom"] and not results["fp32"]["ls"]["oom"]
    table = "\n".join(gpu.step_table(setup, results, ["fp32"], ["ls", "pcgrad"], cuda=False))
    assert "| pcgrad | out of memory | - |" in table and "| ls |" in table
