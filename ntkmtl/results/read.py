"""Reading a sweep's Parquet rows and checking them against the schema (``schema.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ntkmtl.results.errors import ReportError
from ntkmtl.results.schema import IDENTITY_COLUMNS, STATUSES


def read_parquet_files(path: str) -> pd.DataFrame:
    """Every ``*.parquet`` file at ``path`` (a file, or a directory searched recursively; names
    starting with ``.`` or ``_`` are skipped as temporary), concatenated with pandas."""
    root = Path(path)
    files = (
        [root]
        if root.is_file()
        else sorted(
            p
            for p in root.rglob("*.parquet")
            if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
        )
    )
    if not files:
        raise ReportError(f"no .parquet files under {path!r}; give the Parquet file or directory a sweep wrote")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def load_results(path: str, read: Callable[[str], pd.DataFrame] = read_parquet_files) -> pd.DataFrame:
    """The rows of one or many sweeps, checked for the identity columns and valid statuses.

    ``read`` turns the path into a DataFrame: the CLI passes the sweep's own reader
    (``ntkmtl.sweep.export.read_results``, which knows the data set's layout); the default reads
    local Parquet files with pandas. Its OSError / ValueError / ImportError become a ReportError."""
    if "://" not in path and not any(ch in path for ch in "*?[") and not os.path.exists(path):
        raise ReportError(f"results path {path!r} does not exist; give the Parquet file or directory a sweep wrote")
    try:
        df = read(path)
    except ReportError:
        raise
    except (OSError, ValueError, ImportError) as err:
        raise ReportError(f"cannot read results {path!r}: {err}") from err
    if df is None or len(df) == 0:
        raise ReportError(f"results {path!r} hold no rows: has the sweep finished any epoch yet?")
    missing = [c for c in IDENTITY_COLUMNS if c not in df.columns]
    if missing:
        raise ReportError(
            f"results {path!r} lack the column(s) {', '.join(missing)}; expected the sweep schema "
            f"(docs/SWEEP.md): {', '.join(IDENTITY_COLUMNS)}, val_*, test_*, …"
        )
    bad = sorted(set(df["status"].astype(str)) - set(STATUSES))
    if bad:
        raise ReportError(f"results {path!r}: unknown trial status {bad[0]!r}; valid statuses: {', '.join(STATUSES)}")
    # Exactly-once is the exporter's job; dropping repeated (trial, epoch) rows here is a cheap guard.
    df = df.drop_duplicates(subset=["sweep", "trial_id", "epoch"], keep="last")
    return df.sort_values(["benchmark", "sweep", "trial_id", "epoch"], kind="stable").reset_index(drop=True)
