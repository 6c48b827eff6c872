"""YAML loading that remembers where every value came from (file:line:column).

We compose the node tree ourselves instead of yaml.safe_load so that validation errors can name the exact
line, and so that duplicate keys (silently merged by PyYAML) become errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

try:  # libyaml is much faster when present
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


class PositionMap(dict):
    """Maps a field path tuple, e.g. ('schools', 0, 'devices', 2, 'port'), to the Mark of its value."""

    def at(self, path: tuple) -> Mark:
        # Fall back to the nearest ancestor that has a position (e.g. a missing key → its parent mapping).
        while path and path not in self:
            path = path[:-1]
        return self.get(path, Mark(1, 1))


class YamlSyntaxError(Exception):
    def __init__(self, mark: Mark, message: str):
        self.mark, self.message = mark, message
        super().__init__(message)


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def load_with_positions(text: str) -> tuple[Any, PositionMap, list[tuple[tuple, Mark, str]]]:
    """Parse YAML text. Returns (data, positions, duplicate-key problems)."""
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark
        mark = Mark(m.line + 1, m.column + 1) if m else Mark(1, 1)
        raise YamlSyntaxError(mark, f"YAML syntax error: {exc.problem}") from None
    positions = PositionMap()
    duplicates: list[tuple[tuple, Mark, str]] = []
    if root is None:
        return None, positions, duplicates
    constructor = yaml.SafeLoader("")  # only used to construct scalars with YAML's type rules

    def build(node: yaml.Node, path: tuple) -> Any:
        positions[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            constructor.flatten_mapping(node)  # resolve `<<: *anchor` merges
            out: dict = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if isinstance(key, (list, dict)):
                    key = str(key)
                if key in out:
                    duplicates.append((path + (key,), _mark(key_node), f"duplicate key {key!r}"))
                out[key] = build(value_node, path + (key,))
                # A key's own position is more useful than its value's for "unknown key" errors.
                positions[path + (key, "__key__")] = _mark(key_node)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, path + (i,)) for i, child in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    return build(root, ()), positions, duplicates
