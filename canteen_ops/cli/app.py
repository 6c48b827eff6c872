"""Root of the CLI: global options, command groups, and the one place exceptions become exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops import __version__
from canteen_ops.cli import lazy
from canteen_ops.context import Env

app = typer.Typer(
    name="canteen-ops",
    help="Field toolkit for school-canteen (明厨亮灶) video surveillance: inventory, diagnostics, backups, "
    "snapshots, firmware, incidents, changes, sync and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=lazy.LazyGroup,
)

# (command group name, module with a `app` Typer). Each module imports only typer at top level, so
# `--help` stays fast; heavy libraries are imported inside the commands that use them.
GROUPS = [
    ("inventory", "canteen_ops.cli.inventory_cmd"),
    ("log", "canteen_ops.cli.log_cmd"),
    ("incident", "canteen_ops.cli.incident_cmd"),
    ("change", "canteen_ops.cli.change_cmd"),
    ("playbook", "canteen_ops.cli.playbook_cmd"),
    ("sync", "canteen_ops.cli.sync_cmd"),
    ("backup", "canteen_ops.cli.backup_cmd"),
    ("firmware", "canteen_ops.cli.firmware_cmd"),
    ("lab", "canteen_ops.cli.lab_cmd"),
    ("snapshot", "canteen_ops.cli.snapshot_cmd"),
]
# Single commands registered on the root (name, module, function).
COMMANDS: list[tuple[str, str, str]] = [
    ("check", "canteen_ops.cli.check_cmd", "check"),
    ("report", "canteen_ops.cli.report_cmd", "report"),
    ("status", "canteen_ops.cli.status_cmd", "status"),
    ("watch", "canteen_ops.cli.watch_cmd", "watch"),
    ("oncall", "canteen_ops.cli.oncall_cmd", "oncall"),
]


def _version(value: bool) -> None:
    if value:
        print(f"canteen-ops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    inventory: Annotated[Optional[Path], typer.Option(
        "--inventory", "-i", envvar="CANTEEN_OPS_INVENTORY", metavar="FILE", help="Inventory YAML [default: ./inventory.yaml]")] = None,
    db: Annotated[Optional[Path], typer.Option(
        "--db", envvar="CANTEEN_OPS_DB", metavar="FILE", help="Maintenance log (SQLite) [default: in the user data directory]")] = None,
    operator: Annotated[Optional[str], typer.Option(
        "--operator", envvar="CANTEEN_OPS_OPERATOR", metavar="NAME", help="Who is acting [default: the OS user]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems (for cron)")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit")] = False,
) -> None:
    from canteen_ops import paths

    ctx.obj = Env(
        inventory_path=inventory or paths.default_inventory(),
        db_path=db or paths.default_db(),
        operator=operator or paths.default_operator(),
        quiet=quiet,
    )
    ctx.call_on_close(ctx.obj.close)


# Groups and commands are imported and built only when used (cli/lazy.py), so start-up stays fast.
lazy.LAZY.update({name: (module, "app", True) for name, module in GROUPS})
lazy.LAZY.update({name: (module, func, False) for name, module, func in COMMANDS})


def main(argv: list[str] | None = None) -> None:
    """Console entry point. Commands return an exit code (or None for 0); errors map to documented codes."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    from canteen_ops.redact import RedactingStream

    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(out), RedactingStream(err)
    try:
        return _run(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _run(argv: list[str] | None) -> int:
    try:  # typer ≥ 0.29 vendors click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        from click import exceptions as cx

    from canteen_ops import errors

    try:
        rv = app(args=argv, prog_name="canteen-ops", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except cx.UsageError as exc:
        exc.show()
        return 0 if type(exc).__name__ == "NoArgsIsHelpError" else errors.EXIT_USAGE
    except cx.ClickException as exc:
        exc.show()
        return errors.EXIT_USAGE
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    except errors.InvalidFile as exc:
        for p in exc.problems:
            print(f"error: {p}", file=sys.stderr)
        n = len(exc.problems)
        print(f"{n} problem{'s' if n != 1 else ''} found; nothing was run", file=sys.stderr)
        return exc.exit_code
    except errors.CanteenOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return rv if isinstance(rv, int) else 0
