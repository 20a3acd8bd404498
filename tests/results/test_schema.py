"""The result schema is the one definition: the exporter's Arrow types, the docs' table, the statuses.

A per-epoch column is declared once in ``ntkmtl/results/schema.py``; these tests fail when the
docs' table, the trainer's record or the sweep's statuses drift from it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ntkmtl.results import schema
from ntkmtl.results.errors import ReportError
from ntkmtl.results.read import load_results
from ntkmtl.sweep import export
from ntkmtl.sweep.export import ParquetExporter, final_status
from ntkmtl.train import Trial, TrialConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section(path: Path, title: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_docs_column_table_is_the_schemas():
    lines = [line for line in section(DOCS / "SWEEP.md", "Results schema").splitlines() if line.startswith("|")]
    expected = schema.markdown_table()
    assert "\n".join(lines) == expected, f"docs/SWEEP.md 'Results schema' must hold this table:\n{expected}"


def test_the_docs_status_table_names_every_status():
    rules = section(DOCS / "REPORT.md", "The rules")
    documented = re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \|", rules, flags=re.MULTILINE)
    assert sorted(n.strip("` ") for row in documented for n in row.split(",")) == sorted(schema.STATUSES)


def test_statuses_have_one_order_and_the_sweep_uses_it():
    assert schema.STATUSES == ("completed", "stopped_early", "running", "diverged", "errored")
    assert schema.FINAL_STATUSES == ("completed", "stopped_early", "diverged", "errored")
    assert export.FINAL_STATUSES is schema.FINAL_STATUSES
    ended = {
        final_status(last, by) for last in (None, "running", "completed", "diverged") for by in ("complete", "error")
    }
    assert ended == set(schema.FINAL_STATUSES)
    assert schema.IDENTITY_COLUMNS == (
        "sweep",
        "trial_id",
        "config_id",
        "benchmark",
        "method",
        "seed",
        "epoch",
        "status",
    )


@pytest.mark.parametrize(
    "name, declared",
    [
        ("val_delta_m", "val_delta_m"),  # an exact entry wins over its family
        ("val_mae_wave", "val_<metric>"),
        ("test_acc", "test_<metric>"),
        ("hp_ntk_exp", "hp_<name>"),
        ("method", "method"),
        ("method_ntk_eigenvalues_wave", "method_<key>"),
        ("weight_linear", "weight_<task>"),
        ("node_id", "node_id"),
        ("val_", None),  # a family needs a name part
        ("gpu_memory", None),
    ],
)
def test_a_column_name_finds_its_declaration(name, declared):
    found = schema.column(name)
    assert (found.name if found else None) == declared


def test_identity_columns_lead_with_the_hyperparameters_in_place():
    assert schema.leading_columns(["hp_n", "hp_eps"]) == [
        "sweep",
        "trial_id",
        "config_id",
        "benchmark",
        "method",
        "hp_eps",
        "hp_n",
        "seed",
        "epoch",
        "status",
    ]


def test_the_exporter_types_every_column_from_the_schema(tmp_path):
    exporter = ParquetExporter(tmp_path, "s", "toy", {"ntk_exp": float, "n": int, "chunking": str, "flag": bool})
    spec = {"config_id": "c", "method": "ntkmtl", "seed": 0, "hparams": {"ntk_exp": 0.5, "n": 1}}
    exporter.add_record(
        "t1",
        spec,
        {
            "epoch": 1,
            "status": "running",
            "val_delta_m": 1.0,
            "weight_a": 0.5,
            "hostname": None,
            "node_id": "n1",
            "lr": 1,
            "extra": "x",
            "other": 2,
        },
    )
    exporter.add_record(
        "t1",
        spec,
        {
            "epoch": 2,
            "status": "completed",
            "val_delta_m": 0.5,
            "weight_a": 0.25,
            "hostname": "h",
            "node_id": "n1",
            "lr": 1,
            "extra": "y",
            "other": 3,
            "search": "optuna",
        },
    )
    types = {f.name: str(f.type) for f in pq.read_schema(exporter.path("t1"))}
    assert types == {
        "sweep": "string",
        "trial_id": "string",
        "config_id": "string",
        "benchmark": "string",
        "method": "string",
        "hp_chunking": "string",
        "hp_flag": "bool",
        "hp_n": "int64",
        "hp_ntk_exp": "double",
        "seed": "int64",
        "epoch": "int64",
        "status": "string",
        "val_delta_m": "double",
        "weight_a": "double",
        "hostname": "string",  # declared string: a first row without a host does not make it a float
        "node_id": "string",
        "lr": "double",  # declared float64: an int learning rate too
        "extra": "string",
        "other": "double",  # undeclared: typed by the value
        "search": "string",
    }
    assert list(types) == [
        n
        for n, _ in schema.arrow_fields(
            exporter.hparam_kinds,
            [
                {
                    "val_delta_m": 1,
                    "weight_a": 1,
                    "hostname": None,
                    "node_id": "",
                    "lr": 1,
                    "extra": "",
                    "other": 1,
                    "search": "",
                }
            ],
        )
    ]


@pytest.mark.parametrize("method", ["ls", "ntkmtl"])
def test_every_key_of_the_trainers_epoch_record_is_declared(method):
    config = TrialConfig(
        benchmark="toy",
        method=method,
        data={"n_train": 64, "n_val": 32, "n_test": 32},
        seed=0,
        epochs=1,
        batch_size=32,
        device="cpu",
    )
    (record,) = Trial(config).run()
    assert schema.undeclared(record) == []
    assert any(schema.column(k).is_family for k in record)  # the check covers families (train_loss_<task>, …)


def test_the_reader_checks_the_schemas_statuses(tmp_path):
    row = {c: "x" for c in schema.IDENTITY_COLUMNS} | {"epoch": 1, "seed": 0, "status": "paused"}
    path = tmp_path / "r.parquet"
    pd.DataFrame([row]).to_parquet(path)
    with pytest.raises(
        ReportError,
        match="unknown trial status 'paused'; valid statuses: completed, stopped_early, running, diverged, errored",
    ):
        load_results(str(path))
    pd.DataFrame([row]).drop(columns="config_id").to_parquet(path)
    with pytest.raises(ReportError, match="lack the column"):
        load_results(str(path))
