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
# Not heavy in general, but nothing in these paths needs them: pydantic (newer Typers coerce options through it:
# ~150 ms; pyproject pins a Typer on Click's own types), rich (only for tables), yaml (only to read the inventory).
HELP_ALSO_ABSENT = ("pydantic", "rich", "yaml")
# The top-level packages loaded, as Python source (a None entry in sys.modules is not a loaded module).
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
    (["log", "list", "--limit", "many"], "Invalid value for '--limit': 'many' is not a valid integer"),
    (["log", "list", "--limit"], "Option '--limit' requires an argument."),
    (["check", "--workers", "0"], "Invalid value for '--workers': 0 is not in the range 1<=x<=1024."),
    (["check", "--deadline", "0.05"], "Invalid value for '--deadline': 0.05 is not in the range 0.1<=x<=86400.0."),
    (["check", "--deadline", "soon"], "Invalid value for '--deadline': 'soon' is not a valid float"),
])
def test_option_type_errors_are_usage_errors(cli, args, message):
    r = cli(*args)
    assert r.code == 64
    assert message in r.err


def test_every_registered_group_builds_as_a_group_with_its_help():
    # A Typer with one command would collapse into a bare command ("firmware check" → "firmware"); a group
    # registered in GROUPS must stay a group, as add_typer made it. Its HELP is what the root's --help lists.
    import importlib

    from canteen_ops.cli import app as app_module

    for name, module in app_module.GROUPS:
        cmd = app_module._build(name)
        assert hasattr(cmd, "commands") and cmd.commands, name
        assert cmd.name == name and cmd.help == importlib.import_module(module).HELP
    for name, _module, _func in app_module.COMMANDS:
        cmd = app_module._build(name)
        assert cmd.name == name and not hasattr(cmd, "commands")
