"""The baseline configuration the comparison statistics compare with (``--baseline``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ntkmtl.results.labels import config_label, hp_text


class BaselineError(ValueError):
    """``--baseline`` names no configuration, or more than one."""


@dataclass(frozen=True)
class Baseline:
    """The configuration every other one is compared with."""

    config_id: str
    label: str  # "ls max_norm=0": method and hyperparameters, as in the table
    short: str  # column headings: the method alone when the table has one configuration of it


def _label(row: pd.Series) -> str:
    return config_label(str(row["method"]), str(row["hyperparameters"]))


def _matches(row: pd.Series, method: str, wanted: dict[str, str]) -> bool:
    """Whether a table row is ``method`` with every ``name=value`` of ``wanted``."""
    if row["method"] != method:
        return False
    for name, text in wanted.items():
        value = row.get(f"hp_{name}")
        if value is None or pd.isna(value):
            return False
        try:
            if not math.isclose(float(value), float(text), rel_tol=1e-9, abs_tol=1e-12):
                return False
        except ValueError:
            if str(value) != text:
                return False
    return True


def _baseline(measured: pd.DataFrame, row: pd.Series) -> Baseline:
    alone = int((measured["method"] == row["method"]).sum()) == 1
    return Baseline(str(row["config_id"]), _label(row), str(row["method"]) if alone else _label(row))


def resolve_baseline(table: pd.DataFrame, spec: str | None) -> tuple[Baseline | None, str]:
    """The baseline named by ``spec`` and a note for the report.

    ``spec`` is a config_id, a method name, or a method with hyperparameters as in the table
    (``"ntkmtl ntk_exp=0.5"``; unnamed hyperparameters may take any value, but the match must be
    unique); ``"none"`` turns comparisons off. Without ``spec`` the baseline is the sweep's ``ls``
    configuration when it has exactly one. Raises BaselineError for a spec that names no
    configuration or several."""
    measured = table[table["source"] == "sweep"]
    if spec is not None and spec.strip().lower() == "none":
        return None, "no baseline (--baseline none)"
    if spec is None:
        ls = measured[measured["method"] == "ls"]
        if len(ls) == 1:
            return _baseline(measured, ls.iloc[0]), ""
        if len(ls) > 1:
            return None, f"no baseline: {len(ls)} ls configurations; choose one with --baseline"
        return None, "no baseline: no ls configuration; choose one with --baseline"
    spec = spec.strip()
    exact = measured[measured["config_id"].astype(str) == spec]
    if len(exact) == 1:
        return _baseline(measured, exact.iloc[0]), ""
    method, _, rest = spec.partition(" ")
    wanted = {}
    for part in rest.replace(",", " ").split():
        name, sep, value = part.partition("=")
        if not sep:
            raise BaselineError(
                f"--baseline {spec!r}: {part!r} is not name=value (e.g. --baseline 'ntkmtl ntk_exp=0.5')"
            )
        wanted[name] = value
    found = measured[[_matches(r, method, wanted) for _, r in measured.iterrows()]]
    valid = "; ".join(_label(r) for _, r in measured.iterrows())
    if found.empty:
        raise BaselineError(f"--baseline {spec!r} matches no configuration; configurations: {valid}")
    if len(found) > 1:
        raise BaselineError(
            f"--baseline {spec!r} matches {len(found)} configurations "
            f"({'; '.join(_label(r) for _, r in found.iterrows())}): name its hyperparameters"
        )
    return _baseline(measured, found.iloc[0]), ""


def check_baseline(configs: list[tuple[str, str, dict[str, Any]]], spec: str | None) -> None:
    """Raise BaselineError when ``spec`` names no configuration, or several, of a sweep's plan
    (``configs``: config_id, method, complete hyperparameters), before the sweep starts."""
    records = [
        {"source": "sweep", "config_id": cid, "method": method, **{f"hp_{k}": v for k, v in hparams.items()}}
        for cid, method, hparams in dict((c[0], c) for c in configs).values()
    ]
    table = pd.DataFrame(records)
    hp_columns = [c for c in table.columns if c.startswith("hp_")]
    table["hyperparameters"] = [hp_text(r, hp_columns) for _, r in table.iterrows()]
    resolve_baseline(table, spec)
