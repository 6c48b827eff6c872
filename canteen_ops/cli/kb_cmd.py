"""`canteen-ops kb list | search | show | add`: the knowledge base (知识库)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from canteen_ops.i18n import _

from canteen_ops.cli.common import JsonOpt, env, print_json

HELP = "Knowledge base (知识库): symptoms, likely causes, steps and when to escalate; technicians add their own."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)


def _entries(ctx: typer.Context):
    from canteen_ops import kb

    return kb.all_entries(env(ctx).log())


def _print_rows(ctx: typer.Context, entries, title: str) -> None:
    from canteen_ops.cli.render import ID, Column, table

    console = env(ctx).console
    cols = [Column("id", ID), Column("title", main=True), Column("source")]
    rows = [(e.id, e.title, _h(e.source) if not e.extends else _("{source}, adds to {entry}").format(
        source=_h(e.source), entry=e.extends)) for e in entries]
    console.print(table(title, cols, rows, console=console))


@app.command("list")
def list_(ctx: typer.Context, json: JsonOpt = False) -> int:
    """Every entry: shipped ones first, then the technicians'."""
    entries = _entries(ctx)
    if json:
        print_json([e.to_dict() for e in entries])
        return 0
    _print_rows(ctx, entries, f"{len(entries)} entries")
    return 0


@app.command()
def search(ctx: typer.Context,
           query: Annotated[list[str], typer.Argument(metavar="WORDS", help="Words to find, in Chinese or English "
                                                      "(every word must occur), e.g. 花屏 or 'clock reset'")],
           limit: Annotated[int, typer.Option(min=1, max=1000, metavar="N", help="At most this many")] = 10,
           json: JsonOpt = False) -> int:
    """Full-text search over titles, keywords, symptoms, causes and steps. Exit 66 when nothing matches."""
    from canteen_ops import kb
    from canteen_ops.errors import EXIT_NOINPUT

    hits = kb.search(_entries(ctx), " ".join(query), limit)
    if json:
        print_json([e.to_dict() for e in hits])
    elif hits:
        from canteen_ops.cli.render import plural

        _print_rows(ctx, hits, _("{matches} for {query}").format(matches=plural(len(hits), "match", "matches"),
                                                                   query=' '.join(query)))
    else:
        env(ctx).err.print(_("no entry matches {query}").format(query=repr(' '.join(query))), markup=False,
                           highlight=False)
    return 0 if hits else EXIT_NOINPUT


@app.command()
def show(ctx: typer.Context,
         ident: Annotated[str, typer.Argument(metavar="ID", help="Entry id, e.g. KB-CLOCK-RESET")],
         json: JsonOpt = False) -> int:
    """One entry in full, with the technicians' additions to it."""
    from canteen_ops import kb
    from canteen_ops.errors import NotFound

    entries = _entries(ctx)
    entry = kb.find(entries, ident)
    if entry is None:
        raise NotFound("no knowledge-base entry {ident!r} (kb search WORDS finds one)", ident=ident)
    additions = [e for e in entries if e.extends and e.extends.upper() == entry.id.upper()]
    if json:
        print_json({**entry.to_dict(), "additions": [e.to_dict() for e in additions]})
        return 0
    out = env(ctx).console
    for e in (entry, *additions):
        lines = [f"{e.id}  {e.title}"]
        if e.source == "technician":
            lines.append(f"  by {e.author or '?'} at {e.created_at or '?'}"
                         + (f", adds to {e.extends}" if e.extends else ""))
        if e.keywords:
            lines.append(f"  keywords: {', '.join(e.keywords)}")
        if e.symptom:
            lines += ["", "  现象 symptom:", f"    {e.symptom}"]
        if e.causes:
            lines += ["", "  可能原因 likely causes:", *(f"    - {c}" for c in e.causes)]
        if e.steps:
            lines += ["", "  处理步骤 steps:", *(f"    {i}. {s}" for i, s in enumerate(e.steps, 1))]
        if e.escalate:
            lines += ["", "  何时升级 when to escalate:", f"    {e.escalate}"]
        out.print("\n".join(lines) + "\n", markup=False, highlight=False, soft_wrap=True)
    return 0


@app.command()
def add(ctx: typer.Context,
        title: Annotated[str, typer.Option("--title", "-t", metavar="TEXT", help="What the entry is about, e.g. '烹饪区摄像机雨季花屏'")],
        symptom: Annotated[str, typer.Option("--symptom", metavar="TEXT", help="What one sees")] = "",
        cause: Annotated[Optional[list[str]], typer.Option("--cause", metavar="TEXT", help="A likely cause (repeatable)")] = None,
        step: Annotated[Optional[list[str]], typer.Option("--step", metavar="TEXT", help="A step, in order (repeatable)")] = None,
        escalate: Annotated[str, typer.Option("--escalate", metavar="TEXT", help="When to hand it up")] = "",
        keyword: Annotated[Optional[list[str]], typer.Option("--keyword", "-k", metavar="WORD", help="A search word (repeatable)")] = None,
        extends: Annotated[Optional[str], typer.Option("--extends", metavar="ID",
                                                       help="The entry this adds to, e.g. KB-HUAPING")] = None,
        device: Annotated[Optional[str], typer.Option("--device", "-d", metavar="DEVICE", help="The device it was seen on")] = None,
        json: JsonOpt = False) -> int:
    """Add a technician's entry; it is kept in the maintenance log and synced upstream with it."""
    from canteen_ops import kb
    from canteen_ops.errors import UsageError

    e = env(ctx)
    if not title.strip():
        raise UsageError("--title is empty")
    if not (symptom.strip() or cause or step):
        raise UsageError("give at least one of --symptom, --cause or --step")
    if extends is not None:
        target = kb.find(kb.all_entries(e.log()), extends)
        if target is None:
            raise UsageError("--extends {extends!r}: no such entry (kb list shows them)", extends=extends)
        extends = target.id
    school_id = None
    if device is not None:
        try:
            school_id = e.inventory().device(device).school_id
        except KeyError:
            raise UsageError("--device {device!r} is not in {where}", device=device, where=e.inventory().path) from None
    entry = kb.add(e.log(), title=title.strip(), symptom=symptom.strip(), causes=cause or [], steps=step or [],
                   escalate=escalate.strip(), keywords=keyword or [], author=e.operator, extends=extends,
                   school_id=school_id, device_id=device)
    if json:
        print_json(entry.to_dict())
    else:
        from canteen_ops.i18n import _

        e.console.print(_("{id} added (kb show {id}; `sync` sends it upstream)").format(id=entry.id), markup=False,
                        highlight=False)
    return 0


def _h(source: str) -> str:
    """Where an entry comes from (shipped / technician) in the reader's language."""
    from canteen_ops.i18n import word

    return word(f"kb:{source}")
