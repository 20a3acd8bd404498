"""Declared settings: one ``HParam`` per option, with its type, default and valid range.

Methods declare their hyperparameters with it and benchmarks their data options; the sweep layer
validates YAML values and prints ``--help`` from the same declarations, and the trainer declares
its settings (``TrialConfig``) with it. ``parse_value`` / ``load_yaml`` are the one reader of typed
values, for YAML files and command lines alike. This module sits below every other layer of the
package and imports none of it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class HParam:
    """One setting (a method's hyperparameter, a benchmark's data option): its type, default
    and valid range, declared once.

    ``low``/``high`` are inclusive bounds unless ``low_open``/``high_open``; ``choices`` lists the
    valid values of a categorical one. The sweep layer validates YAML grids against these.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None

    def valid_range(self) -> str:
        """The valid values, written for an error message or ``--help``."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind not in (int, float):
            return f"a {self.kind.__name__}"
        lo = "(" if self.low_open or self.low is None else "["  # ±inf itself is never valid
        hi = ")" if self.high_open or self.high is None else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{self.kind.__name__} in {lo}{low}, {high}{hi}"

    def check(self, value: Any, owner: str, what: str = "hyperparameter") -> Any:
        """Return ``value`` converted to this type, or raise ValueError quoting it.

        ``what`` names the kind of setting in the message (benchmarks declare "data option"s)."""
        where = f"{owner}: {what} {self.name}={value!r}"
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{where} is not a boolean; valid: {self.valid_range()}")
            return value
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where} is not a number; valid: {self.valid_range()}")
            if self.kind is int and float(value) != int(value):
                raise ValueError(f"{where} is not an integer; valid: {self.valid_range()}")
            value = self.kind(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} is not finite; valid: {self.valid_range()}")
            too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
            too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
            if too_low or too_high:
                raise ValueError(f"{where} is out of range; valid: {self.valid_range()}")
            return value
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where} is not valid; valid: {self.valid_range()}")
        if not isinstance(value, self.kind):
            raise ValueError(f"{where} should be a {self.kind.__name__}; valid: {self.valid_range()}")
        return value


# -- the one value parser ---------------------------------------------------------------------
class SettingsLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as people write them: ``1e-4``, ``2.5E-3``, ``.5``.

    YAML 1.1 (PyYAML) reads ``1e-4`` as a string (its floats need a dot and a signed exponent);
    YAML 1.2's float rule is added here, so a sweep config, ``--set`` and the train CLI all give
    the float 0.0001. Everything else is SafeLoader's: ``true``, ``null``, ``[0, 1]``, strings.
    """


SettingsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """One YAML document read with ``SettingsLoader`` (raises yaml.YAMLError when malformed)."""
    return yaml.load(text, Loader=SettingsLoader)  # noqa: S506 - a SafeLoader subclass


def parse_value(text: str) -> Any:
    """A value typed on a command line (``--set``, ``--hp``, ``--data``, the train CLI's settings),
    read as one YAML value: ``3`` → 3, ``1e-3`` → 0.001, ``true`` → True, ``null`` → None,
    ``[0, 1]`` → [0, 1]; text that is not valid YAML stays the string itself."""
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return text
