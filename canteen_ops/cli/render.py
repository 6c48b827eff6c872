"""The one way to print: text from outside is shown as text, and tables fit the terminal.

Every byte from a device, the log, the inventory or the upstream is hostile. Printing goes through a console
(`make_console`) that never interprets rich markup or emoji codes in plain strings and shows control characters
(ANSI/OSC escapes, other C0/C1 controls, bidi overrides) as visible escapes instead of sending them to the
terminal. Styled output is built from `text()`/`styled()` pieces, never by pasting values into markup.

Tables come from `table()`: each column says what it holds (an id that must stay whole, free text that may be
cut with `…`, a number), columns empty for every row are dropped, and widths are worked out here so the table
fits the console's width (COLUMNS, or the real terminal) down to 80 cells. Widths are terminal cells (rich's
`cell_len`): a Chinese character counts 2.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import RenderableType

# Characters that would act on a terminal or reorder what is shown, mapped to something visible.
# C0 controls become their Unicode "control pictures" (ESC → ␛), DEL → ␡, C1 controls and bidi/format
# controls become a literal escape such as `\x9b` or `\u202e`. One str.translate: linear time.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_VISIBLE: dict[int, str] = {c: chr(0x2400 + c) for c in range(0x20)}
_VISIBLE[0x7F] = "\u2421"
_VISIBLE.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})
_VISIBLE.update({c: f"\\u{c:04x}" for c in _BIDI})
_MULTILINE = {**_VISIBLE}
del _MULTILINE[0x0A]  # newline stays a newline in free-standing text (not in a table cell)
_ONELINE = {**_VISIBLE, 0x09: " "}


def clean(value: Any, *, oneline: bool = False) -> str:
    """`value` as a string that cannot act on a terminal: control and bidi characters are made visible."""
    s = value if isinstance(value, str) else show(value)
    return s.translate(_ONELINE if oneline else _MULTILINE)


def show(value: Any) -> str:
    """A value as a person reads it: lists as `a, b`, None as empty, dicts as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(show(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return str(value)


def text(value: Any, style: str = "") -> Text:
    """A piece of styled output holding hostile text safely."""
    return Text(clean(value), style=style)


def styled(*parts: Any) -> Text:
    """Join pieces into one Text: strings are plain text, (value, style) pairs are styled."""
    out = Text()
    for p in parts:
        if isinstance(p, Text):
            out.append_text(p)
        elif isinstance(p, tuple):
            out.append(clean(p[0]), style=p[1])
        else:
            out.append(clean(p))
    return out


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 result`, `2 results`; translated when the language is Chinese (no plural forms there)."""
    from canteen_ops.i18n import ngettext

    return ngettext("{n} " + word, "{n} " + (many or word + "s"), n).format(n=n)


class SafeConsole(Console):
    """A rich Console that treats every plain string as text: no markup, no emoji codes, no controls."""

    def render_str(self, text: str, **kwargs: Any) -> Text:  # type: ignore[override]
        kwargs["markup"] = False
        kwargs["emoji"] = False
        kwargs.setdefault("highlight", False)
        return super().render_str(clean(text), **kwargs)

    def on_broken_pipe(self) -> None:
        """rich would exit 1 (warn, to a monitoring system); the CLI maps a closed pipe to its own status."""
        self.quiet = True
        raise BrokenPipeError


def make_console(*, stderr: bool = False, quiet: bool = False) -> SafeConsole:
    """The console for a command's output. Width: COLUMNS, else the real terminal, else 80 (rich's rule)."""
    return SafeConsole(stderr=stderr, quiet=quiet, markup=False, emoji=False, highlight=False)


def echo(message: Any = "", *, err: bool = False, nl: bool = True) -> None:
    """Print a plain line without rich (error messages, cron output): controls are made visible."""
    stream = sys.stderr if err else sys.stdout
    stream.write(clean(message) + ("\n" if nl else ""))
    stream.flush()


def echo_data(data: str) -> None:
    """Write exported data (CSV, JSON Lines, a report) to stdout: as is into a pipe or file; on a terminal,
    control characters are made visible so a hostile value cannot act on it."""
    if sys.stdout.isatty():
        data = clean(data)
    sys.stdout.write(data)


# --- tables -------------------------------------------------------------------------------------------

ID, CODE, TEXT, NUM, TIME = "id", "code", "text", "num", "time"
_MIN_TEXT = 6  # a cut free-text column keeps at least this many cells
_MIN_MAIN = 24  # what the main text column should keep before times are shortened and optional columns go
_SIDE = 8  # what other free text keeps next to a main column when space is short


@dataclass
class Column:
    header: str
    kind: str = TEXT  # ID: never cut or wrapped; CODE: a status, check name, kind, level or state: never cut; TEXT: cut with … to fit; NUM: right-aligned, never cut;
    # TIME: a local time YYYY-MM-DD HH:MM:SS, shown without seconds, then without the year, when space is short
    style: str = ""
    optional: bool = False  # dropped (rightmost first) when the ids of a row would not fit otherwise
    main: bool = False  # the free text that matters most (a summary): other text gives way to it first


def table(title: Any, columns: Sequence[Column | tuple[str, str] | str], rows: Iterable[Sequence[Any]], *,
          console: Console | None = None, keep_empty: bool = False, empty: Any = None,
          row_styles: Sequence[str | None] = (),
          **table_kw: Any) -> "RenderableType":
    """A rich Table that fits `console`'s width, under its title (a line of its own: a narrow table does not
    squeeze its title).

    Cells are values (shown with `show()`, cleaned) or Text (already safe). Columns with no value in any row
    are dropped unless `keep_empty`. No rows: the title alone (or `empty`), one plain line. Header strings are
    translated. Ids, codes, times and numbers keep their full width and whole headers; free text shares what
    is left and is cut with …. When the main text would get less than _MIN_MAIN cells (or the ids would not
    fit), times lose their seconds, then their year, then optional columns go; headers are cut only when the
    table still does not fit.
    """
    from rich import box as _box
    from rich.cells import cell_len
    from rich.table import Table

    from canteen_ops.i18n import _

    cols = [c if isinstance(c, Column) else Column(*c) if isinstance(c, tuple) else Column(c) for c in columns]
    cells: list[list[Text]] = []
    for row in rows:
        cells.append([v if isinstance(v, Text) else Text(clean(v, oneline=True)) for v in row])
    if not cells and (empty is not None or title is not None):  # an empty list: one plain line, no header row
        shown = empty if empty is not None else title
        return shown if isinstance(shown, Text) else text(shown)
    keep = [i for i in range(len(cols)) if keep_empty or not cells or any(r[i].plain for r in cells)]

    table_kw.setdefault("box", _box.SIMPLE_HEAD)
    table_kw.setdefault("show_edge", False)
    table_kw.setdefault("pad_edge", False)
    table_kw.setdefault("padding", (0, 1, 0, 0))
    width = console.width if console is not None else _default_width()
    values = [max([0] + [_widest(r[i]) for r in cells]) for i in range(len(cols))]
    heads = [cell_len(_(c.header)) for c in cols]

    # Short free text (who did it) under a header longer than a cut column keeps is sized like a code, so its
    # header stays whole ("requested by", not "request…").
    cols = [Column(c.header, CODE, c.style, c.optional) if c.kind == TEXT and not c.main and cells
            and values[i] <= _SIDE and heads[i] > _MIN_TEXT else c for i, c in enumerate(cols)]

    def need(idx: list[int], full_heads: bool, main_min: int = _MIN_MAIN) -> int:
        total = _chrome(table_kw, len(idx))
        for i in idx:
            w = max(values[i], heads[i] if full_heads else min(heads[i], max(values[i], 1)))
            total += w if cols[i].kind != TEXT else min(w, main_min if cols[i].main else _MIN_TEXT)
        return total

    # Headers of ids, codes, times and numbers stay whole: times are shortened and optional columns go first,
    # then the main text gives up its preferred width; only a table that still does not fit cuts headers.
    full_heads = True
    times = [i for i in keep if cols[i].kind == TIME]
    for start, end in ((0, 16), (5, 16)):  # 2026-12-05 08:00:00 → 2026-12-05 08:00 → 12-05 08:00
        if not times or need(keep, full_heads) <= width:
            break
        for r in cells:
            for i in times:
                if len(r[i].plain) >= 16 and r[i].plain[4] == "-":
                    r[i] = Text(r[i].plain[start:end], style=r[i].style)
        for i in times:
            values[i] = max([0] + [_widest(r[i]) for r in cells])
    while need(keep, full_heads) > width and any(cols[i].optional for i in keep):
        keep.remove(max(i for i in keep if cols[i].optional))
    full_heads = need(keep, True, _MIN_TEXT) <= width
    natural = [max(values[i], heads[i]) if full_heads or cols[i].kind == TEXT else max(values[i], 1)
               for i in keep]
    cols = [cols[i] for i in keep]
    cells = [[r[i] for i in keep] for r in cells]
    widths = _fit(natural, cols, width - _chrome(table_kw, len(cols)))
    t = Table(**table_kw)
    for c, w in zip(cols, widths):
        t.add_column(Text(_(c.header), no_wrap=True, overflow="ellipsis"), width=w, no_wrap=True,
                     overflow="ellipsis", justify="right" if c.kind == NUM else "left", style=c.style or None)
    for i, r in enumerate(cells):
        t.add_row(*r, style=row_styles[i] if i < len(row_styles) else None)
    if title is None:
        return t
    from rich.console import Group

    return Group(title if isinstance(title, Text) else text(title, "bold"), t)


def _widest(t: Text) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in t.plain.split("\n")), default=0)


def _default_width() -> int:
    return make_console().width


_CHROME: dict[tuple, int] = {}


def _chrome(table_kw: dict, n: int) -> int:
    """Cells a table with these settings spends on borders and padding for n columns (measured once)."""
    if not n:
        return 0
    key = (repr(table_kw.get("box")), table_kw.get("show_edge"), table_kw.get("pad_edge"),
           repr(table_kw.get("padding")), n)
    if key not in _CHROME:
        import io

        from rich.table import Table

        kw = {k: table_kw[k] for k in ("box", "show_edge", "pad_edge", "padding") if k in table_kw}
        probe = Table(show_header=False, **kw)
        for _i in range(n):
            probe.add_column(width=1, no_wrap=True)
        probe.add_row(*("x" * n))
        c = Console(file=io.StringIO(), width=1000)
        c.print(probe)
        _CHROME[key] = max(len(line.rstrip("\n")) for line in c.file.getvalue().splitlines()) - n
    return _CHROME[key]


def _fit(natural: list[int], cols: Sequence[Column], room: int) -> list[int]:
    """Column widths within `room`: ids and numbers keep their width; free text shares what is left, the
    narrow ones keeping their natural width and the wide ones cut to an equal share (water-filling)."""
    if sum(natural) <= room:
        return natural
    fixed = sum(w for w, c in zip(natural, cols) if c.kind != TEXT)
    free = [i for i, c in enumerate(cols) if c.kind == TEXT]
    if not free:
        return natural
    main = [i for i in free if cols[i].main]
    if main and len(main) < len(free):
        # Other free text keeps at most _SIDE cells, so the main column is readable on 80 columns.
        side = [min(natural[i], _SIDE) for i in free if not cols[i].main]
        if room - fixed - sum(side) >= _MIN_TEXT * len(main):
            widths = list(natural)
            for i in free:
                if not cols[i].main:
                    widths[i] = min(natural[i], _SIDE)
            sub = _fit([natural[i] for i in main], [Column("", TEXT)] * len(main), room - fixed - sum(side))
            for i, w in zip(main, sub):
                widths[i] = w
            return widths
    left = room - fixed
    floor = min(_MIN_TEXT, max(1, left // len(free)))  # squeezed: ids stay whole, free text gives way
    left = max(left, floor * len(free))
    widths = list(natural)
    pending = sorted(free, key=lambda i: natural[i])
    while pending:
        share = left // len(pending)
        i = pending[0]
        if natural[i] <= share:
            widths[i] = natural[i]
            left -= natural[i]
            pending.pop(0)
            continue
        for k, j in enumerate(pending):  # the rest are all wider than the share: give it to each
            widths[j] = max(floor, share + (1 if k < left - share * len(pending) else 0))
        break
    return widths


def pad(value: Any, width: int) -> str:
    """`value` padded to `width` terminal cells (a Chinese character is 2)."""
    from rich.cells import cell_len

    s = clean(value, oneline=True)
    return s + " " * max(0, width - cell_len(s))


def fields(console: Console, pairs: Sequence[tuple[str, Any]], indent: int = 2) -> None:
    """`key  value` lines: keys (translated) aligned in terminal cells, long values wrapped under themselves."""
    from canteen_ops.i18n import _

    lines(console, [(Text(_(k)), v) for k, v in pairs], indent)


def lines(console: Console, rows: Sequence[Sequence[Any]], indent: int = 2, gap: int = 2) -> None:
    """Aligned lines without a header (a timeline): every cell but the last stays whole, the last is wrapped
    under itself, so no line is wider than the console and nothing wraps back to the margin."""
    from rich.padding import Padding
    from rich.table import Table

    if not rows:
        return
    grid = Table.grid(padding=(0, gap))
    for _i in range(len(rows[0]) - 1):
        grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for row in rows:
        grid.add_row(*(v if isinstance(v, Text) else Text(clean(v, oneline=True)) for v in row))
    console.print(Padding(grid, (0, 0, 0, indent)))


def first_of(ids: Any) -> str:
    """A device list in a table cell: the first id whole, and how many more (`s002-nvr +2`)."""
    if isinstance(ids, (list, tuple)):
        return "" if not ids else ids[0] if len(ids) == 1 else f"{ids[0]} +{len(ids) - 1}"
    return show(ids)



# --- statuses -----------------------------------------------------------------------------------------

STATUS_STYLE = {"crit": "bold red", "warn": "yellow", "unknown": "magenta", "ok": "green", "n/a": "dim"}


def status_cell(value: Any, *, upper: bool = False, styles: dict[str, str] | None = None) -> Text:
    """A status as a table cell: our status words translated and coloured, anything else shown as text."""
    from canteen_ops.i18n import _, status_word

    s = show(value)
    style = (styles or STATUS_STYLE).get(s, "")
    if s in STATUS_STYLE:
        return Text(status_word(s, upper=upper), style=style)
    if "/" in s:  # an incident's or change's level/state (`major/open`)
        return text("/".join(_(p) for p in s.split("/")), style)
    return text(_(s), style)  # our other state words (failed, current, inspection…) are in the catalog too
