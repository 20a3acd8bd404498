"""Config keys that were renamed: the old names still work, with one warning line, until they go.

``RENAMED_KEYS`` maps a deprecated top-level key to its name now: ``scheduler:`` became
``early_stopping:`` (it is the early stopping of trials, and collided with ``train.scheduler``,
the LR schedule). ``rename_deprecated_keys`` moves a file's old key to the new one and
``renamed_override`` does the same for ``--set old.key=value``; each prints one ``warning:`` line
on stderr, as the sweep prints its other warnings. A config giving both names is a one-line
``ConfigError``. The old names stop working in ``REMOVED_IN``. Plain Python, no Ray.
"""

from __future__ import annotations

import sys
from typing import Any

from ntkmtl.sweep.config_checks import ConfigError

RENAMED_KEYS = {"scheduler": "early_stopping"}  # a deprecated top-level key → its name now
REMOVED_IN = "0.3"  # the version in which the deprecated names stop working


def rename_deprecated_keys(raw: dict[str, Any], source: str) -> None:
    """Move each deprecated top-level key of ``raw`` to its new name, in place, with one warning
    line; a ConfigError when the config gives both names."""
    for old, new in RENAMED_KEYS.items():
        if old not in raw:
            continue
        if new in raw:
            raise ConfigError(
                f"{source}: both `{old}:` and `{new}:` are given; `{old}:` is the deprecated name of `{new}:`, "
                f"keep only `{new}:`"
            )
        _warn(f"{source}: `{old}:` is deprecated, rename it to `{new}:` (same keys); the old name goes in {REMOVED_IN}")
        raw[new] = raw.pop(old)


def renamed_override(parts: list[str], item: str, text: str, source: str) -> list[str]:
    """The key path of ``--set item`` (``parts``, its value ``text``) with a deprecated first key
    renamed, and its warning line."""
    if parts[0] not in RENAMED_KEYS:
        return parts
    new = RENAMED_KEYS[parts[0]]
    _warn(
        f"{source}: --set {item!r}: `{parts[0]}` is deprecated, rename it to `{new}` (same keys: "
        f"--set {'.'.join([new, *parts[1:]])}={text}); the old name goes in {REMOVED_IN}"
    )
    return [new, *parts[1:]]


def _warn(line: str) -> None:
    """A warning for the user, one line on stderr, as the sweep prints its other warnings."""
    print(f"warning: {line}", file=sys.stderr, flush=True)
