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
    """Maps a field path tuple, e.g. ('schools', 0, 'devices', 2, 'port'), to the Mark of its value.

    It stores PyYAML's own (0-based) marks and makes a Mark only when one is asked for: a 1,000-device inventory
    has ~27,000 positions and an error message needs one or two."""

    def get(self, path: tuple, default: Mark | None = None) -> Mark | None:  # type: ignore[override]
        raw = super().get(path)
        return default if raw is None else Mark(raw.line + 1, raw.column + 1)

    def at(self, path: tuple) -> Mark:
        # Fall back to the nearest ancestor that has a position (e.g. a missing key → its parent mapping).
        while path and path not in self:
            path = path[:-1]
        return self.get(path, Mark(1, 1))


class Sexagesimal(int):
    """An int YAML 1.1 read from base-60 notation: unquoted `18:00` is 1080. Kept apart from plain ints so a
    time field can accept `18:00` while rejecting a bare `18` (which would otherwise silently mean 00:18)."""

    text: str

    def __new__(cls, value: int, text: str) -> "Sexagesimal":
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def __repr__(self) -> str:
        return self.text


_STR_TAG = "tag:yaml.org,2002:str"
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

# Aliases can expand a small file into a huge tree ("billion laughs"); no real inventory comes close.
MAX_NODES = 1_000_000


class YamlSyntaxError(Exception):
    """Where the YAML breaks, and why: an English template and its values (errors.Problem shows it translated)."""

    def __init__(self, mark: Mark, message: str, **values):
        self.mark, self.message, self.values = mark, message, values
        super().__init__(message.format(**values) if values else message)


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def load_with_positions(text: str) -> tuple[Any, PositionMap, list[tuple[tuple, Mark, tuple[str, dict]]]]:
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
        raise YamlSyntaxError(mark, "YAML syntax error: {problem}", problem=exc.problem or exc.context) from None
    positions = PositionMap()
    duplicates: list[tuple[tuple, Mark, tuple[str, dict]]] = []  # (path, where, (message template, values))
    if root is None:
        return None, positions, duplicates
    constructor = yaml.SafeLoader("")  # only used to construct scalars with YAML's type rules

    count = 0
    active: set[int] = set()  # nodes on the current path: a recursive alias would never end
    merged: dict[int, int] = {}  # mapping node → how many of its pairs came from `<<` merges

    def build(node: yaml.Node, path: tuple) -> Any:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise YamlSyntaxError(_mark(node), "document too large after expanding aliases (> {n} nodes)",
                                  n=MAX_NODES)
        positions[path] = node.start_mark
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in active:
                raise YamlSyntaxError(_mark(node), "YAML syntax error: recursive alias")
            if node.tag not in _PLAIN_TAGS:  # e.g. !!python/object/apply on a list: never honoured, so refuse
                raise YamlSyntaxError(_mark(node), "YAML syntax error: unsupported tag {tag!r}", tag=node.tag)
            active.add(id(node))
            try:
                return build_collection(node, path)
            finally:
                active.discard(id(node))
        return scalar(node)

    def build_collection(node: yaml.Node, path: tuple) -> Any:
        if isinstance(node, yaml.MappingNode):
            if id(node) not in merged:
                own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
                try:
                    constructor.flatten_mapping(node)  # resolve `<<: *anchor` merges (they come first)
                except yaml.MarkedYAMLError as exc:
                    raise YamlSyntaxError(_mark(node), "YAML syntax error: {problem}", problem=exc.problem) from None
                merged[id(node)] = len(node.value) - own
            out: dict = {}
            own_keys: set = set()
            for i, (key_node, value_node) in enumerate(node.value):
                if isinstance(key_node, yaml.ScalarNode):
                    key = scalar(key_node)
                else:  # a list or mapping as a key: keep it printable so validation can reject it
                    key = yaml.serialize(key_node, default_flow_style=True).strip()
                if i >= merged[id(node)]:  # a key written here, not merged in: overriding a merge is fine
                    if key in own_keys:
                        duplicates.append((path + (key,), _mark(key_node), ("duplicate key {key!r}", {"key": key})))
                    own_keys.add(key)
                out[key] = build(value_node, path + (key,))
                # A key's own position is more useful than its value's for "unknown key" errors.
                positions[path + (key, "__key__")] = key_node.start_mark
            return out
        return [build(child, path + (i,)) for i, child in enumerate(node.value)]

    def scalar(node: yaml.ScalarNode) -> Any:
        if node.tag == _STR_TAG:  # most scalars: skip the constructor machinery
            return node.value
        try:
            value = constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:  # e.g. a !!python/object tag: not allowed in a safe load
            constructor.recursive_objects.pop(node, None)
            raise YamlSyntaxError(_mark(node), "YAML syntax error: {problem}", problem=exc.problem) from None
        except ValueError:  # a timestamp-shaped value that is no date (2023-13-45): let validation name it
            constructor.recursive_objects.pop(node, None)
            return node.value
        if type(value) is int and ":" in node.value:
            return Sexagesimal(value, node.value)
        return value

    return build(root, ()), positions, duplicates


