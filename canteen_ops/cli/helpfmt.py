"""`--help` that fits the terminal with Chinese text: wrapping measured in terminal cells (中 is 2), not characters.

Click's formatter wraps help by `len()`, so a line with Chinese ran past 80 columns. This formatter keeps Click's
layout and replaces only the wrapping. Standard library only: `--help` must stay fast.
"""

from __future__ import annotations

import unicodedata

from click.formatting import HelpFormatter, iter_rows, measure_table


def cells(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _wide(c: str) -> bool:
    return unicodedata.east_asian_width(c) in "WF"


def wrap(text: str, width: int) -> list[str]:
    """Greedy wrap of one paragraph to `width` cells: breaks at spaces, and next to Chinese characters."""
    words = " ".join(text.split())
    lines: list[str] = []
    line, used, brk = "", 0, -1  # brk: index in `line` after which we may break
    for c in words:
        w = 2 if _wide(c) else 1
        if used + w > width and line:
            cut = brk if brk > 0 else len(line)
            head, rest = line[:cut].rstrip(), line[cut:].lstrip()
            lines.append(head)
            line, used = rest, cells(rest)
            brk = -1
            if not line and c == " ":
                continue
        if c == " ":
            brk = len(line) + 1
        elif _wide(c) and line:
            brk = len(line)  # before a Chinese character
        line += c
        used += w
        if _wide(c):
            brk = len(line)  # and after it
    if line.strip():
        lines.append(line.rstrip())
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
