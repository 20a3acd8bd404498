"""Parquet export: schema, exactly-once rows across retries and restarts, atomic files, readers."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest

from ntkmtl.sweep.export import ParquetExporter, final_status, read_results

KINDS = {"ntk_exp": float, "n": int, "max_norm": float}
LS = {"config_id": "aaaa", "method": "ls", "seed": 0, "hparams": {"max_norm": 0.0}}
NTK = {"config_id": "bbbb", "method": "ntkmtl", "seed": 1, "hparams": {"ntk_exp": 0.5, "n": 1, "max_norm": 1.0}}


def record(epoch: int, status: str = "running", loss: float = 1.0) -> dict:
    return {
        "epoch": epoch,
        "status": status,
        "train_loss_a": loss / epoch,
        "val_mae_a": 0.5,
        "test_mae_a": 0.6,
        "val_delta_m": 10.0 - epoch,
        "test_delta_m": 11.0 - epoch,
        "weight_a": 1.0,
        "lr": 1e-3,
        "epoch_seconds": 0.1,
    }


def test_columns_follow_the_design_contract(tmp_path):
    ex = ParquetExporter(tmp_path, "s", "toy", KINDS)
    ex.add_record("t1", NTK, record(1))
    table = pq.read_table(tmp_path / "t1.parquet")
    assert table.column_names == [
        "sweep",
        "trial_id",
        "config_id",
        "benchmark",
        "method",
        "hp_max_norm",
        "hp_n",
        "hp_ntk_exp",
        "seed",
        "epoch",
        "status",
        "train_loss_a",
        "val_mae_a",
        "test_mae_a",
        "val_delta_m",
        "test_delta_m",
        "weight_a",
        "lr",
        "epoch_seconds",
    ]
    assert str(table.schema.field("hp_n").type) == "int64" and str(table.schema.field("epoch").type) == "int64"
    ex.add_record("t2", LS, record(1))
    row = pq.read_table(tmp_path / "t2.parquet").to_pylist()[0]
    assert row["hp_ntk_exp"] is None and row["hp_n"] is None and row["hp_max_norm"] == 0.0


def test_replayed_epochs_replace_rows_and_an_older_restart_truncates(tmp_path):
    ex = ParquetExporter(tmp_path, "s", "toy", KINDS)
    for e in (1, 2, 3):
        ex.add_record("t", LS, record(e, loss=1.0))
    ex.add_record("t", LS, record(3, loss=2.0))  # a retry re-reports epoch 3
    rows = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[2]["train_loss_a"] == pytest.approx(2.0 / 3)
    ex.add_record("t", LS, record(2, loss=4.0))  # resumed from an older checkpoint: epoch 3 will be re-run
    assert [r["epoch"] for r in pq.read_table(tmp_path / "t.parquet").to_pylist()] == [1, 2]


def test_a_new_exporter_continues_from_the_file(tmp_path):
    """A restarted driver (after a kill) must not duplicate or lose rows."""
    first = ParquetExporter(tmp_path, "s", "toy", KINDS)
    for e in (1, 2):
        first.add_record("t", LS, record(e))
    second = ParquetExporter(tmp_path, "s", "toy", KINDS)
    assert second.status("t") == "running"
    for e in (2, 3):
        second.add_record("t", LS, record(e, "completed" if e == 3 else "running"))
    assert second.finish("t", "complete") == "completed"
    df = read_results(tmp_path)
    assert list(df["epoch"]) == [1, 2, 3] and set(df["status"]) == {"completed"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".rows"]  # no temp files left behind


@pytest.mark.parametrize(
    "last, ended_by, expected",
    [
        ("completed", "complete", "completed"),
        ("running", "complete", "stopped_early"),
        ("diverged", "complete", "diverged"),
        ("running", "error", "errored"),
        ("diverged", "error", "diverged"),
        (None, "error", "errored"),
    ],
)
def test_final_status(last, ended_by, expected):
    assert final_status(last, ended_by) == expected


def test_final_status_rejects_unknown_reason():
    with pytest.raises(ValueError, match="ended_by='crash'.*valid: complete, error"):
        final_status("running", "crash")


def test_final_status_is_written_on_every_row(tmp_path):
    ex = ParquetExporter(tmp_path, "s", "toy", KINDS)
    ex.add_record("t", LS, record(1))
    ex.add_record("t", LS, record(2))
    ex.finish("t", "complete")  # the scheduler stopped it after epoch 2
    assert set(pq.read_table(tmp_path / "t.parquet").column("status").to_pylist()) == {"stopped_early"}


def test_pandas_pyarrow_and_duckdb_read_many_sweeps(tmp_path):
    for sweep in ("a", "b"):
        ex = ParquetExporter(tmp_path / sweep, sweep, "toy", KINDS)
        ex.add_record("t1", LS, record(1))
        ex.add_record("t2", NTK, record(1))
        ex.add_record("t2", NTK, record(2))
    (tmp_path / "a" / ".t9.parquet.123.tmp").write_bytes(b"half-written")  # ignored by every reader
    df = read_results([tmp_path / "a", tmp_path / "b"])
    assert len(df) == 6 and list(df.columns[:9]) == [
        "sweep",
        "trial_id",
        "config_id",
        "benchmark",
        "method",
        "hp_max_norm",
        "hp_n",
        "hp_ntk_exp",
        "seed",
    ]
    assert len(read_results(tmp_path)) == 6
    assert pq.read_table(tmp_path / "a" / "t2.parquet").num_rows == 2
    count = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/*/*.parquet', union_by_name=true) WHERE method = 'ntkmtl'"
    ).fetchall()[0][0]
    assert count == 4
    with pytest.raises(ValueError, match="does not exist"):
        read_results(tmp_path / "nope")
