"""Options shared by every command that works on devices, and small rendering helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from canteen_ops.context import Env
    from canteen_ops.inventory.model import Device

SchoolOpt = Annotated[Optional[list[str]],
    typer.Option("--school", "-s", metavar="SCHOOL", help="School id or name (repeatable)")]
DeviceOpt = Annotated[Optional[list[str]],
    typer.Option("--device", "-d", metavar="GLOB", help="Device id glob, e.g. 'xc-cam-*'")]
KindOpt = Annotated[Optional[list[str]], typer.Option("--kind", metavar="KIND", help="camera | nvr")]
VendorOpt = Annotated[Optional[list[str]], typer.Option("--vendor", metavar="VENDOR", help="hikvision | dahua | onvif")]
AreaOpt = Annotated[Optional[list[str]], typer.Option("--area", metavar="AREA", help="Canteen area, e.g. 烹饪区")]
TagOpt = Annotated[Optional[list[str]], typer.Option("--tag", metavar="TAG", help="Device tag (repeatable)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]
ExportLangOpt = Annotated[str, typer.Option(
    "--lang", metavar="LANG", help="Column headers: en, or zh (Chinese headers, local times, Excel-ready)")]
OutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", metavar="FILE", help="Write here (atomically) instead of stdout")]
# Upper bounds of numeric options: beyond them a value is a typo, and passing it on overflows (SQLite integers,
# datetime arithmetic, thread counts). Click's range types report the option and the range (exit 64).
MAX_COUNT = 1_000_000_000
MAX_WORKERS = 1024
MAX_SECONDS = 86_400.0
MAX_DAYS = 36_525.0


def env(ctx: typer.Context) -> "Env":
    return ctx.find_root().obj


def select(ctx: typer.Context, school=None, device=None, kind=None, vendor=None, area=None, tag=None
           ) -> list["Device"]:
    """Load the inventory and apply the selection flags."""
    from canteen_ops.errors import UsageError
    from canteen_ops.inventory.model import KINDS, VENDORS
    from canteen_ops.inventory.select import Selection

    for values, allowed, flag in ((kind, KINDS, "--kind"), (vendor, VENDORS, "--vendor")):
        for v in values or ():
            if v not in allowed:
                raise UsageError("{flag} {value!r}: expected one of {allowed}", flag=flag, value=v,
                                 allowed=", ".join(allowed))
    sel = Selection(tuple(school or ()), tuple(device or ()), tuple(kind or ()), tuple(vendor or ()),
                    tuple(area or ()), tuple(tag or ()))
    return sel.apply(env(ctx).inventory())


def display_tz(ctx: typer.Context) -> str:
    """The time zone people read times in (Env.timezone)."""
    return env(ctx).timezone()


def parse_at(at: str | None, tz: str, flag: str = "--at"):
    """An ISO time typed by a person: local to `tz` unless it carries an offset."""
    if at is None:
        return None
    import datetime as dt
    from zoneinfo import ZoneInfo

    from canteen_ops.errors import UsageError
    from canteen_ops.timeutil import in_range

    try:
        t = dt.datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError("{flag} {at!r}: expected an ISO time such as 2026-11-27T10:15", flag=flag, at=at) from None
    try:
        return in_range(t if t.tzinfo else t.replace(tzinfo=ZoneInfo(tz)), at)
    except ValueError as exc:
        raise UsageError("{flag}: {exc}", flag=flag, exc=exc) from None


def export_lang(lang: str, fmt: str | None, formats: tuple[str, ...], output=None, default: str = "csv") -> str:
    """Check an export's --lang and --format before anything is read; return the format. Without --format the
    output file's suffix decides (`-o ledger.xlsx` is xlsx), else `default`; a --format that
    contradicts a known suffix is refused (Excel will not open CSV text named .xlsx)."""
    from pathlib import Path

    from canteen_ops.errors import UsageError

    if lang not in ("en", "zh"):
        raise UsageError("--lang {lang!r}: expected en or zh", lang=lang)
    suffix = Path(output).suffix.lower().lstrip(".") if output is not None else ""
    suffix = suffix if suffix in formats else ""
    if fmt is None:
        return suffix or default
    if fmt not in formats:
        raise UsageError("--format {format!r}: expected one of {formats}", format=fmt, formats=", ".join(formats))
    if suffix and suffix != fmt:
        raise UsageError("--format {format} does not match the output file {output} (.{suffix}); name it .{format} "
                         "or leave --format out", format=fmt, output=output, suffix=suffix)
    if fmt == "xlsx" and output is None:  # a workbook is binary: it cannot go to stdout
        raise UsageError("--format xlsx needs --output FILE")
    return fmt


def write_output(path, data: bytes) -> None:
    """Write a command's output file atomically; a failure is a clear error (exit 73), never a half file."""
    from canteen_ops.errors import CannotWrite
    from canteen_ops.store.files import atomic_write

    try:
        atomic_write(path, data)
    except OSError as exc:
        raise CannotWrite("cannot write {path}: {reason}", path=path, reason=exc.strerror or exc) from None


def echo(message: Any = "", *, err: bool = False, nl: bool = True) -> None:
    """A plain line, controls made visible (cli/render.py; imported late so `--help` stays fast)."""
    from canteen_ops.cli.render import echo as _echo

    _echo(message, err=err, nl=nl)


# JSON escapes C0 controls itself; C1 controls and bidi overrides pass through with ensure_ascii=False.
_JSON_TTY = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                        *range(0x2066, 0x206A))}


def json_text(obj: Any, indent: int | None = 2) -> str:
    """JSON for stdout: as is into a pipe; on a terminal, characters that act on it become \\u escapes (still
    the same JSON)."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent, default=str)
    return text.translate(_JSON_TTY) if sys.stdout.isatty() else text


def print_json(obj: Any) -> None:
    sys.stdout.write(json_text(obj) + "\n")
