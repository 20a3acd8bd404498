"""The typed checks every section of a sweep config goes through, and the error they raise.

``ConfigChecker`` holds the config's source (its file name) and turns every problem into one
``ConfigError`` line ``file: key.path = value: reason``, suggesting the closest valid name
(``did_you_mean``) where a name was mistyped. The section parsers (``config_sections``) and the
top-level parser (``config``) share it, so all config errors read alike. Plain Python, no Ray.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Mapping, NoReturn


class ConfigError(ValueError):
    """A sweep config is invalid; the message names the file, the key path and the bad value."""


class ConfigChecker:
    """Type and range checks that raise ConfigError with ``file: key.path = value: reason``."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, value: Any, reason: str) -> NoReturn:
        where = f"{self.source}: {path}" if path else self.source
        shown = "" if value is None and reason == "is required" else f" = {value!r}"
        raise ConfigError(f"{where}{shown}: {reason}")

    def mapping(self, path: str, value: Any, valid_keys) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path or "<top level>", value, "must be a mapping (key: value)")
        if valid_keys is not None:
            for key in value:
                if key not in valid_keys:
                    full = f"{path}.{key}" if path else str(key)
                    self.fail(
                        full,
                        value[key],
                        f"unknown key {key!r}{did_you_mean(key, valid_keys)}; valid keys: {', '.join(valid_keys) or 'none'}",
                    )
        return value

    def string(self, path: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, value, "must be a non-empty string")
        return value.strip()

    def boolean(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(path, value, "must be true or false")
        return value

    def choice(self, path: str, value: Any, valid) -> Any:
        if value not in valid:
            self.fail(path, value, f"is not valid{did_you_mean(value, valid)}; valid: {', '.join(map(str, valid))}")
        return value

    def integer(self, path: str, value: Any, low: int | None = None, high: int | None = None, why: str = "") -> int:
        whole = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and math.isfinite(value)
            and float(value) == int(value)
        )
        if not whole:
            self.fail(path, value, "must be an integer" + (f" >= {low}" if low is not None else ""))
        value = int(value)
        if low is not None and value < low:
            self.fail(path, value, f"must be an integer >= {low}")
        if high is not None and value > high:
            self.fail(path, value, f"must be an integer from {low} to {high}{why}")
        return value

    def number(self, path: str, value: Any, low: float | None = None, low_open: bool = False) -> float:
        bound = "" if low is None else f" {'>' if low_open else '>='} {low:g}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(path, value, f"must be a finite number{bound}")
        if low is not None and (value <= low if low_open else value < low):
            self.fail(path, value, f"must be a number{bound}")
        return float(value)


def did_you_mean(value: Any, valid) -> str:
    """`` (did you mean 'x'?)`` for the valid name closest to ``value``, or nothing."""
    close = difflib.get_close_matches(str(value), [str(v) for v in valid], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
