"""A driver killed while Ray copied its experiment snapshot to storage leaves it cut short:
--resume moves that session's files aside and continues from the session before (ray_state.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ray")

import ray.cloudpickle  # noqa: E402
from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint  # noqa: E402

from ntkmtl.sweep.identity import SweepError  # noqa: E402
from ntkmtl.sweep.ray_state import usable_experiment_state  # noqa: E402
from ntkmtl.sweep.storage import StorageLocation  # noqa: E402

OLD, NEW = "2026-12-03_13-00-00", "2026-12-03_13-05-00"


def write_session(directory, session, cut=False, cut_searcher=False, without_callbacks=False):
    state = json.dumps({"trial_data": [["trial", "metadata"]], "runner_data": {}})
    (directory / f"experiment_state-{session}.json").write_text(state[: len(state) // 2] if cut else state)
    searcher = ray.cloudpickle.dumps({"_total_samples": 12, "_iterators": list(range(50))})
    (directory / f"basic-variant-state-{session}.json").write_bytes(
        searcher[: len(searcher) // 2] if cut_searcher else searcher
    )  # (a pickle, despite its name)
    if not without_callbacks:
        (directory / f"callback-states-{session}.pkl").write_bytes(ray.cloudpickle.dumps([{"rows": 3}]))


def test_a_cut_newest_state_gives_way_to_the_session_before(tmp_path, capsys):
    experiment = tmp_path / "sweep"
    experiment.mkdir()
    write_session(experiment, OLD)
    write_session(experiment, NEW, cut=True)
    lines = usable_experiment_state(StorageLocation(None, str(tmp_path)), "sweep")
    assert len(lines) == 1 and lines[0].startswith(
        f"resume: Ray's experiment state of session {NEW} in {experiment} is cut short or incomplete"
    )
    assert sorted(p.name for p in experiment.iterdir()) == [
        f"basic-variant-state-{OLD}.json",
        f"basic-variant-state-{NEW}.json.cut",
        f"callback-states-{OLD}.pkl",
        f"callback-states-{NEW}.pkl.cut",
        f"experiment_state-{OLD}.json",
        f"experiment_state-{NEW}.json.cut",
    ]
    assert _find_newest_experiment_checkpoint(str(experiment)).endswith(
        f"experiment_state-{OLD}.json"
    )  # what Ray restores
    assert capsys.readouterr().out.strip() == lines[0]


def test_an_intact_newest_state_is_left_alone(tmp_path):
    experiment = tmp_path / "sweep"
    experiment.mkdir()
    write_session(experiment, OLD, cut=True)  # older sessions are not read
    write_session(experiment, NEW)
    assert usable_experiment_state(StorageLocation(None, str(tmp_path)), "sweep") == []
    assert not list(experiment.glob("*.cut"))


def test_no_intact_state_stops_the_resume_in_one_line(tmp_path):
    experiment = tmp_path / "sweep"
    experiment.mkdir()
    write_session(experiment, NEW, cut=True)
    with pytest.raises(SweepError, match=r"^--resume: no intact Ray experiment state of sweep 'sweep' is left at "):
        usable_experiment_state(StorageLocation(None, str(tmp_path)), "sweep")


@pytest.mark.parametrize("damage", ["cut_searcher", "without_callbacks"])
def test_a_newest_session_with_a_cut_or_missing_searcher_or_callback_file_gives_way(tmp_path, damage):
    experiment = tmp_path / "sweep"
    experiment.mkdir()
    write_session(experiment, OLD)
    write_session(experiment, NEW, **{damage: True})  # its experiment state itself is whole
    lines = usable_experiment_state(StorageLocation(None, str(tmp_path)), "sweep")
    assert len(lines) == 1 and f"session {NEW}" in lines[0]
    assert not list(experiment.glob(f"*{OLD}*.cut")) and len(list(experiment.glob(f"*{NEW}*.cut"))) >= 2
    assert _find_newest_experiment_checkpoint(str(experiment)).endswith(f"experiment_state-{OLD}.json")
