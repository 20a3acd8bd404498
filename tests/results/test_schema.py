"""The result schema is the one definition: the exporter's Arrow types, the docs' table, the statuses.

A per-epoch column is declared once, next to the trainer code that computes it (``EpochStats`` /
``Trial.columns``), and ``ntkmtl/results/schema.py`` collects the declarations; these tests fail
when the docs' generated table, the trainer's record or the sweep's statuses drift from them.
"""

from __future__ import annotations

import re
import subprocess
import sys
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
from ntkmtl.training.records import EpochStats

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section(path: Path, title: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_docs_column_table_is_the_generated_one():
    text = (DOCS / "SWEEP.md").read_text(encoding="utf-8")
    if schema.with_docs_table(text) != text:
        pytest.fail(f"docs/SWEEP.md's results-schema table is out of date: run `{schema.WRITE_DOCS}`", pytrace=False)
    assert schema.DOCS == DOCS / "SWEEP.md"  # the file the command rewrites by default
    assert schema.DOCS_BEGIN in section(DOCS / "SWEEP.md", "Results schema")


def test_write_docs_rewrites_only_the_block_between_the_markers(tmp_path, capsys):
    path = tmp_path / "SWEEP.md"
    stale = f"# Sweep\n\nbefore\n{schema.DOCS_BEGIN}\n| `old` | string | gone |\n{schema.DOCS_END}\nafter\n"
    path.write_text(stale, encoding="utf-8")
    assert schema.main(["--write-docs", "--docs", str(path)]) == 0
    expected = f"# Sweep\n\nbefore\n{schema.DOCS_BEGIN}\n\n{schema.markdown_table()}\n\n{schema.DOCS_END}\nafter\n"
    assert path.read_text(encoding="utf-8") == expected
    assert schema.main(["--write-docs", "--docs", str(path)]) == 0  # a second run changes nothing
    assert path.read_text(encoding="utf-8") == expected
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: results-schema table rewritten",
        f"{path}: the results-schema table is up to date",
    ]
    path.write_text("no markers\n", encoding="utf-8")
    assert schema.main(["--write-docs", "--docs", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {path} lacks the lines {schema.DOCS_BEGIN!r} … {schema.DOCS_END!r} around the results-schema table\n"
    )
    assert path.read_text(encoding="utf-8") == "no markers\n"


def test_the_schema_collects_the_trainers_declarations_once():
    names = [c.name for c in schema.columns()]
    assert len(names) == len(set(names))  # one home each
    assert schema.columns()[: len(schema.IDENTITY)] == schema.IDENTITY
    assert schema.columns()[len(schema.IDENTITY) :] == Trial.columns + schema.SWEEP
    assert Trial.columns[: len(EpochStats.columns)] == EpochStats.columns
    assert schema.column("train_loss_wave") is EpochStats.columns[0]
    assert schema.column("lr") is next(c for c in Trial.columns if c.name == "lr")


def test_reading_results_does_not_load_the_trainer():
    code = "import sys, ntkmtl.results.schema, ntkmtl.results.read; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


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


def test_a_toy_trials_parquet_columns_are_locked(tmp_path):
    """Names, Arrow types and order of a real trial's file, as a sweep writes it (measured before
    the trainer's columns moved next to its code): a type or order that changes, or a column that
    goes, fails here; a new column, anywhere, does not (its own test locks it)."""
    config = TrialConfig(
        benchmark="toy", method="ntkmtl", data={"n_train": 64, "n_val": 32, "n_test": 32}, epochs=1, device="cpu"
    )
    (record,) = Trial(config).run()
    kinds = {"chunking": str, "eps": float, "max_norm": float, "n": int, "ntk_exp": float}
    exporter = ParquetExporter(tmp_path, "s", "toy", kinds)
    spec = {"config_id": "c", "method": "ntkmtl", "seed": 0, "hparams": {"ntk_exp": 0.5}}
    exporter.add_record("t1", spec, record | {"node_id": "n1", "hostname": "h", "search": "random"})
    tasks, splits = ("linear", "wave", "quadratic"), ("val", "test")
    expected = (
        [(n, "string") for n in ("sweep", "trial_id", "config_id", "benchmark", "method", "hp_chunking")]
        + [("hp_eps", "double"), ("hp_max_norm", "double"), ("hp_n", "int64"), ("hp_ntk_exp", "double")]
        + [("seed", "int64"), ("epoch", "int64"), ("status", "string")]
        + [(f"{key}_{task}", "double") for key in ("train_loss", "weight", "method_ntk_eigenvalues") for task in tasks]
        + [("method_grad_norm", "double")]
        + [(n, "double") for s in splits for n in [f"{s}_mae_{task}" for task in tasks] + [f"{s}_delta_m"]]
        + [(n, "double") for n in ("lr", "epoch_seconds", "samples_per_second")]
        + [("node_id", "string"), ("hostname", "string"), ("search", "string")]
    )
    names = {name for name, _ in expected}
    assert [(f.name, str(f.type)) for f in pq.read_schema(exporter.path("t1")) if f.name in names] == expected


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
