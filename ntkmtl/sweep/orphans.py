"""Parquet files of trials that an interrupted driver started after Ray's last experiment snapshot.

Ray saves the experiment state (its trials and the searcher) every ≥ 10 s (``checkpoints.py``:
on its schedule only), not each time a searcher creates a trial. A trial created after the last snapshot is therefore
unknown to ``Tuner.restore``; the searcher, restored to the same snapshot, suggests it again
under a new trial id (a seeded sampler in the same state draws the same sample). The file the
exporter wrote for the lost trial as its epochs arrived would stay next to the re-run for ever,
so ``--resume`` removes it before the resumed driver starts: the resumed sweep ends with the rows
of an uninterrupted one, each once.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ntkmtl.sweep.export import result_files
from ntkmtl.sweep.storage import StorageLocation


def known_trial_ids(location: StorageLocation, experiments: list[str]) -> set[str]:
    """The trial ids of the newest snapshots Ray saved of the sweep's experiments (with its extensions)."""
    from ray.tune import ExperimentAnalysis

    known: set[str] = set()
    for name in experiments:
        analysis = ExperimentAnalysis(location.join(name), storage_filesystem=location.filesystem)
        known |= {t.trial_id for t in analysis.trials}
    return known


def lost_trial_files(output: str, sweep: str, known: set[str]) -> list[Path]:
    """The sweep's Parquet files in ``output`` whose trial the experiment snapshot does not know."""
    directory = Path(output).expanduser()
    if not directory.is_dir():
        return []
    lost = []
    for path in result_files(directory):
        table = pq.read_table(path, columns=["sweep", "trial_id"])
        if table.num_rows and table["sweep"][0].as_py() == sweep and table["trial_id"][0].as_py() not in known:
            lost.append(path)
    return lost


def drop_lost_trials(location: StorageLocation, experiments: list[str], sweep: str, output: str) -> int:
    """Remove the files of trials no snapshot of the sweep's ``experiments`` knows (they run again)."""
    lost = lost_trial_files(output, sweep, known_trial_ids(location, experiments))
    for path in lost:
        path.unlink()
    if lost:
        print(
            f"resume: {len(lost)} trial(s) had started after Ray's last experiment snapshot and run again "
            f"from the start (their partial rows are replaced): {', '.join(p.stem for p in lost)}",
            flush=True,
        )
    return len(lost)