def format_path(path: tuple) -> str:
    """('schools', 0, 'devices', 2, 'port') → 'schools[0].devices[2].port'."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def read_input_file(path, what: str, missing_hint: str = ""):
    """Read and parse one of our YAML input files (inventory, firmware catalog, playbook).

    Returns (data, positions, problems) where problems already holds the duplicate keys. A missing file raises
    NotFound (exit 66); an unreadable file or a YAML syntax error raises InvalidFile (exit 65) with its position.
    """
    from pathlib import Path

    from canteen_ops.errors import InvalidFile, NotFound, Problem, Word

    name = str(path)
    what = Word(what)  # our word for the file: English in str(), the reader's language when shown
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        if missing_hint:
            raise NotFound("{file}: {what} not found ({hint})", file=name, what=what, hint=Word(missing_hint)) from None
        raise NotFound("{file}: {what} not found", file=name, what=what) from None
    except OSError as exc:
        raise InvalidFile([Problem(name, 1, 1, "", "cannot read {what}: {reason}",
                                   dict(what=what, reason=exc.strerror or exc))]) from None
    return parse_input_text(decode_input(raw, name, what), name)


def decode_input(raw: bytes, name: str, what: str) -> str:
    """Our input files are UTF-8. Editors on Chinese Windows often save as GBK (ANSI) or UTF-16 ("Unicode"): say
    so, and how to fix it, instead of a codec error."""
    from canteen_ops.errors import InvalidFile, Problem

    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(raw) >= 4 and raw[:200].count(b"\x00") * 3 > min(len(raw), 200)):
        raise InvalidFile([Problem(name, 1, 1, "", "the {what} is saved as UTF-16 (\"Unicode\"): save it as UTF-8 (in "
                                   "Notepad: File → Save as → Encoding: UTF-8)", dict(what=what))])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        try:
            raw.decode("gb18030")
            message = ("the {what} is saved as GBK/GB18030 (the Chinese Windows ANSI encoding), not UTF-8: save it "
                       "as UTF-8 (in Notepad: File → Save as → Encoding: UTF-8)")
        except UnicodeDecodeError:
            message = "the {what} is not UTF-8 text: save it as UTF-8 (in Notepad: File → Save as → Encoding: UTF-8)"
        raise InvalidFile([Problem(name, line, column, "", message, dict(what=what))]) from None


def parse_input_text(text: str, name: str):
    """Parse YAML text of an input file: (data, positions, duplicate-key problems); syntax errors raise."""
    from canteen_ops.errors import InvalidFile, Problem

    try:
        data, positions, duplicates = load_with_positions(text)
    except YamlSyntaxError as exc:
        tabbed = [i for i, line in enumerate(text.splitlines(), 1) if "\t" in line[:len(line) - len(line.lstrip())]]
        if tabbed:  # PyYAML's own message ("found character '\t' that cannot start any token") hides the cause
            line = tabbed[0]
            message = ("this line is indented with a tab: YAML indentation must use spaces (1 line with tabs; "
                       "replace each tab with spaces)") if len(tabbed) == 1 else (
                "this line is indented with a tab: YAML indentation must use spaces ({n} lines with tabs; replace "
                "each tab with spaces)")
            raise InvalidFile([Problem(name, line, 1, "", message, dict(n=len(tabbed)))]) from None
        raise InvalidFile([Problem(name, exc.mark.line, exc.mark.column, "", exc.message, exc.values)]) from None
    problems = [Problem(name, mark.line, mark.column, format_path(p), *msg) for p, mark, msg in duplicates]
    return data, positions, problems
