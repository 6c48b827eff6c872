"""`--help` in the technician's language that fits the terminal: wrapping measured in terminal cells (中 is 2).

Click's formatter wraps help by `len()`, so a line with Chinese ran past 80 columns. This formatter keeps Click's
layout and replaces only the wrapping. `HelpInLanguage` looks each help text up in the catalog when a page is
rendered. Standard library and Click only: `--help` must stay fast.
"""

from __future__ import annotations

import inspect
import unicodedata

import click
from click.formatting import HelpFormatter, iter_rows, measure_table
from click.utils import make_default_short_help

from canteen_ops.i18n import _


def cells(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _wide(c: str) -> bool:
    return unicodedata.east_asian_width(c) in "WF"


NO_BREAK_BEFORE = set("，。、；：？！）》」』】)]},.;:!?")  # no line starts with closing punctuation (默认\n：warm)
NO_BREAK_AFTER = set("（《「『【([{")  # and none ends with an opening one


def _units(text: str) -> list[tuple[bool, str]]:
    """(space before, text) of what a line may not split: a word between spaces, or one Chinese character with
    the punctuation that must stay with it."""
    units: list[tuple[bool, str]] = []
    space = False
    for c in text:
        if c.isspace():
            space = True
            continue
        last = units[-1][1] if units else ""
        joins = last and not space and (c in NO_BREAK_BEFORE or last[-1] in NO_BREAK_AFTER
                                        or not (_wide(c) or _wide(last[-1])))
        if joins:
            units[-1] = (units[-1][0], last + c)
        else:
            units.append((space, c))
        space = False
    return units


def wrap(text: str, width: int) -> list[str]:
    """Greedy wrap of one paragraph to `width` cells: breaks at spaces, and next to Chinese characters (never
    before closing or after opening punctuation); a word wider than a line is cut."""
    lines: list[str] = []
    line = ""
    units = _units(text)
    for i, (space, unit) in enumerate(units):
        joined = f"{line} {unit}" if line and space else line + unit
        # a word is followed by its space (the layout English help always had); after 中 a line may end anyway
        room = width - (i + 1 < len(units) and units[i + 1][0] and not _wide(unit[-1]))
        if cells(joined) <= room:
            line = joined
            continue
        if line:
            lines.append(line)
        while cells(unit) > width:  # (a long URL or path)
            cut = 0
            while cells(unit[:cut + 1]) <= width:
                cut += 1
            lines.append(unit[:cut])
            unit = unit[cut:]
        line = unit
    if line:
        lines.append(line)
    return lines


def wrap_paragraphs(text: str, width: int, indent: str = "") -> list[str]:
    out: list[str] = []
    for i, para in enumerate(p for p in text.split("\n\n")):
        if i:
            out.append("")
        if para.lstrip().startswith("\b"):  # Click's "do not rewrap" marker
            out += [indent + ln for ln in para.lstrip()[1:].strip("\n").splitlines()]
        else:
            out += [indent + ln for ln in wrap(para, max(width - len(indent), 10))]
    return out


class CellHelpFormatter(HelpFormatter):
    def write_heading(self, heading: str) -> None:
        colon = "：" if any(_wide(c) for c in heading) else ":"  # 选项： (Chinese punctuation after Chinese)
        self.write(f"{'':>{self.current_indent}}{heading}{colon}\n")

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        for line in wrap_paragraphs(text, self.width, indent):
            self.write(line + "\n" if line else "\n")

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        widths = measure_table(rows)
        first_col = min(widths[0], col_max) + col_spacing
        for first, second in iter_rows(rows, len(widths)):
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if cells(first) <= first_col - col_spacing:
                self.write(" " * (first_col - cells(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            text_width = max(self.width - first_col - self.current_indent, 10)
            lines = wrap_paragraphs(second, text_width) or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write(f"{'':>{first_col + self.current_indent}}{line}\n" if line else "\n")


# --- help in the technician's language ---------------------------------------------------------------------------
def catalog_key(text: str) -> str:
    """The catalog's key for a help text or docstring: Click's cleaned text up to a form feed, each paragraph's
    whitespace made single (a docstring can be reflowed without losing its translation)."""
    text = inspect.cleandoc(text).partition("\f")[0]
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def help_text(text: str | None) -> str:
    """A command's description or a parameter's help in the current language; English exactly as written."""
    if not text:
        return ""
    key = catalog_key(text)
    translated = _(key)
    return inspect.cleandoc(text).partition("\f")[0] if translated == key else translated


def short_help(text: str | None, limit: int) -> str:
    """A command's line in its group's list: Click's (first sentence, cut with "...") in English; the first
    sentence (up to 。) cut at `limit` terminal cells with … in Chinese."""
    if not text:
        return ""
    translated = help_text(text)
    if translated == inspect.cleandoc(text).partition("\f")[0]:
        return make_default_short_help(translated, limit)
    first = " ".join(translated.split("\n\n")[0].split()).split("。")[0]
    if cells(first) <= limit:
        return first
    while cells(first) > limit - 1:
        first = first[:-1]
    return first.rstrip() + "…"


class HelpInLanguage:
    """Mixin for Typer's Click command and group classes: the help page speaks the technician's language. Texts are
    translated when the page is rendered (the language may be set by `--lang` after the command was built); the
    catalog key is the English text (`catalog_key`). Click's own words ("Usage:", "Options", "[default: …]") come
    from the same catalog through gettext (i18n.speak_to_libraries)."""

    def format_help_text(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        if self.deprecated:  # a deprecated command keeps Click's rendering (English, with its label)
            return super().format_help_text(ctx, formatter)
        text = help_text(self.help)
        if text:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(text)

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.deprecated:
            return super().get_short_help_str(limit)
        return short_help(self.short_help or self.help, limit)

    def format_options(self, ctx: click.Context, formatter: HelpFormatter) -> None:
        # Typer's layout (Arguments, then Options, then a group's Commands), with each param's own help translated;
        # what Click appends after it ("  [default: 50; required]") is already in the language.
        rows: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or param.param_type_name not in rows:
                continue
            name, text = record
            if param.help and text.startswith(param.help):
                text = help_text(param.help) + text[len(param.help):]
            rows[param.param_type_name].append((name, text))
        for kind, title in (("argument", "Arguments"), ("option", "Options")):
            if rows[kind]:
                with formatter.section(_(title)):
                    formatter.write_dl(rows[kind])
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)
