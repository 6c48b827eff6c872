"""Every command that prints a table, against the lab at COLUMNS=80: no line wider than 80 terminal cells, no id
split or cut. Also `--help` of every command at 80 columns (English and Chinese), and one metavar style."""

from __future__ import annotations

import json
import re

import pytest
from rich.cells import cell_len

WIDTH = 80
LONG = "更换镜头后复查：烹饪区摄像头画面偏暗，油烟较重，需要每周清洁一次并记录在案 " * 2


@pytest.fixture
def run80(capsys, monkeypatch):
    """Run canteen-ops in-process at COLUMNS=80 → (exit code, stdout, stderr)."""
    from canteen_ops.cli.app import run
    from canteen_ops.drivers.base import auth_guard

    monkeypatch.setenv("COLUMNS", str(WIDTH))

    def invoke(*args):
        capsys.readouterr()
        auth_guard.reset()
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _codes() -> set[str]:
    """Statuses, check names, kinds, levels and states: codes a table never cuts (in both languages)."""
    from canteen_ops import changes, incidents, report, sla
    from canteen_ops.checks import CHECK_NAMES
    from canteen_ops.cli.log_cmd import NOTE_KINDS
    from canteen_ops.i18n import _, status_word
    from canteen_ops.inventory.model import KINDS as DEVICE_KINDS
    from canteen_ops.store.entries import KINDS as ENTRY_KINDS
    from canteen_ops.tasks.backup import STATUS as BACKUP_STATUS

    words = {*CHECK_NAMES, *NOTE_KINDS, *DEVICE_KINDS, *ENTRY_KINDS, *BACKUP_STATUS, *changes.STATES,
             *incidents.STATES, *sla.LEVELS, *report.FIRMWARE_STATES}
    statuses = ("ok", "warn", "crit", "unknown", "n/a")
    return ({_(w) for w in words} | {status_word(s) for s in statuses} | {status_word(s, upper=True) for s in statuses}
            | words | set(statuses) | {s.upper() for s in statuses})


def assert_fits(out: str, ids: set[str], expect: set[str] = frozenset(), what: str = "") -> None:
    """No line wider than WIDTH cells; every expected id whole; no token that is a strict prefix of an id
    (an id wrapped onto the next line, or cut with …); no header cut; no status, check, kind, level or state
    cut with …."""
    assert out.strip(), what
    lines = out.splitlines()
    codes = _codes()
    for n, line in enumerate(lines):
        assert cell_len(line) <= WIDTH, f"{what}: {cell_len(line)} cells: {line!r}"
        if n + 1 < len(lines) and _is_rule(lines[n + 1]):
            assert "…" not in line, f"{what}: a header is cut: {line!r}\n{out}"
        for piece in re.findall(r"(?:^|\s\s)(\S+)…", line):  # a whole cell cut (free text has single spaces)
            cut = sorted(c for c in codes if c.startswith(piece) and c != piece)
            assert not cut, f"{what}: {piece!r}… is a cut {cut[0]!r}: {line!r}\n{out}"
    for i in expect:
        assert i in out, f"{what}: {i} missing or split\n{out}"
    for token in re.split(r"[\s│┃|,()]+", out):
        token = token.rstrip("…")
        if len(token) >= 4 and token not in ids:
            clipped = [i for i in ids if i.startswith(token) and i != token]
            assert not clipped, f"{what}: {token!r} is a piece of {clipped[0]!r}\n{out}"


def _is_rule(line: str) -> bool:
    """The line rich draws under a table's header row."""
    return bool(line.strip()) and set(line.strip()) <= set("─━ ╸╺")


