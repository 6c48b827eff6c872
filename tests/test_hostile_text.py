"""Text from outside (devices, the log, the inventory) is printed as text: rich markup, ANSI CSI/OSC escapes,
other control characters and bidi overrides never act on the terminal and never crash a table."""

from __future__ import annotations

import io
import json

import pytest

from canteen_ops.cli import render
from tests.conftest import EXAMPLE

# Markup that would crash rich ("[/]" closes nothing), styles, emoji codes, CSI (colour, clear screen),
# OSC 8 (a hyperlink) and OSC 0 (window title), a C1 CSI, a bell, a backspace and a right-to-left override.
HOSTILE = ("换硬盘 [/dev/sdb] [/] [bold]B[/bold] :smile: \x1b[31mred\x1b[0m \x1b[2J "
           "\x1b]8;;http://evil.example\x07link\x1b]8;;\x07 \x1b]0;title\x07 \x9b2J \x07\x08 \u202eevil\u202c")
ACTING = ("\x1b", "\x07", "\x08", "\x9b", "\u202e", "\u202c")


def assert_inert(out: str) -> None:
    for ch in ACTING:
        assert ch not in out, (ch, out)
    for visible in ("[/dev/sdb] [/]", "[bold]B[/bold]", ":smile:", "␛[31mred", "␛]8;;http://evil.example␇link",
                    "\\x9b2J", "\\u202eevil"):
        assert visible in out, (visible, out)


def test_clean_makes_every_control_visible_in_linear_time():
    assert render.clean("a\x1b[1mb") == "a␛[1mb"
    assert render.clean("\x00\x7f\x85\u2066") == "␀␡\\x85\\u2066"
    assert render.clean("line\nnext\tx") == "line\nnext␉x"
    assert render.clean("line\nnext\tx", oneline=True) == "line␊next x"
    assert render.clean("中文 ok") == "中文 ok"
    big = "\x1b[" * 500_000  # 1 MB: one str.translate
    assert render.clean(big).count("␛") == 500_000


def test_console_prints_hostile_text_verbatim():
    buf = io.StringIO()
    console = render.make_console()
    console.file = buf
    console.print(HOSTILE)
    console.print(render.styled(("bold", "bold"), HOSTILE))
    console.print(render.table(HOSTILE, ["device", "note"], [("s001-cam01", HOSTILE)], console=console))
    assert_inert(buf.getvalue())


def test_table_drops_empty_columns_and_shows_lists_as_values():
    console = render.make_console()
    console.file = io.StringIO()
    console.print(render.table("t", [render.Column("device", render.ID), "empty", "devices"],
                               [("s001-nvr", "", ["s001-cam01", "s001-cam02"]), ("s001-cam01", None, [])],
                               console=console))
    out = console.file.getvalue()
    assert "empty" not in out and "s001-cam01, s001-cam02" in out and "[" not in out


@pytest.mark.parametrize("n,word,expected", [(0, "result", "0 results"), (1, "result", "1 result"),
                                             (2, "result", "2 results"), (1, "school", "1 school"),
                                             (1, "entry", "1 entry")])
def test_plural(n, word, expected):
    assert render.plural(n, word, "entries" if word == "entry" else None) == expected


def test_log_note_is_listed_and_shown_verbatim(cli):
    r = cli("log", "add", HOSTILE)
    assert r.code == 0, r
    r = cli("log", "list")
    assert r.code == 0, r
    assert "1 entry" in r.out
    assert "换硬盘 [/dev/sdb] [/]" in r.out
    for ch in ACTING:
        assert ch not in r.out
    note = json.loads(cli("log", "list", "--json").out)[0]
    assert note["summary"] == HOSTILE  # stored as given; only the screen is protected
    r = cli("log", "show", note["id"])
    assert r.code == 0
    assert_inert(r.out)


def test_the_issue_example(cli):
    assert cli("log", "add", "换硬盘 [/dev/sdb] [/]").code == 0
    r = cli("log", "list")
    assert r.code == 0 and "换硬盘 [/dev/sdb] [/]" in r.out


