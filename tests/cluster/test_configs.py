"""The cluster configs: Ray's own schema, resources that match the hardware, Slurm, KubeRay."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path

import click
import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
RAY_UP_CONFIGS = ["aws-g5.yaml", "gcp-gpu.yaml", "onprem-local.yaml"]
STORAGE_OF = {"aws-g5.yaml": "s3://", "gcp-gpu.yaml": "gs://", "onprem-local.yaml": "/mnt/shared/"}

# vCPUs and GPUs of every machine type the configs use (AWS and GCP product pages).
AWS_INSTANCES = {
    "m5.xlarge": (4, 0),
    "m5.2xlarge": (8, 0),
    "m5.4xlarge": (16, 0),
    "g5.xlarge": (4, 1),
    "g5.2xlarge": (8, 1),
    "g5.4xlarge": (16, 1),
    "g5.8xlarge": (32, 1),
    "g5.12xlarge": (48, 4),
    "g5.24xlarge": (96, 4),
    "g5.48xlarge": (192, 8),
}
GCP_MACHINE_CPUS = {
    "n2-standard-4": 4,
    "n2-standard-8": 8,
    "n1-standard-4": 4,
    "n1-standard-8": 8,
    "n1-standard-16": 16,
    "n1-standard-32": 32,
}


def load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def hardware(provider: str, node_config: dict) -> tuple[int, int]:
    """(vCPUs, GPUs) of a node type's machine."""
    if provider == "aws":
        return AWS_INSTANCES[node_config["InstanceType"]]
    gpus = sum(a["acceleratorCount"] for a in node_config.get("guestAccelerators", []))
    return GCP_MACHINE_CPUS[node_config["machineType"]], gpus


def check_resources(config: dict) -> None:
    """Raise AssertionError where a node type claims other GPUs, or more CPUs, than it has."""
    provider = config["provider"]["type"]
    for name, node_type in config["available_node_types"].items():
        resources = node_type["resources"]
        cpus, gpus = hardware(provider, node_type["node_config"])
        claimed_gpus = resources.get("GPU", 0)
        assert claimed_gpus == gpus, f"{name}: claims {claimed_gpus} GPU(s), its machine has {gpus}"
        assert 0 <= resources["CPU"] <= cpus, f"{name}: claims {resources['CPU']} CPUs of {cpus}"
        if name == config["head_node_type"]:
            assert gpus == 0, f"head {name} should be a CPU machine"
        else:
            assert gpus >= 1 and resources["CPU"] == cpus, f"worker {name} should offer all it has"


@pytest.mark.parametrize("name", RAY_UP_CONFIGS)
def test_ray_up_config_passes_rays_own_validation(name):
    validate_config(prepare_config(load(name)))


@pytest.mark.parametrize("name", RAY_UP_CONFIGS)
def test_config_opens_with_the_commands_to_start_use_and_tear_down(name):
    header = (CLUSTER / name).read_text().split("\n\n")[0]
    assert all(line.startswith("#") for line in header.splitlines())
    for command in (
        f"ray up -y cluster/{name}",
        f"ray attach cluster/{name}",
        f"ray down -y cluster/{name}",
        "python -m ntkmtl.tune",
        "--address auto",
        f"--set storage={STORAGE_OF[name]}",
    ):
        assert command in " ".join(header.replace("#", " ").replace("\\\n", " ").split()), command


@pytest.mark.parametrize("name", RAY_UP_CONFIGS)
def test_setup_installs_the_laptops_ray_version_torch_and_this_project(name):
    commands = " ".join(load(name)["setup_commands"])
    assert f'"ray[default,tune]=={ray.__version__}"' in commands
    assert "torch==" in commands and "-e ~/ntkmtl" in commands
    assert load(name)["file_mounts"] == {"~/ntkmtl": "."}


@pytest.mark.parametrize("name", ["aws-g5.yaml", "gcp-gpu.yaml"])
def test_cloud_resources_are_integers_matching_the_machine_types(name):
    config = load(name)
    check_resources(config)
    workers = [t for n, t in config["available_node_types"].items() if n != config["head_node_type"]]
    assert sum(t["max_workers"] for t in workers) <= config["max_workers"]


