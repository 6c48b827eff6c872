"""Change the inventory file from the command line (`inventory set`, `inventory add-device`), as a person would
by hand: comments, key order, flow style and quoting are kept (ruamel.yaml round trip), the result is validated
with the same loader every command uses before anything is written, and the file is replaced atomically.

Values are typed the way the loader expects them: ports, channels and timeouts are numbers, `tags` a list (a
comma list or a YAML list), everything else stays the exact text typed (a serial `0123` stays a string). An empty
value (`serial=`) removes the key. A `password` key is refused: passwords come from password_env / password_file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Iterable

from canteen_ops.errors import InvalidFile, NotFound, Problem, UsageError

NUMBERS = {"port", "rtsp_port", "nvr_channel", "timeout"}
LISTS = {"tags"}
BOOLEANS = {"https"}


def parse_assignments(items: Iterable[str]) -> list[tuple[tuple[str, ...], Any]]:
    """KEY=VALUE (KEY may be dotted, e.g. policy.clock_warn_s=10) → [(path, value or None to remove)]."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        path = tuple(k.strip() for k in key.split("."))
        if not sep or not all(path):
            raise UsageError("{item!r}: expected KEY=VALUE, e.g. serial=DS-2CD2386G2-IU2024",
                             item=item.split("=")[0])
        if any("password" in k.lower() for k in path):
            # The value is never echoed: it is a password.
            raise UsageError("refusing to write {key!r} into the inventory: passwords come from the environment or "
                             "a file (credentials: password_env / password_file)", key=key.strip())
        out.append((path, _typed(path[-1], raw.strip())))
    if not out:
        raise UsageError("give at least one KEY=VALUE")
    return out


def _typed(key: str, raw: str) -> Any:
    if raw == "":
        return None
    if key in NUMBERS or key.endswith(("_s", "_days", "_h", "_pct")):
        try:
            return int(raw)
        except ValueError:
            try:
                return float(raw)
            except ValueError:
                return raw  # the validator says what is wrong with it
    if key in BOOLEANS:
        return {"true": True, "yes": True, "false": False, "no": False}.get(raw.lower(), raw)
    if key in LISTS or raw.startswith("["):
        items = raw.strip("[]").split(",")
        return [i.strip() for i in items if i.strip()]
    return raw


def set_device(path: Path, device_id: str, assignments: list[tuple[tuple[str, ...], Any]]) -> list[str]:
    """Change keys of one device; returns the changes as 'key: old → new' lines."""
    yaml, doc, text = _load(path)
    device = next((d for school in _schools(doc) for d in _devices(school) if _is_map(d)
                   and str(d.get("id")) == device_id), None)
    if device is None:
        raise NotFound("device {device_id!r} is not in the inventory {where}", device_id=device_id, where=path)
    changes = [_assign(device, p, v) for p, v in assignments]
    _write(path, yaml, doc, text)
    return changes


def add_device(path: Path, school: str, assignments: list[tuple[tuple[str, ...], Any]]) -> str:
    """Append a device to a school (by id or name); returns its id."""
    yaml, doc, text = _load(path)
    entry = next((s for s in _schools(doc) if _is_map(s) and school in (str(s.get("id")), str(s.get("name")))),
                 None)
    if entry is None:
        raise NotFound("school {school!r} is not in the inventory {where}", school=school, where=path)
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    devices = entry.get("devices")
    if devices is None:
        devices = entry["devices"] = CommentedSeq()
    if not isinstance(devices, list):
        raise InvalidFile([Problem(str(path), 1, 1, "devices", "devices of that school is not a list")])
    new = CommentedMap()
    for p, v in assignments:
        if v is not None:
            _assign(new, p, v)
    if devices and all(_is_map(d) and d.fa.flow_style() for d in devices):
        new.fa.set_flow_style()  # one line per device, like its neighbours
    devices.append(new)
    _write(path, yaml, doc, text)
    return str(new.get("id"))


def _load(path: Path):
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from canteen_ops.inventory.loader import load_inventory

    load_inventory(path)  # the file must be valid before we touch it (same errors as every command)
    text = path.read_text(encoding="utf-8")
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long flow lines
    yaml.indent(**_indent(text))
    try:
        return yaml, yaml.load(text), text
    except YAMLError as exc:  # pragma: no cover - the loader accepted it
        raise InvalidFile([Problem(str(path), 1, 1, "", "cannot edit: {exc}", values=dict(exc=exc))]) from None


def _indent(text: str) -> dict[str, int]:
    """The file's own list indentation (`- ` under its key or indented by two), so untouched lines stay put."""
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if stripped.startswith("- ") and line != stripped:
            offset = len(line) - len(stripped)
            prev = text[:text.index(line)].rstrip("\n").rsplit("\n", 1)[-1]
            parent = len(prev) - len(prev.lstrip(" "))
            off = offset - parent
            return {"mapping": 2, "sequence": off + 2, "offset": off}
    return {"mapping": 2, "sequence": 4, "offset": 2}


def _schools(doc) -> list:
    schools = doc.get("schools") if _is_map(doc) else None
    return schools if isinstance(schools, list) else []


def _devices(school) -> list:
    devices = school.get("devices") if _is_map(school) else None
    return devices if isinstance(devices, list) else []


def _is_map(x) -> bool:
    return isinstance(x, dict)


def _assign(node, path: tuple[str, ...], value: Any) -> str:
    from ruamel.yaml.comments import CommentedMap

    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = CommentedMap()
            if getattr(node, "fa", None) is not None and node.fa.flow_style():
                child.fa.set_flow_style()
            node[key] = child
        node = child
    key = path[-1]
    old = node.get(key)
    if value is None:
        node.pop(key, None)
    else:
        if isinstance(value, list):
            from ruamel.yaml.comments import CommentedSeq

            seq = CommentedSeq(value)
            seq.fa.set_flow_style()
            value = seq
        node[key] = value
    if _show(old) == _show(value):
        from canteen_ops.i18n import _

        return _("{key}: {value} (unchanged)").format(key=".".join(path), value=_show(old))  # shown, never stored
    return f"{'.'.join(path)}: {_show(old)} → {_show(value)}"


def _show(v: Any) -> str:
    if v is None:
        from canteen_ops.i18n import _

        return _("(none)")
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def _write(path: Path, yaml, doc, before: str) -> None:
    from canteen_ops.inventory.loader import parse_inventory
    from canteen_ops.store.files import atomic_write

    buf = io.StringIO()
    yaml.dump(doc, buf)
    text = buf.getvalue()
    try:
        parse_inventory(text, str(path))
    except InvalidFile as exc:  # exit 65, nothing written; lines are those the file would have had
        raise InvalidFile([Problem(p.file, p.line, p.column, p.path, "{problem} (after this change; the file is "
                                   "unchanged)", {"problem": p.text()}) for p in exc.problems]) from None
    if text == before:
        return
    target = path.resolve()  # a symlinked inventory stays a symlink
    atomic_write(target, text.encode("utf-8"), mode=os.stat(target).st_mode & 0o777)