def assert_one_line(out: str, what: str) -> None:
    """An empty list: one plain line, no header row."""
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and not any(map(_is_rule, out.splitlines())), f"{what}: {out!r}"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_table_fits_80_columns_and_keeps_ids_whole(lab, lab_env, lab_faults, run80, tmp_path, monkeypatch,
                                                          lang):
    if lang == "zh":
        monkeypatch.setenv("LANG", "zh_CN.UTF-8")
        for var in ("LC_ALL", "LC_MESSAGES"):
            monkeypatch.delenv(var, raising=False)
    for argv in (("incident", "list"), ("change", "list"), ("log", "list"), ("backup", "list", "--history")):
        code, out, _err = run80(*argv)
        assert code == 0, (argv, out, _err)
        assert_one_line(out, " ".join(argv))
    devices = set(lab.devices)
    schools = {d.split("-")[0] for d in devices}
    ids = devices | schools

    def show(*argv, expect=frozenset(), codes=(0,)):
        code, out, err = run80(*argv)
        assert code in codes, (argv, code, out, err)
        assert_fits(out, ids, set(expect), " ".join(map(str, argv)))
        return out

    show("inventory", "list", expect=devices)
    show("check", "--all", "--skip", "stream,picture", expect=devices, codes=(0, 1, 2, 3))
    show("backup", "run", "-d", "s001-*", codes=(0, 1))
    show("backup", "list", expect=devices, codes=(0,))
    show("backup", "list", "--history", expect={"s001-nvr"})
    lab_faults.setting("s001-cam01", "name", "烹饪区 " + LONG[:30])
    show("snapshot", "take", "-d", "s001-cam01", codes=(0, 1, 2))
    lab_faults.setting("s001-cam01", "channel.1.width", "1280")
    show("snapshot", "take", "-d", "s001-cam01", codes=(0, 1, 2))
    show("snapshot", "show", "s001-cam01")
    show("snapshot", "diff", "s001-cam01", codes=(1,))
    show("snapshot", "diff", "--since", "1h", codes=(0, 1))
    show("firmware", "check", "--catalog", lab.directory / "firmware-catalog.yaml", expect=devices,
         codes=(0, 1, 2, 3))
    code, out, _err = run80("incident", "open", "--level", "major", "--title", LONG, "-d", "s002-nvr",
                            "-d", "s002-cam01", "-d", "s002-cam02", "--json")
    assert code == 0
    inc = json.loads(out)["id"]
    ids.add(inc[:8])
    show("incident", "list", expect={inc[:8], "s002"})
    show("incident", "assign", inc[:8], "王师傅")
    show("incident", "list", "--device", "s002-*", expect={inc[:8]})
    code, _out, _err = run80("incident", "note", inc[:8], LONG)
    assert code == 0
    out = show("incident", "show", inc[:8])
    assert_no_line_wraps_to_the_margin(out, "incident show")
    show("status", "--all", expect={inc[:8], "s002-nvr"}, codes=(0, 1, 2, 3))
    code, out, _err = run80("change", "request", "--title", LONG, "-d", "s003-nvr", "-d", "s003-cam01", "--json")
    assert code == 0
    ch = json.loads(out)["id"]
    ids.add(ch[:8])
    show("change", "list", expect={ch[:8]})
    show("change", "show", ch[:8])
    code, out, _err = run80("log", "add", LONG, "--device", "s003-cam02")
    assert code == 0
    code, out, _err = run80("log", "list", "--limit", "40", "--json")
    entries = json.loads(out)
    ids |= {e["id"][:8] for e in entries}
    show("log", "list", "--limit", "40", expect={e["id"][:8] for e in entries})
    show("sync", "status")
    show("playbook", "list", expect={"daily-inspection"})


def assert_no_line_wraps_to_the_margin(out: str, what: str) -> None:
    """Indented output (a timeline, a playbook's step output) wraps under itself: after its first indented line,
    no line starts at the margin unless it is a heading the command prints there."""
    lines = out.splitlines()
    for prev, line in zip(lines, lines[1:]):
        if prev.startswith("    ") and line.strip() and not line.startswith(" "):
            assert line.startswith(("▶", "playbook", "incident", "演练", "drill")), f"{what}: {line!r}\n{out}"


def test_playbook_output_fits_80_columns(lab, lab_env, run80, tmp_path):
    """A playbook's step output and summaries stay indented under the step and within 80 cells, even when a
    step fails with a long error (sync without an upstream)."""
    code, out, err = run80("playbook", "run", "nightly-backup", "--non-interactive")
    assert code in (0, 1, 2, 3), (out, err)
    assert "▶ 1." in out, out
    for line in out.splitlines():
        assert cell_len(line) <= WIDTH, f"{cell_len(line)} cells: {line!r}"
    assert_no_line_wraps_to_the_margin(out, "playbook run nightly-backup")


def _commands():
    import typer

    from canteen_ops.cli.app import app

    root = typer.main.get_command(app)
    ctx_cls = type(root).context_class

    def walk(cmd, path):
        yield path, cmd
        if hasattr(cmd, "list_commands"):
            ctx = ctx_cls(cmd)
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), [*path, name])

    return list(walk(root, []))


@pytest.mark.parametrize("lang", ["C", "zh_CN.UTF-8"])
def test_every_help_fits_80_columns(run80, monkeypatch, lang):
    """In English and in Chinese (a Chinese character takes two cells)."""
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", lang)
    for path, _cmd in _commands():
        code, out, _err = run80(*path, "--help")
        assert code == 0, path
        assert ("选项：" in out) == (lang != "C"), (path, out)  # (the page is in the language under test)
        for line in out.splitlines():
            assert cell_len(line) <= WIDTH, f"canteen-ops {' '.join(path)} --help: {line!r}"


METAVAR = re.compile(r"^\[?[A-Z][A-Z_]*(\[?=[A-Z_]+\]?)?\]?(\.\.\.)?$")


