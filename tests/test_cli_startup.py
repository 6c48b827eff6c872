"""Start-up stays light: heavy libraries are imported only by the commands that use them.

These are correctness tests on sys.modules in a fresh interpreter, not timings (those are in bench/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE, ROOT

HEAVY = ("zeep", "onvif", "av", "numpy", "httpx", "sqlite_utils", "lxml")
# Not heavy in general, but nothing in these paths needs them: pydantic (Typer's coercion, see cli/lazy.py),
# rich (only for tables), yaml (only to read the inventory).
HELP_ALSO_ABSENT = ("pydantic", "rich", "yaml")
# The top-level packages loaded, as Python source; a None entry in sys.modules is a module marked absent
# (canteen_ops/__init__.py: httpx._main), not one that was loaded.
LOADED = "sorted({m.split('.')[0] for m, v in sys.modules.items() if v})"


def loaded_after(tmp_path, argv: list[str], rc: int = 0) -> set[str]:
    code = (
        "import io, contextlib, json, sys\n"
        "import canteen_ops.cli.app as app\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = app.run({argv!r})\n"
        f"print(json.dumps({{'rc': rc, 'mods': {LOADED}}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CANTEEN_OPS_DB": str(tmp_path / "log.db")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["rc"] == rc, p.stderr
    return set(out["mods"])


def test_import_app_loads_nothing_heavy(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", "import sys, canteen_ops.cli.app; "
                        f"print(' '.join({LOADED}))"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    mods = set(p.stdout.split())
    assert mods.isdisjoint(HEAVY + HELP_ALSO_ABSENT), mods & set(HEAVY + HELP_ALSO_ABSENT)


@pytest.mark.parametrize("argv", [["--help"], ["inventory", "--help"], ["log", "--help"], ["--version"]])
def test_help_loads_nothing_heavy(tmp_path, argv):
    mods = loaded_after(tmp_path, argv)
    assert mods.isdisjoint(HEAVY + HELP_ALSO_ABSENT), mods & set(HEAVY + HELP_ALSO_ABSENT)


def test_inventory_list_loads_nothing_heavy(tmp_path):
    mods = loaded_after(tmp_path, ["-i", str(EXAMPLE), "inventory", "list", "--kind", "camera", "-s", "海淀区育才中学"])
    assert "yaml" in mods and "rich" in mods  # it did load and render the inventory
    assert mods.isdisjoint(HEAVY + ("pydantic",)), mods & set(HEAVY + ("pydantic",))
    assert not (tmp_path / "log.db").exists()


def test_commands_on_the_log_and_bounded_options_leave_numpy_and_pydantic_out(tmp_path):
    """Opening the log does not import sqlite_utils (it imports numpy and pandas: ~120 ms), and check's bounded
    options (--workers min 1, --deadline min 0.1) are coerced without Typer's pydantic adapters (~150 ms).
    (Creating a log uses sqlite-utils once: migration v5 sets up full-text search with it.)"""
    from canteen_ops.store.log import MaintenanceLog

    MaintenanceLog.open(tmp_path / "log.db").close()
    mods = loaded_after(tmp_path, ["log", "list", "--limit", "5"])
    assert "sqlite3" in mods and mods.isdisjoint(("sqlite_utils", "numpy", "pydantic")), mods
    mods = loaded_after(tmp_path, ["-i", str(EXAMPLE), "check", "--school", "no-such-school", "--workers", "2",
                                   "--deadline", "5"], rc=64)
    assert mods.isdisjoint(("pydantic", "numpy")), mods


def test_root_help_lists_every_group_without_building_them(cli):
    from canteen_ops.cli import app as app_module

    r = cli("--help")
    assert r.code == 0
    for name, _module in app_module.GROUPS:
        assert f"  {name} " in r.out
    assert "Read, check and list the inventory (设备台帐)." in r.out
    for name, _module, _func in app_module.COMMANDS:
        assert f"  {name} " in r.out


def test_unknown_command_suggests_lazily_registered_ones(cli):
    r = cli("invntory", "list")
    assert r.code == 64
    assert "No such command 'invntory'. Did you mean 'inventory'?" in r.err


@pytest.mark.parametrize("args, message", [
    (["log", "list", "--limit", "many"], "Invalid value for '--limit': 'many' is not a valid integer."),
    (["log", "list", "--limit"], "Option '--limit' requires an argument."),
    (["check", "--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1."),
    (["check", "--deadline", "0.05"], "Invalid value for '--deadline': 0.05 is not in the range x>=0.1."),
    (["check", "--deadline", "soon"], "Invalid value for '--deadline': 'soon' is not a valid float."),
])
def test_plain_coercion_errors_are_usage_errors(cli, args, message):
    r = cli(*args)
    assert r.code == 64
    assert message in r.err


def test_plain_coercion_values(cli, tmp_path):
    from canteen_ops.cli.lazy import BadParameter, _plain_converter
    from typer.models import OptionInfo

    info = OptionInfo()
    assert _plain_converter(int, info)(" 7 ") == 7
    assert _plain_converter(float, info)("2.5") == 2.5
    assert _plain_converter(bool, info)("yes") is True and _plain_converter(bool, info)("0") is False
    assert _plain_converter(list[str], info)(("a", "b")) == ["a", "b"]
    from pathlib import Path

    assert _plain_converter(Path, info)("x/y") == Path("x/y")
    assert _plain_converter(Path, OptionInfo(exists=True)) is None  # constrained: Typer's own coercion
    assert _plain_converter(int, OptionInfo(min=1))("3") == 3  # bounds on numbers are checked here
    assert _plain_converter(float, OptionInfo(min=0.1, max=2))(" 2 ") == 2.0
    with pytest.raises(BadParameter, match=r"^3.0 is not in the range 0.1<=x<=2.$"):
        _plain_converter(float, OptionInfo(min=0.1, max=2))(3)
    assert _plain_converter(int, OptionInfo(min=1, clamp=True)) is None  # clamping: Typer's own coercion
    assert _plain_converter(str, OptionInfo(min=1)) is None
    # and through the CLI: repeated list options and a Path option
    r = cli("-i", EXAMPLE, "inventory", "list", "--json", "--kind", "nvr", "--kind", "camera", "--vendor", "onvif")
    assert r.code == 0 and len(json.loads(r.out)) == 2


def test_every_registered_group_builds_as_a_group():
    # A Typer with one command would collapse into a bare command ("firmware check" → "firmware"); a group
    # registered in GROUPS must stay a group, as add_typer made it.
    from canteen_ops.cli import app as app_module
    from canteen_ops.cli import lazy

    for name, _module in app_module.GROUPS:
        cmd = lazy._build(name)
        assert hasattr(cmd, "commands") and cmd.commands, name
        assert cmd.name == name


def test_group_help_from_callback_docstring(monkeypatch):
    import sys
    import types

    import typer

    from canteen_ops.cli import lazy

    mod = types.ModuleType("canteen_ops_test_group")
    mod.app = typer.Typer()

    @mod.app.callback()
    def cb() -> None:
        """Described by its callback."""

    @mod.app.command()
    def only() -> None:
        """The only command."""

    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(lazy.LAZY, "cbgroup", (mod.__name__, "app", True))
    assert lazy._help("cbgroup", None) == "Described by its callback."
    assert list(lazy._build("cbgroup").commands) == ["only"]


def test_http_drivers_leave_httpx_command_line_client_out():
    """httpx imports its own CLI (click, rich, pygments) unless told it is absent (canteen_ops/__init__.py)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", "import sys, canteen_ops.drivers.http, httpx; "
                        "assert httpx.Request('GET', 'http://127.0.0.1/').url.host == '127.0.0.1'; "
                        f"print(' '.join({LOADED}))"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    mods = set(p.stdout.split())
    assert "httpx" in mods and mods.isdisjoint(("click", "rich", "pygments")), mods & {"click", "rich", "pygments"}