def test_a_worker_claiming_gpus_its_instance_lacks_is_caught():
    config = load("aws-g5.yaml")
    config["available_node_types"]["gpu_1x"]["resources"]["GPU"] = 4  # g5.2xlarge has 1
    with pytest.raises(AssertionError, match="gpu_1x: claims 4 GPU"):
        check_resources(config)
    config = load("gcp-gpu.yaml")
    config["available_node_types"]["gpu_4x"]["node_config"]["guestAccelerators"][0]["acceleratorCount"] = 2
    with pytest.raises(AssertionError, match="gpu_4x: claims 4 GPU.*has 2"):
        check_resources(config)


def test_fractional_resources_are_rejected_by_rays_schema():
    config = load("aws-g5.yaml")
    config["available_node_types"]["gpu_1x"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError, match="0.5 is not of type 'integer'"):
        validate_config(prepare_config(config))


def test_onprem_config_lists_machines_and_has_no_node_types():
    config = load("onprem-local.yaml")
    assert "available_node_types" not in config
    assert config["provider"]["head_ip"] and len(config["provider"]["worker_ips"]) == config["max_workers"]
    mutated = copy.deepcopy(config)
    mutated["available_node_types"] = {"gpu": {"resources": {"GPU": 1}, "node_config": {}}}
    with pytest.raises(click.ClickException, match="not supported for on-premise clusters"):
        prepare_config(mutated)


# --- Slurm ---------------------------------------------------------------------------------

SBATCH = CLUSTER / "slurm" / "ray-sweep.sbatch"


def test_sbatch_script_parses_and_asks_for_one_ray_task_per_node():
    subprocess.run(["bash", "-n", str(SBATCH)], check=True)
    directives = dict(
        re.match(r"#SBATCH --([\w-]+)(?:=(\S+))?", line).groups()
        for line in SBATCH.read_text().splitlines()
        if line.startswith("#SBATCH")
    )
    assert directives["ntasks-per-node"] == "1"
    assert int(directives["nodes"]) >= 2 and int(directives["gpus-per-node"]) >= 1
    assert "exclusive" in directives and "time" in directives


