"""--resume drops the Parquet files of trials the restored Ray experiment does not know (no Ray here)."""

from __future__ import annotations

import pandas as pd

from ntkmtl.sweep.orphans import lost_trial_files


def write(directory, sweep, trial_id, epochs):
    pd.DataFrame(
        {"sweep": sweep, "trial_id": trial_id, "epoch": list(range(1, epochs + 1)), "status": "running"}
    ).to_parquet(directory / f"{trial_id}.parquet", index=False)


def test_only_this_sweeps_unknown_trials_are_lost(tmp_path):
    write(tmp_path, "s", "known", 2)
    write(tmp_path, "s", "after_snapshot", 1)
    write(tmp_path, "other", "someone_elses", 1)  # another sweep sharing the output directory
    lost = lost_trial_files(str(tmp_path), "s", {"known"})
    assert [p.name for p in lost] == ["after_snapshot.parquet"]
    assert lost_trial_files(str(tmp_path / "missing"), "s", set()) == []
