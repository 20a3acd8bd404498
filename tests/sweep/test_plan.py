"""Grid expansion: per-method grids, seeds sharing a config_id, the dry-run table."""

from __future__ import annotations

import hashlib
import json

from ntkmtl.sweep.config import parse_config
from ntkmtl.sweep.plan import (
    build_plan,
    cluster_gpu_warning,
    config_id,
    dry_run_table,
    expected_concurrency,
    hparam_kinds,
)

RAW = {
    "name": "p",
    "benchmark": "toy",
    "train": {"epochs": 3},
    "seeds": [0, 1, 2],
    "methods": {
        "ls": {},
        "ntkmtl": {"ntk_exp": [0.5, 0.75, 1.0]},
        "ntkmtl_sr": {"ntk_exp": [0.5, 1.0], "n_splits": [2, 4]},
    },
}


def test_each_method_expands_over_its_own_grid_only():
    cfg = parse_config(RAW)
    specs = build_plan(cfg)
    # ls: 1 config, ntkmtl: 3, ntkmtl_sr: 2 x 2 = 4 → 8 configurations x 3 seeds (not 3·3·4·3 trials)
    assert len(specs) == 24
    assert [s.method for s in specs].count("ls") == 3
    assert {s.swept.get("ntk_exp") for s in specs if s.method == "ls"} == {None}
    assert sorted({s.label for s in specs if s.method == "ntkmtl_sr"}) == [
        "ntkmtl_sr-ntk_exp=0.5-n_splits=2",
        "ntkmtl_sr-ntk_exp=0.5-n_splits=4",
        "ntkmtl_sr-ntk_exp=1-n_splits=2",
        "ntkmtl_sr-ntk_exp=1-n_splits=4",
    ]
    # complete hyperparameters, defaults included, so every Parquet hp_ column is filled
    assert specs[3].hparams == {"ntk_exp": 0.5, "n": 1, "eps": 1e-8, "chunking": "torch_chunk", "max_norm": 1.0}
    assert specs[3].run_name == "ntkmtl-ntk_exp=0.5-seed0"


def test_the_benchmarks_defaults_of_method_hyperparameters_fill_the_plan():
    # NYUv2's reference trainer gives NTKMTL-SR one chunk; a grid value still wins
    raw = {
        **RAW,
        "benchmark": "nyuv2",
        "data": {"root": "/nowhere"},
        "methods": {"ntkmtl_sr": {"ntk_exp": [0.5]}, "ntkmtl": {"ntk_exp": [0.5]}},
    }
    specs = build_plan(parse_config(raw, check_data=False))
    assert {s.hparams["n_splits"] for s in specs if s.method == "ntkmtl_sr"} == {1}
    raw["methods"] = {"ntkmtl_sr": {"n_splits": [4]}}
    assert {s.hparams["n_splits"] for s in build_plan(parse_config(raw, check_data=False))} == {4}


def test_config_id_is_shared_by_seeds_and_stable():
    cfg = parse_config(RAW)
    specs = build_plan(cfg)
    by_label = {}
    for s in specs:
        by_label.setdefault(s.label, set()).add(s.config_id)
        assert s.n_seeds == 3
    assert all(len(ids) == 1 for ids in by_label.values())
    assert len({s.config_id for s in specs}) == 8
    # locked: a hash of benchmark, data options, training set-up, method and hyperparameters
    assert specs[0].config_id == config_id(cfg, "ls", {"max_norm": 0.0})
    identity = {
        "benchmark": "toy",
        "data": cfg.data,
        "train": {"epochs": 3},
        "method": "ls",
        "hparams": {"max_norm": 0.0},
    }
    expected = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    assert specs[0].config_id == expected
    other = parse_config({**RAW, "train": {"epochs": 4}})
    assert build_plan(other)[0].config_id != specs[0].config_id


def test_configuration_major_order():
    specs = build_plan(parse_config(RAW))
    assert [s.seed for s in specs[:6]] == [0, 1, 2, 0, 1, 2]
    assert specs[0].label == specs[2].label != specs[3].label


def test_hparam_kinds_cover_every_method():
    kinds = hparam_kinds(build_plan(parse_config(RAW)))
    assert kinds == {"max_norm": float, "ntk_exp": float, "n": int, "eps": float, "n_splits": int, "chunking": str}


def test_dry_run_table_and_concurrency():
    cfg = parse_config({**RAW, "resources": {"cpu": 0.5, "gpu": 0.25}, "max_concurrent": 3})
    specs = build_plan(cfg)
    assert (
        expected_concurrency(cfg, len(specs), cpus=2, gpus=1) == 3
    )  # max_concurrent wins over 4 CPU slots, 4 GPU slots
    assert expected_concurrency(parse_config(RAW), len(specs), cpus=16, gpus=0) == 16
    assert expected_concurrency(parse_config({**RAW, "benchmark": "toy"}), 2, cpus=16, gpus=0) == 2
    table = dry_run_table(cfg, specs, cpus=2, gpus=1)
    assert "24 trials = 8 configurations x 3 seeds, 3 epochs each" in table
    assert "ntkmtl                  3       9      27" in table
    assert "total                   8      24      72" in table
    assert "0.5 CPU, 0.25 GPU" in table and "-> 3 trials at once" in table
    assert table.count("ntkmtl_sr-ntk_exp=1-n_splits=4") == 3


def test_a_cluster_without_gpus_gets_a_warning_for_auto_and_for_explicit_gpus():
    auto = parse_config(RAW)
    explicit = parse_config({**RAW, "resources": {"cpu": 1, "gpu": 0.5}})
    cpu_only = parse_config({**RAW, "resources": {"cpu": 1, "gpu": 0}})
    assert "resources.gpu is auto, so every trial runs on CPU" in cluster_gpu_warning(auto, "auto", [0.0, 0.0])
    text = cluster_gpu_warning(explicit, "ray://h:10001", [0.0])
    assert text.startswith("warning: resources.gpu=0.5 but the Ray cluster at ray://h:10001 reports no GPU")
    assert cluster_gpu_warning(cpu_only, "auto", [0.0]) is None
    assert (
        cluster_gpu_warning(auto, "auto", [0.0, 1.0]) is None and cluster_gpu_warning(explicit, "auto", [4.0]) is None
    )
