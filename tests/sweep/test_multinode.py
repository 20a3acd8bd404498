"""A sweep on a simulated multi-node cluster: GPU packing, and a worker node lost mid-sweep.

One ``ray.cluster_utils.Cluster`` (a head with 1 CPU and no GPU, two workers with 2 CPUs and
one fake GPU each) runs six toy trials asking for 0.5 GPU: two fit on each worker, none on the
head. When every running trial has a checkpoint, one worker is killed; its trials must resume
on the other worker from their last checkpoint and every (trial, epoch) row appear exactly once.
Which node ran each epoch of a trial is the ``node_id`` column the trainable reports; how many
trial processes ran at once on a node comes from Ray's actor table (the ``pid`` of each epoch →
the process's start and end).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from ntkmtl.sweep.config import parse_config  # noqa: E402
from ntkmtl.sweep.export import read_results  # noqa: E402
from ntkmtl.sweep.storage import StorageError  # noqa: E402
from ntkmtl.sweep.tune import INJECT_ENV, run_sweep  # noqa: E402

pytestmark = pytest.mark.slow

EPOCHS = 4
SMALL_STORE = 80 * 1024 * 1024  # bytes of object store per node: the trials move almost nothing


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():  # a Ray left running by an earlier test would take our connection
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 1, "num_gpus": 0, "object_store_memory": SMALL_STORE},
    )
    workers = [cluster.add_node(num_cpus=2, num_gpus=1, object_store_memory=SMALL_STORE) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def sweep_config(tmp_path: Path, storage) -> dict:
    return {
        "name": "multinode",
        "benchmark": "toy",
        "data": {"n_train": 256, "n_val": 64, "n_test": 64},
        "train": {"epochs": EPOCHS, "batch_size": 64},
        "seeds": [0, 1, 2],
        "methods": {"ls": {}, "ntkmtl": {"ntk_exp": [0.5]}},
        "resources": {"cpu": 1, "gpu": 0.5},
        "early_stopping": {"type": "none"},
        "storage": storage,
        "output": str(tmp_path / "parquet"),
        "max_failures": 2,
    }


def kill_when_all_running_trials_have_a_checkpoint(cluster, node, output: Path, done: dict) -> None:
    """Remove ``node`` once four trials (the first wave) have each reported epoch 2."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        files = list(output.glob("*.parquet"))
        if len(files) >= 4:
            try:
                df = read_results(output)
            except Exception:  # a file being replaced right now: look again
                df = None
            if df is not None and (df.groupby("trial_id")["epoch"].max() >= 2).sum() >= 4:
                cluster.remove_node(node, allow_graceful=False)
                done["killed_at"] = time.time()
                return
        time.sleep(0.2)


def epoch_results(experiment: Path) -> dict[str, list[dict]]:
    """Every trial's reported results, in order, from the result.json files Ray keeps in storage."""
    trials = {}
    for path in experiment.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if "epoch" in r]
        trials[rows[0]["trial_id"]] = rows
    return trials


def actor_spans() -> dict[int, tuple[float, float]]:
    """pid of every actor this session started (alive or dead) → its start and end (ms)."""
    from ray._private.state import actors

    now = time.time() * 1000
    return {a["Pid"]: (a["StartTime"], a["EndTime"] or now) for a in actors().values() if a.get("Pid")}


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    running = best = 0
    for _, change in events:
        running += change
        best = max(best, running)
    return best


def test_node_local_storage_is_refused_on_a_multi_node_cluster(cluster, tmp_path):
    c, _ = cluster
    cfg = parse_config(sweep_config(tmp_path, str(tmp_path / "ray")))
    with pytest.raises(StorageError, match="node-local filesystem .* more than one node"):
        run_sweep(cfg, address=c.address, verbose=0)
    assert not (tmp_path / "parquet").exists()


def test_fractional_gpus_pack_two_trials_per_worker_and_a_lost_node_resumes(cluster, tmp_path, monkeypatch):
    c, workers = cluster
    head_id = c.head_node.node_id
    victim = workers[1]
    # Trials sleep 2 s after each epoch (documented fault injection): a wide, CPU-free window
    # for the node to die in, and enough overlap between trials to see the packing.
    monkeypatch.setenv(INJECT_ENV, "sleep@*:*")
    storage = {"path": str(tmp_path / "ray"), "shared": True}  # every simulated node sees it
    cfg = parse_config(sweep_config(tmp_path, storage))
    done: dict = {}
    killer = threading.Thread(
        target=kill_when_all_running_trials_have_a_checkpoint,
        args=(c, victim, tmp_path / "parquet", done),
        daemon=True,
    )
    killer.start()
    outcome = run_sweep(cfg, address=c.address, verbose=0)
    killer.join(timeout=1)
    assert "killed_at" in done, "the worker node was never killed: the sweep ended too soon"
    assert outcome.trials == 6 and outcome.errored == 0

    # every (trial, epoch) row exactly once, every trial completed
    df = read_results(tmp_path / "parquet")
    assert len(df) == 6 * EPOCHS
    assert not df.duplicated(["trial_id", "epoch"]).any()
    assert (df.groupby("trial_id")["epoch"].apply(sorted) == [list(range(1, EPOCHS + 1))] * 6).all()
    assert set(df["status"]) == {"completed"}
    assert set(df["node_id"]) == {w.node_id for w in workers} and df["hostname"].notna().all()

    results = epoch_results(tmp_path / "ray" / "multinode")
    spans = actor_spans()
    assert len(results) == 6
    by_epoch = df.set_index(["trial_id", "epoch"])["node_id"]
    moved = []
    used: dict[str, set[int]] = {}  # node → pids of the trial processes that ran there
    for trial_id, rows in results.items():
        nodes = [r["node_id"] for r in rows]
        # the Parquet row of an epoch names the node of that epoch's last run (an epoch re-run after a loss)
        assert by_epoch[trial_id].to_dict() == {r["epoch"]: r["node_id"] for r in rows}
        for r, node in zip(rows, nodes):
            used.setdefault(node, set()).add(r["pid"])
        if len(set(nodes)) > 1:
            moved.append((trial_id, rows, nodes))
    # packing: no trial on the GPU-less head; two trial processes at once on each 1-GPU worker
    # (reused from trial to trial, each holding 0.5 GPU for its whole life)
    assert head_id not in used
    assert set(used) == {w.node_id for w in workers}
    per_node = {node: max_overlap([spans[pid] for pid in pids]) for node, pids in used.items()}
    assert sorted(per_node.values()) == [2, 2], per_node

    # the lost trials: every trial the dead node had not finished went on on the surviving node
    # from the epoch after its last reported one (its checkpoint), not from epoch 1
    unfinished_on_victim = [
        t
        for t, rows in results.items()
        if any(r["node_id"] == victim.node_id for r in rows)
        and not (rows[-1]["node_id"] == victim.node_id and rows[-1]["epoch"] == EPOCHS)
    ]
    assert sorted(t for t, _, _ in moved) == sorted(unfinished_on_victim) and moved
    for trial_id, rows, nodes in moved:
        assert nodes[0] == victim.node_id and nodes[-1] == workers[0].node_id
        switch = next(i for i, n in enumerate(nodes) if n != victim.node_id)
        assert rows[switch]["epoch"] == rows[switch - 1]["epoch"] + 1 > 1, [r["epoch"] for r in rows]
