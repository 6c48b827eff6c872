"""Tabular exports (the ledger, the log) for machines and for people who open them in Excel.

`csv` in English is for machines: UTC ISO timestamps, column names as in the log. With `--lang zh` the
headers are Chinese and times are local to the inventory's time zone; CSV files carry a UTF-8 BOM so Excel on
Chinese Windows does not read them as GBK. `xlsx` (openpyxl) writes real date-time cells in local time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any, Sequence

FORMATS = ("csv", "jsonl", "xlsx")
BOM = "\ufeff"


def is_time_column(name: str) -> bool:
    return name == "at" or name.endswith("_at")


def _local_dt(value: Any, tz: str) -> Any:
    """A stored UTC timestamp as a naive local datetime (what Excel shows); anything else unchanged."""
    if not isinstance(value, str) or not value:
        return value
    from zoneinfo import ZoneInfo

    from canteen_ops.timeutil import parse_iso

    try:
        return parse_iso(value).astimezone(ZoneInfo(tz)).replace(tzinfo=None, microsecond=0)
    except ValueError:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


def headers(columns: Sequence[str], lang: str) -> list[str]:
    from canteen_ops.i18n import zh

    return [zh(c) if lang == "zh" else c for c in columns]


def encode(columns: Sequence[str], rows: Sequence[dict], *, fmt: str, lang: str = "en", tz: str = "Asia/Shanghai",
           sheet: str = "export", bom: bool = False) -> bytes:
    """Rows (dicts) as CSV, JSON Lines or an xlsx workbook."""
    local = lang == "zh" or fmt == "xlsx"
    times = [c for c in columns if is_time_column(c)]

    def values(r: dict) -> list[Any]:
        out = [_cell(r.get(c)) for c in columns]
        if local:
            for i, c in enumerate(columns):
                if c in times:
                    out[i] = _local_dt(out[i], tz)
        return out

    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows).encode("utf-8")
    if fmt == "xlsx":
        return _xlsx(headers(columns, lang), [values(r) for r in rows], sheet)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if lang == "zh" else "\n")
    if rows or columns:
        w.writerow(headers(columns, lang))
    for r in rows:
        w.writerow([v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, dt.datetime) else v for v in values(r)])
    return ((BOM if bom or lang == "zh" else "") + buf.getvalue()).encode("utf-8")


def _xlsx(head: list[str], body: list[list[Any]], sheet: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = sheet[:31]
    ws.append(head)
    for c in ws[1]:
        c.font = Font(bold=True)
    for row in body:
        # Control characters are illegal in xlsx XML: hostile text must not make the export fail.
        ws.append([ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", v) if isinstance(v, str) else v
                   for v in row])
    for i, name in enumerate(head, start=1):
        column = ws.cell(row=1, column=i).column_letter
        widest = max([len(str(name))] + [len(str(r[i - 1])) for r in body[:200]])
        ws.column_dimensions[column].width = min(60, widest + 2)
        for cell in ws[column][1:]:
            if isinstance(cell.value, dt.datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write(ctx, data: bytes, output, *, what: str) -> None:
    """Write an export to `output` atomically, or to stdout (xlsx needs a file: common.export_lang refused it
    before anything was read)."""
    import sys

    from canteen_ops.cli.common import env, write_output
    from canteen_ops.i18n import _

    if output:
        write_output(output, data)
        env(ctx).err.print(_("exported {what} to {file}").format(what=what, file=output))
        return
    from canteen_ops.cli.render import echo_data

    sys.stdout.flush()
    echo_data(data.decode("utf-8"))
