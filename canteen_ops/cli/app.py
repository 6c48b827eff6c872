"""Root of the CLI: global options, command groups, and the one place exceptions become exit codes."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperCommand, TyperGroup

from canteen_ops import __version__, context
from canteen_ops.cli import helpfmt
from canteen_ops.context import Env
from canteen_ops.i18n import _

# Help is wrapped in terminal cells, so Chinese help text fits 80 columns (Click's public formatter hook).
click.Context.formatter_class = helpfmt.CellHelpFormatter


class Command(helpfmt.HelpInLanguage, TyperCommand):
    """Every command: its help page in the technician's language."""


class Group(helpfmt.HelpInLanguage, TyperGroup):
    """Every command group: its help page in the technician's language."""


class LazyGroup(helpfmt.HelpInLanguage, TyperGroup):
    """The root group: a command's Click object is built only when it is invoked, so a run pays for one command,
    not all of them (building reads every signature and annotation: ~70 ms for twelve of them). `--help` lists each
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
        with formatter.section(_("Commands")):
            formatter.write_dl([(n, helpfmt.short_help(_help(n), limit)) for n in names])


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
        # Typer's `cls=` for the group and each of its commands, given here once instead of in every module
        target.info.cls = Group
        for info in target.registered_commands:
            if info.cls in (None, TyperCommand):  # (Typer fills in its default)
                info.cls = Command
        cmd = typer.main.get_group(target)  # a group even with one command, as add_typer makes it
    else:
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
        single.command(name, cls=Command)(target)
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
    ("device", "canteen_ops.cli.device_cmd"),
    ("kb", "canteen_ops.cli.kb_cmd"),
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


def _lang(value: Optional[str]) -> Optional[str]:
    """`--lang`, taken first (eager): every later message, and a `--help` after it, is in this language."""
    from canteen_ops import i18n
    from canteen_ops.errors import UsageError

    if value is not None:
        try:
            i18n.set_language(value)
            i18n.speak_to_libraries()
        except ValueError:
            raise UsageError("--lang {lang!r}: expected en or zh", lang=value) from None
    return value


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
    force_login: Annotated[bool, typer.Option(
        "--force-login", help="Send credentials even to devices that refused our login within their lockout "
        "window (after fixing a password); by default such devices are not tried again until the window "
        "passes")] = False,
    lang: Annotated[Optional[str], typer.Option(
        "--lang", metavar="LANG", callback=_lang, is_eager=True,
        help="Language of messages: en or zh [default: from LC_ALL, LC_MESSAGES, LANG]")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of an unexpected error, and every device request and answer (heads and "
        "the start of bodies, secrets masked) on stderr")] = False,
    debug_file: Annotated[Optional[Path], typer.Option(
        "--debug-file", metavar="FILE", help="With --debug: write the device requests and answers to FILE "
        "(appended) instead of stderr")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit")] = False,
) -> None:
    from canteen_ops import paths
    from canteen_ops.errors import UsageError

    context.set_debug(debug)
    if debug:
        from canteen_ops.drivers import wirelog

        wirelog.enable(debug_file if debug_file is not None else sys.stderr)
        ctx.call_on_close(wirelog.disable)
    elif debug_file is not None:
        raise UsageError("--debug-file goes with --debug")
    ctx.obj = Env(
        inventory_path=inventory or paths.default_inventory(),
        db_path=db or paths.default_db(),
        operator=operator or paths.default_operator(),
        quiet=quiet,
        force_login=force_login,
        command=ctx.invoked_subcommand,
    )
    ctx.call_on_close(ctx.obj.close)


# name → (module, attribute): a Typer group or a command function, imported and built only when used.
LAZY: dict[str, tuple[str, str]] = {**{name: (module, "app") for name, module in GROUPS},
                                    **{name: (module, func) for name, module, func in COMMANDS}}


def main(argv: list[str] | None = None) -> None:
    """Console entry point. Commands return an exit code (or None for 0); errors map to documented codes."""
    sys.exit(run(argv))


class _LastResort(logging.Handler):
    """Where a library's warning goes when nothing else handles it: stderr, with controls made visible (a
    warning may quote what a device sent)."""

    def emit(self, record: logging.LogRecord) -> None:
        from canteen_ops.cli.common import echo

        try:
            echo(self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never break the command
            self.handleError(record)


def run(argv: list[str] | None = None) -> int:
    from canteen_ops.redact import RedactingStream

    from canteen_ops import i18n

    i18n.set_language(None)  # each run reads the environment afresh (tests run many commands in one process)
    language_before = os.environ.get("LANGUAGE")
    i18n.speak_to_libraries()
    logging.lastResort = _LastResort(logging.WARNING)
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(out), RedactingStream(err)
    try:
        return _run(argv)
    finally:
        sys.stdout, sys.stderr = out, err
        if language_before is None:
            os.environ.pop("LANGUAGE", None)
        else:
            os.environ["LANGUAGE"] = language_before


def _run(argv: list[str] | None) -> int:
    from click import exceptions as cx

    from canteen_ops import errors
    from canteen_ops.cli.common import echo  # (rich is imported only when something is printed)

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
        echo(_("interrupted"), err=True)
        return errors.EXIT_INTERRUPTED
    except KeyboardInterrupt:
        echo(_("interrupted"), err=True)
        return errors.EXIT_INTERRUPTED
    except errors.InvalidFile as exc:
        for p in exc.problems:
            echo(f"{_('error')}: {p.localized()}", err=True)
        from canteen_ops.cli.render import plural

        echo(_("{problems} found; nothing was run").format(problems=plural(len(exc.problems), "problem")), err=True)
        return exc.exit_code
    except errors.CanteenOpsError as exc:
        echo(f"{_('error')}: {exc.localized()}", err=True)
        return exc.exit_code
    except BrokenPipeError:  # `canteen-ops status | head`: the reader left; not a finding (1 would mean warn)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())  # Python's final flush must not fail
        return errors.EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: one line (the traceback with --debug), and exit 70
        if context.debug():
            import traceback

            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        echo(_("internal error: {kind}: {message} (run with --debug for the traceback)").format(
            kind=type(exc).__name__, message=first), err=True)
        return errors.EXIT_SOFTWARE
    return rv if isinstance(rv, int) else 0
