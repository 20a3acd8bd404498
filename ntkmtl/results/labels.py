"""How a configuration is named in tables, legends and the sweep's final table."""

from __future__ import annotations

import numpy as np
import pandas as pd


def hp_text(record: pd.Series | dict, hp_columns: list[str]) -> str:
    """'ntk_exp=0.5, n_chunks=4': the config's non-null hyperparameters, by name."""
    parts = []
    for c in sorted(hp_columns):
        value = record[c]
        if pd.isna(value):
            continue
        text = f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
        parts.append(f"{c[len('hp_') :]}={text}")
    return ", ".join(parts)


def config_label(method: str, hyperparameters: str) -> str:
    """'ntkmtl ntk_exp=0.5': a configuration's method and hyperparameter text ('ls' without any)."""
    return f"{method} {hyperparameters}".strip()


def varying_hp_columns(table: pd.DataFrame, hp_columns: list[str]) -> dict[str, list[str]]:
    """Per method, the ``hp_`` columns with more than one distinct value among its configurations."""
    measured = table[table["source"] == "sweep"]
    return {
        str(method): [c for c in hp_columns if group[c].dropna().nunique() > 1]
        for method, group in measured.groupby("method", sort=False)
    }


def varying_labels(table: pd.DataFrame, hp_columns: list[str], leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    """{config_id: "method hp=value, …"} naming only the hyperparameters that vary within the method
    (and not ``leave_out``, e.g. the x axis); a label that would still be shared gets its config_id."""
    varying = varying_hp_columns(table, hp_columns)
    measured = table[table["source"] == "sweep"]
    labels = {
        str(r["config_id"]): config_label(
            str(r["method"]), hp_text(r, [c for c in varying[str(r["method"])] if c not in leave_out])
        )
        for _, r in measured.iterrows()
    }
    counts = pd.Series(list(labels.values())).value_counts()
    return {
        cid: (f"{label} [{cid}]" if counts[label] > 1 and not leave_out else label) for cid, label in labels.items()
    }