def test_sbatch_script_starts_head_then_workers_then_the_sweep(tmp_path):
    """Run the script with srun/scontrol/ray/python/sleep replaced by recorders."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    shims = {
        "scontrol": 'printf "gpu01\\ngpu02\\ngpu03\\n"',
        # srun runs `hostname --ip-address` for real work; everything else is recorded.
        "srun": 'while [ "$1" != hostname ] && [ "$1" != ray ]; do a="$a $1"; shift; done\n'
        'if [ "$1" = hostname ]; then echo "10.1.2.3 fe80::1"; else echo "srun$a $*" >> "$LOG"; fi',
        "ray": 'echo "ray $*" >> "$LOG"',
        "python": 'echo "python $*" >> "$LOG"; exit 3',
        "sleep": "true",
    }
    for name, body in shims.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text("")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LOG": str(log),
        "NTKMTL_VENV": str(venv.parent),
        "SLURM_JOB_NODELIST": "gpu[01-03]",
        "SLURM_JOB_ID": "77",
        "SLURM_GPUS_PER_NODE": "a100:4",
        "SLURM_CPUS_PER_TASK": "16",
    }
    result = subprocess.run(
        ["bash", str(SBATCH), "tune_configs/qm9_paper.yaml", "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3, result.stderr  # the sweep's exit status is the job's
    calls = [line.split() for line in log.read_text().splitlines()]
    starts = [c for c in calls if c[0] == "srun"]  # started in the background: any order
    node = {c[c.index("-w") + 1]: c for c in starts}
    assert sorted(node) == ["gpu01", "gpu02", "gpu03"] and len(starts) == 3
    head, workers = node["gpu01"], [node["gpu02"], node["gpu03"]]
    assert ["ray", "status", "--address=10.1.2.3:6379"] in calls  # waited for the head
    for call in starts:
        assert {"--num-cpus=16", "--num-gpus=4", "--block", "--temp-dir=/tmp/ray_77"} <= set(call)
    assert {"--head", "--node-ip-address=10.1.2.3", "--port=6379"} <= set(head)
    assert all("--address=10.1.2.3:6379" in w for w in workers)
    # the background srun steps may log after the sweep; the sweep runs once, after the head check
    sweeps = [i for i, c in enumerate(calls) if c[0] == "python"]
    assert [calls[i] for i in sweeps] == [
        [
            "python",
            "-u",
            "-m",
            "ntkmtl.tune",
            "tune_configs/qm9_paper.yaml",
            "--address",
            "auto",
            "--set",
            f"storage={tmp_path}/ntkmtl_results",
            "--resume",
        ]
    ]
    assert calls.index(["ray", "status", "--address=10.1.2.3:6379"]) < sweeps[0]
    assert (tmp_path / "ntkmtl_results").is_dir()


# --- KubeRay -------------------------------------------------------------------------------


def test_kuberay_rayjob_has_a_cpu_head_gpu_workers_and_the_sweep_entrypoint():
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    entry = spec["entrypoint"]
    assert entry.startswith("bash -c 'python -m ntkmtl.tune tune_configs/") and "--address auto" in entry
    assert "--set storage=s3://" in entry and entry.endswith("exit $status'")
    subprocess.run(["bash", "-n", "-c", entry], check=True)
    copy = re.search(r'python -c "(.*?)";', entry).group(1).replace('\\"', '"')
    compile(copy, "entrypoint", "exec")
    assert 'fs.copy_files("results/' in copy and "s3://" in copy
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    head = cluster["headGroupSpec"]
    head_container = head["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head_container["resources"]["limits"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    groups = cluster["workerGroupSpecs"]
    assert groups
    for group in groups + [head]:
        # KubeRay v1 takes rayStartParams as a map of strings
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
    for group in groups:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        container = group["template"]["spec"]["containers"][0]
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert int(limits["nvidia.com/gpu"]) >= 1 and limits["nvidia.com/gpu"] == requests["nvidia.com/gpu"]
        assert container["image"] == head_container["image"]
    dockerfile = (CLUSTER / "kuberay" / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-" in dockerfile


def test_readme_shows_how_to_use_every_file():
    readme = (CLUSTER / "README.md").read_text()
    for name in RAY_UP_CONFIGS:
        assert f"ray up -y cluster/{name}" in readme
    assert "sbatch cluster/slurm/ray-sweep.sbatch" in readme
    assert "kubectl apply -f cluster/kuberay/rayjob.yaml" in readme
    assert os.path.exists(CLUSTER / "kuberay" / "Dockerfile.dockerignore")


def readme_rows(heading: str) -> dict[str, list[str]]:
    """The rows of the first table under ``heading`` in cluster/README.md, by first cell."""
    lines = (CLUSTER / "README.md").read_text().split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = [line.strip("|").split("|") for line in lines[start:end]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


@pytest.mark.parametrize("bench", ["qm9", "celeba", "nyuv2", "cityscapes"])
def test_readme_packing_and_cost_tables_match_the_paper_configs(bench):
    from ntkmtl.sweep.config import load_config
    from ntkmtl.sweep.plan import build_plan

    cfg = load_config(ROOT / "tune_configs" / f"{bench}_paper.yaml", check_data=False)
    trials, epochs = len(build_plan(cfg)), cfg.epochs
    fraction = cfg.resources.gpu_for(bench, cluster_gpus=1.0)
    label = {"qm9": "QM9", "celeba": "CelebA", "nyuv2": "NYUv2", "cityscapes": "Cityscapes"}[bench]

    per_trial, one_gpu, four_gpu = readme_rows("## GPU fractions per benchmark")[label][1:4]
    assert per_trial == f"{fraction:g} GPU, {cfg.resources.cpu:g} CPUs"
    assert int(one_gpu) == min(1 / fraction, 8 / cfg.resources.cpu)
    assert int(four_gpu) == min(4 / fraction, 32 / cfg.resources.cpu, 48 / cfg.resources.cpu)

    cost = readme_rows("## Cost of the paper's full grid")[label]
    assert [int(cost[0]), int(cost[1]), int(cost[2].replace(",", ""))] == [trials, epochs, trials * epochs]
    assert float(cost[3]) == fraction
    assert float(cost[4]) == pytest.approx(trials * epochs * fraction / 3600)