def test_inventory_school_name_and_device_name(cli, tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8")
    hostile_yaml = json.dumps(HOSTILE, ensure_ascii=True)  # a YAML double-quoted string with \u escapes
    inv = tmp_path / "inventory.yaml"
    inv.write_text(text.replace("name: 西城区实验小学", f"name: {hostile_yaml}", 1), encoding="utf-8")
    r = cli("-i", inv, "inventory", "list")
    assert r.code == 0, r
    for ch in ACTING:
        assert ch not in r.out
    assert "[/dev/sdb] [/]" in r.out and "␛[31mred" in r.out
    r = cli("-i", inv, "inventory", "validate")
    assert r.code == 0 and "␛" not in r.err


def test_error_messages_are_cleaned(cli, monkeypatch):
    r = cli("incident", "show", "\x1b]0;pwned\x07abcdef")
    assert r.code == 66, r
    assert "\x1b" not in r.err and "\x07" not in r.err and "pwned" in r.err

    from canteen_ops import incidents
    from canteen_ops.errors import NotFound

    def find(*_a, **_k):  # an error message quoting foreign text without repr()
        raise NotFound("no record \x1b]0;pwned\x07 here")

    monkeypatch.setattr(incidents, "find_incident", find)
    r = cli("incident", "show", "abcdef")
    assert r.code == 66 and "no record ␛]0;pwned␇ here" in r.err and "\x1b" not in r.err


def test_device_text_from_the_lab(lab, lab_env, lab_faults, cli):
    """A Dahua camera reports a hostile model: the driver calls the answer garbled (unknown) and quotes it;
    the check table shows the quote as text."""
    lab_faults.setting("s002-cam01", "model", HOSTILE)
    r = cli("check", "-d", "s002-cam01", "--only", "facts", "--all")
    assert r.code in (0, 1, 2, 3), r
    for ch in ACTING:
        assert ch not in r.out
    assert "换硬盘 [/dev/sdb]" in r.out


MARKUP = "DH-[/] [bold]B[/bold] :smile: \u202eevil"


def test_device_markup_in_snapshot_and_firmware(lab, lab_env, lab_faults, cli):
    """Markup and bidi overrides in what a device reports (legal in every protocol) are shown as text."""
    lab_faults.setting("s002-cam01", "model", MARKUP)
    lab_faults.setting("s002-cam01", "name", MARKUP)
    assert cli("snapshot", "take", "-d", "s002-cam01").code in (0, 1, 2), "snapshot take"
    r = cli("snapshot", "show", "s002-cam01")
    assert r.code == 0, r
    assert "DH-[/] [bold]B[/bold] :smile: \\u202eevil" in r.out and "\u202e" not in r.out
    r = cli("firmware", "check", "-d", "s002-cam01", "--catalog", lab.directory / "firmware-catalog.yaml")
    assert r.code in (0, 1, 2, 3), r
    assert "DH-[/] [bold]B[/bold]" in r.out and "\u202e" not in r.out


def test_hikvision_xml_text(lab, lab_env, lab_faults, cli):
    """XML cannot carry control characters; markup and bidi overrides can."""
    lab_faults.setting("s001-cam01", "name", "[/] [red]x[/red] \u202eevil")
    assert cli("snapshot", "take", "-d", "s001-cam01").code in (0, 1, 2)
    r = cli("snapshot", "show", "s001-cam01")
    assert r.code == 0, r
    assert "[/] [red]x[/red] \\u202eevil" in r.out and "\u202e" not in r.out


def test_json_on_a_terminal_escapes_what_would_act_on_it(monkeypatch):
    import sys

    from canteen_ops.cli.common import json_text

    value = {"model": HOSTILE}
    assert json.loads(json_text(value)) == value  # into a pipe: as is
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    text = json_text(value)
    for ch in ACTING:
        assert ch not in text
    assert json.loads(text) == value  # still the same JSON


def test_unhandled_library_warnings_are_cleaned(capsys):
    import logging

    from canteen_ops.cli.app import run

    assert run(["--version"]) == 0
    capsys.readouterr()
    # (pytest installs its own handlers, so hand the record to the last-resort handler the CLI installed)
    record = logging.LogRecord("zeep.x", logging.WARNING, __file__, 1, "device said %s", ("\x1b]0;pwned\x07",), None)
    logging.lastResort.handle(record)
    err = capsys.readouterr().err
    assert "device said ␛]0;pwned␇" in err and "\x1b" not in err


def test_everything_prints_through_the_rendering_layer():
    """One way to print (docs/output.md): no command builds its own rich Console or Table, echoes with typer,
    or turns markup on; those bypass the cleaning of foreign text and the fitting of tables."""
    import re
    from pathlib import Path

    root = Path(render.__file__).resolve().parents[1]
    banned = re.compile(r"from rich\.table import Table|\bConsole\(|typer\.echo\(|markup=True|from rich\.markup import")
    offenders = [f"{p.relative_to(root)}:{n}: {line.strip()}"
                 for p in sorted(root.rglob("*.py")) if p.name != "render.py" and "lab" not in p.parts
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if banned.search(line)]
    assert not offenders, "print through canteen_ops/cli/render.py:\n" + "\n".join(offenders)
