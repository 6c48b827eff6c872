"""`canteen-ops playbook run | list | validate`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import env

HELP = "Playbooks: nightly jobs, daily inspection (巡检) and emergency drills (演练)."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)


def playbook_dirs() -> list[Path]:
    """Where playbooks are looked up by name: $CANTEEN_OPS_PLAYBOOKS, ./playbooks, then the shipped ones (inside
    the installed package, see setup.py; in a checkout, its top-level playbooks/)."""
    dirs = [Path(p) for p in os.environ.get("CANTEEN_OPS_PLAYBOOKS", "").split(os.pathsep) if p]
    pkg = Path(__file__).resolve().parents[1]
    return dirs + [Path("playbooks"), pkg / "playbooks" / "shipped", pkg.parent / "playbooks"]


def resolve(name: str) -> Path:
    from canteen_ops.errors import NotFound

    path = Path(name)
    if path.exists():
        return path
    for d in playbook_dirs():
        for candidate in (d / name, d / f"{name}.yaml", d / f"{name}.yml"):
            if candidate.is_file():
                return candidate
    from canteen_ops.i18n import _

    dirs = [str(d) for d in playbook_dirs() if d.is_dir()] or [_("(no playbook directory exists)")]
    raise NotFound("playbook {name!r} not found (looked in {dirs})", name=name, dirs=', '.join(dirs))


@app.command()
def run(ctx: typer.Context,
        playbook: Annotated[str, typer.Argument(metavar="PLAYBOOK", help="File, or name of a playbook in playbooks/")],
        check: Annotated[bool, typer.Option("--check", help="Dry run: show what would run, touch nothing")] = False,
        non_interactive: Annotated[bool, typer.Option(
            "--non-interactive", help="Prompts take their defaults (or fail without one)")] = False,
        var: Annotated[Optional[list[str]], typer.Option("--var", metavar="NAME=VALUE", help="Set a variable (repeatable)")] = None,
        ) -> int:
    """Run a playbook. Exit status = the worst step status (0/1/2/3); 75 if it is already running."""
    from canteen_ops.errors import UsageError
    from canteen_ops.playbooks.model import load_playbook
    from canteen_ops.playbooks.run import PlaybookRunner

    variables = {}
    for item in var or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError("--var {item!r}: expected NAME=VALUE", item=item)
        variables[key] = value
    book = load_playbook(resolve(playbook))
    outcome = PlaybookRunner(book, env(ctx), check_mode=check, non_interactive=non_interactive,
                             variables=variables).run()
    if not check:
        e = env(ctx)
        if not e.quiet or outcome.exit_code:
            from canteen_ops.cli.render import plural
            from canteen_ops.i18n import _, status_word

            (e.err if e.quiet else e.console).print(_("playbook {name}: {status} ({run} of {steps} run)").format(
                name=book.name, status=status_word(outcome.status.value), run=sum(1 for s in outcome.steps if s.raw),
                steps=plural(len(book.steps), "step")))
    return outcome.exit_code


@app.command()
def validate(ctx: typer.Context, playbooks: Annotated[list[str], typer.Argument(metavar="PLAYBOOK...", help="Files or names")]) -> int:
    """Validate playbooks: every problem with file:line and the step; exit 65 if any."""
    from canteen_ops.cli.render import plural
    from canteen_ops.errors import InvalidFile
    from canteen_ops.i18n import _
    from canteen_ops.playbooks.model import load_playbook

    problems = []
    for name in playbooks:
        try:
            book = load_playbook(resolve(name))
            env(ctx).console.print(_("{file}: OK — {name}, {steps}").format(
                file=book.path, name=book.name, steps=plural(len(book.steps), "step")), highlight=False)
        except InvalidFile as exc:
            problems += exc.problems
    if problems:
        raise InvalidFile(problems)
    return 0


@app.command("list")
def list_(ctx: typer.Context) -> int:
    """List the playbooks found in the playbook directories."""
    from canteen_ops.cli.render import CODE, ID, NUM, Column, plural, table
    from canteen_ops.errors import InvalidFile
    from canteen_ops.playbooks.model import load_playbook

    rows = []
    seen = set()
    for d in playbook_dirs():
        for path in sorted(d.glob("*.y*ml")) if d.is_dir() else ():
            if path.name in seen:
                continue
            seen.add(path.name)
            try:
                b = load_playbook(path)
                rows.append((b.name, b.kind, len(b.steps), path, b.description))
            except InvalidFile as exc:
                rows.append((path.stem, "", "", path, f"INVALID: {exc.problems[0]}"))
    console = env(ctx).console
    cols = [Column("name", ID), Column("kind", CODE), Column("steps", NUM), Column("file"), Column("description", main=True)]
    console.print(table(plural(len(rows), "playbook"), cols, rows, console=console))
    return 0
