"""Corrupt and truncated trial files (issue 12, finding 1), without Ray: verified when read,
rebuilt from the row log or from Ray's result log, named in one line when nothing holds the rows."""

from __future__ import annotations

import json

import pytest

from ntkmtl.sweep.export import ParquetExporter, read_results, verified_rows
from ntkmtl.sweep.recovery import repair_output
from ntkmtl.sweep.storage import parse_storage

pytest.importorskip("ray")
from ntkmtl.sweep.callbacks import record_of  # noqa: E402

KINDS = {"max_norm": float}
SPEC = {"config_id": "aaaa", "method": "ls", "seed": 0, "hparams": {"max_norm": 0.0}, "n_seeds": 1}
RUNNING, DONE = "abcde_00000", "abcde_00001"


def record(epoch: int, status: str = "running") -> dict:
    return {"epoch": epoch, "status": status, "val_delta_m": 10.0 - epoch, "test_delta_m": 11.0 - epoch}


def sweep_output(tmp_path):
    """A running trial with 3 epochs and a completed one with 8, both files then cut to half."""
    ex = ParquetExporter(tmp_path / "out", "s", "toy", KINDS)
    for e in (1, 2, 3):
        ex.add_record(RUNNING, SPEC, record(e))
    for e in range(1, 9):
        ex.add_record(DONE, {**SPEC, "seed": 1}, record(e, "completed" if e == 8 else "running"))
    ex.finish(DONE, "complete")
    for trial_id in (RUNNING, DONE):
        path = ex.path(trial_id)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return ex


def ray_log(tmp_path, trial_id, spec, epochs, done_at=None):
    """What Ray keeps in storage: <experiment>/<trial dir>_<trial_id>/result.json, one result a line."""
    directory = tmp_path / "ray" / "s" / f"ls-seed{spec['seed']}_{trial_id}"
    directory.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                **record(e),
                "config": {"trial": spec},
                "trial_id": trial_id,
                "hostname": "h",
                "pid": 1,
                "done": e == done_at,
            }
        )
        for e in epochs
    ]
    (directory / "result.json").write_text("\n".join(lines) + "\n")


def test_truncated_files_are_rebuilt_from_the_row_log_with_every_row(tmp_path, capsys):
    ex = sweep_output(tmp_path)
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        verified_rows(ex.path(DONE))
    lines = repair_output(str(tmp_path / "out"), "s", "toy", KINDS, None, [], record_of)
    assert len(lines) == 1 and lines[0].startswith("resume: rebuilt 2 trial file(s)")
    assert f"{DONE} (corrupt: 8 rows from its row log)" in lines[0] and f"{RUNNING} (corrupt: 3 rows" in lines[0]
    df = read_results(tmp_path / "out")
    assert df.groupby("trial_id")["epoch"].apply(list).to_dict() == {RUNNING: [1, 2, 3], DONE: list(range(1, 9))}
    assert set(df.loc[df["trial_id"] == DONE, "status"]) == {"completed"}  # the completed trial's file is rewritten
    assert set(df.loc[df["trial_id"] == RUNNING, "status"]) == {"running"}
    assert repair_output(str(tmp_path / "out"), "s", "toy", KINDS, None, [], record_of) == []  # now sound


def test_without_a_row_log_the_file_is_rebuilt_from_rays_result_log(tmp_path):
    ex = sweep_output(tmp_path)
    for trial_id in (RUNNING, DONE):
        ex.log_path(trial_id).unlink()
    ray_log(tmp_path, RUNNING, SPEC, [1, 2, 3, 2], done_at=2)  # re-ran epoch 2 after a restore, then stopped there
    location = parse_storage(str(tmp_path / "ray"))
    lines = repair_output(str(tmp_path / "out"), "s", "toy", KINDS, location, ["s"], record_of)
    assert f"{RUNNING} (corrupt: 2 rows from its Ray result log)" in lines[0]
    # the completed trial's rows are nowhere else: named in one line, with what was lost; the file is moved aside
    assert lines[1].startswith(f"resume: 1 corrupt trial file(s) in {tmp_path / 'out'} could not be rebuilt: {DONE} (")
    assert "they are lost" in lines[1] and (tmp_path / "out" / f".{DONE}.parquet.corrupt").is_file()
    df = read_results(tmp_path / "out")
    assert list(df["epoch"]) == [1, 2] and set(df["status"]) == {"stopped_early"} and set(df["hostname"]) == {"h"}


def test_a_short_file_gets_the_rows_a_failed_write_left_out(tmp_path):
    ex = ParquetExporter(tmp_path / "out", "s", "toy", KINDS)
    ex.add_record(RUNNING, SPEC, record(1))
    ray_log(tmp_path, RUNNING, SPEC, [1, 2, 3])
    lines = repair_output(
        str(tmp_path / "out"), "s", "toy", KINDS, parse_storage(str(tmp_path / "ray")), ["s"], record_of
    )
    assert f"{RUNNING} (short (1 rows): 3 rows from its Ray result log)" in lines[0]
    assert list(read_results(tmp_path / "out")["epoch"]) == [1, 2, 3]


def test_readers_do_not_fail_on_a_corrupt_file(tmp_path, capsys):
    ex = sweep_output(tmp_path)
    ParquetExporter(tmp_path / "out", "s", "toy", KINDS).add_record("abcde_00002", {**SPEC, "seed": 2}, record(1))
    df = read_results(tmp_path / "out")  # the final summary's reader: the sound file, a warning per corrupt one
    assert list(df["trial_id"]) == ["abcde_00002"]
    assert capsys.readouterr().err.count("is not a readable Parquet file and is left out") == 2
    again = ParquetExporter(tmp_path / "out", "s", "toy", KINDS)  # a restarted driver's exporter rebuilds from the log
    assert again.status(DONE) == "completed" and len(verified_rows(ex.path(DONE))) == 8
