"""Options shared by every command that works on devices, and small rendering helpers."""

from __future__ import annotations

import json
import sys
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
                raise UsageError(f"{flag} {v!r}: expected one of {', '.join(allowed)}")
    sel = Selection(tuple(school or ()), tuple(device or ()), tuple(kind or ()), tuple(vendor or ()),
                    tuple(area or ()), tuple(tag or ()))
    return sel.apply(env(ctx).inventory())


def display_tz(ctx: typer.Context) -> str:
    """The time zone people read times in (Env.timezone)."""
    return env(ctx).timezone()


def write_output(path, data: bytes) -> None:
    """Write a command's output file atomically; a failure is a clear error (exit 73), never a half file."""
    from canteen_ops.errors import CannotWrite
    from canteen_ops.store.files import atomic_write

    try:
        atomic_write(path, data)
    except OSError as exc:
        raise CannotWrite(f"cannot write {path}: {exc.strerror or exc}") from None


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


_CONTROL = None


def cell(value: Any) -> "Text":
    """Outside text (device answers, log records) as a table cell: never markup, and control characters (escape
    sequences, line breaks) shown as '�' / a space instead of acting on the terminal."""
    global _CONTROL
    import re

    from rich.text import Text

    if _CONTROL is None:
        _CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
    text = "" if value is None else str(value)
    return Text(_CONTROL.sub("�", text.replace("\n", " ").replace("\t", " ")))
