"""Root of the CLI: global options, command groups, and the one place exceptions become exit codes."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from canteen_ops import __version__, context
from canteen_ops.context import Env


class LazyGroup(TyperGroup):
    """The root group: a command's Click object is built only when it is invoked, so a run pays for one command,
    not all of them (building reads every signature and annotation: ~70 ms for all twelve). `--help` lists each
    one from its module's HELP (a group) or docstring (a command) without building it. Each module imports only
    typer at top level; heavy libraries are imported inside the commands that use them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(n for n in LAZY if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY:
            self.commands[cmd_name] = _build(cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in LAZY and args[0] not in self.commands:
            for name in LAZY:  # an unknown name: build all so that "Did you mean ...?" sees every command
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        with formatter.section("Commands"):
            formatter.write_dl([(n, click.Command(n, help=_help(n)).get_short_help_str(limit)) for n in names])


def _target(name: str):
    module, attr = LAZY[name]
    return getattr(importlib.import_module(module), attr)


def _help(name: str) -> str:
    target = _target(name)
    if isinstance(target, typer.Typer):
        return importlib.import_module(LAZY[name][0]).HELP
    return (target.__doc__ or "").strip()


def _build(name: str) -> click.Command:
    target = _target(name)
    if isinstance(target, typer.Typer):
        cmd = typer.main.get_group(target)  # a group even with one command, as add_typer makes it
    else:
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
        single.command(name)(target)
        cmd = typer.main.get_command(single)
    cmd.name = name
    return cmd


app = typer.Typer(
    name="canteen-ops",
    help="Field toolkit for school-canteen (明厨亮灶) video surveillance: inventory, diagnostics, backups, "
    "snapshots, firmware, incidents, changes, sync, reports and a knowledge base.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=LazyGroup,
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
    ("kb", "canteen_ops.cli.kb_cmd"),
]
# Single commands registered on the root (name, module, function).
COMMANDS: list[tuple[str, str, str]] = [
    ("check", "canteen_ops.cli.check_cmd", "check"),
    ("report", "canteen_ops.cli.report_cmd", "report"),
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
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit")] = False,
) -> None:
    from canteen_ops import paths

    context.set_debug(debug)
    ctx.obj = Env(
        inventory_path=inventory or paths.default_inventory(),
        db_path=db or paths.default_db(),
        operator=operator or paths.default_operator(),
        quiet=quiet,
    )
    ctx.call_on_close(ctx.obj.close)


# name → (module, attribute): a Typer group or a command function, imported and built only when used.
LAZY: dict[str, tuple[str, str]] = {**{name: (module, "app") for name, module in GROUPS},
                                    **{name: (module, func) for name, module, func in COMMANDS}}


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
    except Exception as exc:  # a bug: one line (the traceback with --debug), and exit 70
        if context.debug():
            import traceback

            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"internal error: {type(exc).__name__}: {first} (run with --debug for the traceback)",
              file=sys.stderr)
        return errors.EXIT_SOFTWARE
    return rv if isinstance(rv, int) else 0