def test_every_value_is_named_in_one_metavar_style():
    for path, cmd in _commands():
        for p in cmd.params:
            if getattr(p, "is_flag", False) or p.name == "help":
                continue
            assert p.metavar and METAVAR.match(p.metavar), (path, p.opts, p.metavar)


def test_chinese_text_keeps_the_columns_aligned(run80):
    """Column starts are the same in every row, measured in terminal cells (区域 is 4 cells, not 2)."""
    from tests.conftest import EXAMPLE

    code, out, _err = run80("-i", EXAMPLE, "inventory", "list", "--school", "xc-shiyan-xx")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("xc-")]
    assert len(rows) == 8
    for marker in ("xc-nvr-01/", "DS-", "10.12.1."):
        starts = {cell_len(line[:line.index(marker)]) for line in rows if marker in line}
        assert len(starts) == 1, (marker, out)
    assert len({cell_len(line) for line in rows}) == 1


def test_help_shows_the_metavar_and_no_python_type(run80):
    """Typer 0.29 appends the Python type to a positional argument's metavar (`ID <str>`): noise for a technician."""
    for path, cmd in _commands():
        if not any(getattr(p, "param_type_name", "") == "argument" for p in cmd.params):
            continue
        code, out, _err = run80(*path, "--help")
        assert code == 0 and not re.search(r"<(str|int|float|path|list\[\w+\])>", out), (path, out)
        assert "{" not in out.splitlines()[0], (path, out)  # `Usage: … ack [OPTIONS] ID`, not `{ID}`


def test_every_positional_argument_shows_its_help(run80):
    """Typer < 0.26 sets an argument's help before Click ≥ 8.5 (which added `help` to Argument) resets it to None:
    `inventory set --help` then showed `KEY=VALUE...  [required]` without saying what to write."""
    for path, cmd in _commands():
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "argument" and not getattr(p, "hidden", False):
                code, out, _err = run80(*path, "--help")
                assert code == 0 and p.help and " ".join(p.help.split()[:3]) in " ".join(out.split()), (path, p.name)


def test_codes_and_their_headers_stay_whole_and_free_text_gives_way():
    """A unit view of the rules the lab test checks: a CODE column is never cut, headers of ids, codes and
    times stay whole, the free text is cut instead; short free text under a long header keeps the header."""
    import io

    from rich.console import Console

    from canteen_ops.cli.render import CODE, ID, TIME, Column, table

    console = Console(file=io.StringIO(), width=WIDTH)
    cols = [Column("when (local)", TIME), Column("device", ID), Column("status", CODE),
            Column("requested by"), Column("reason", main=True)]
    rows = [("2026-12-05 03:59:00", "s001-cam07", "unsupported", "王师傅", LONG),
            ("2026-12-05 04:00:00", "s001-nvr", "ok", "tester", "fine")]
    console.print(table("2 records", cols, rows, console=console))
    out = console.file.getvalue()
    head = out.splitlines()[1]
    assert all(h in head for h in ("when (local)", "device", "status", "requested by", "reason")), out
    assert "unsupported" in out and "王师傅" in out and "…" in out, out
    assert max(cell_len(line) for line in out.splitlines()) <= WIDTH, out


def test_an_empty_list_is_one_line_without_a_header():
    import io

    from rich.console import Console

    from canteen_ops.cli.render import ID, Column, table

    console = Console(file=io.StringIO(), width=WIDTH)
    console.print(table("0 incidents", [Column("id", ID), Column("title")], [], console=console))
    assert console.file.getvalue() == "0 incidents\n"
    console = Console(file=io.StringIO(), width=WIDTH)
    console.print(table("0 incidents", [Column("id", ID)], [], console=console, empty="no incidents"))
    assert console.file.getvalue() == "no incidents\n"


def test_help_wrapping_keeps_punctuation_with_its_word():
    """A help line never starts with closing punctuation (，：) or ends with an opening one, at any width; nothing
    is lost or added but the breaks."""
    from canteen_ops.cli.helpfmt import NO_BREAK_AFTER, NO_BREAK_BEFORE, cells, wrap

    text = "启动时预先编码视频画面 (每台机器一次；有缓存) [默认：warm]。例如 'xc-cam-*'，或 (演练)."
    for width in range(12, 60):  # (12: the widest unbreakable piece, 'xc-cam-*'，)
        lines = wrap(text, width)
        assert all(cells(line) <= width for line in lines), (width, lines)
        assert all(line[0] not in NO_BREAK_BEFORE for line in lines), (width, lines)
        assert all(line[-1] not in NO_BREAK_AFTER for line in lines), (width, lines)
        assert "".join("".join(lines).split()) == "".join(text.split()), (width, lines)
