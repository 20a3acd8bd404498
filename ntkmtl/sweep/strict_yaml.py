"""YAML for sweep configs: ``ntkmtl.options.SettingsLoader`` (PyYAML's safe loader reading
``1e-4`` as a number), except that a key given twice is an error.

PyYAML keeps the last of two equal keys in a mapping without a word, so a method listed twice
under ``methods:`` silently loses its first grid. ``load(text)`` refuses that with one
line naming the key and both lines (``tune.yaml: line 9: key 'ls' is given twice in one mapping
(first on line 7) …``). Merge keys (``<<: *anchor``) still override as YAML defines.
"""

from __future__ import annotations

from typing import Any

import yaml

from ntkmtl.options import SettingsLoader


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of the document lists one key twice; the message names the key and its lines."""


class _StrictLoader(SettingsLoader):
    """SettingsLoader whose mappings refuse duplicate keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            earlier = first_line.get(key)
        except TypeError:  # an unhashable key: SafeLoader's own error says so
            break
        if earlier is not None:
            raise DuplicateKeyError(
                f"line {line}: key {key!r} is given twice in one mapping (first on line {earlier}); "
                "YAML would keep only the last, so remove or merge one of them"
            )
        first_line[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load(text: str) -> Any:
    """Parse one YAML document as ``ntkmtl.options.load_yaml`` does; DuplicateKeyError on a repeated key."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
