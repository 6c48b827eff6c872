"""Keep CLI start-up cheap as command groups multiply.

Two costs dominate a Typer start-up here, and both grow with the number of commands:
- building every command group's Click objects (signature inspection) even though one run uses one group;
  `LazyGroup` builds a group only when it is invoked, and `--help` reads each group's help text without building it;
- Typer ≥ 0.29 coerces every option through a pydantic TypeAdapter: importing pydantic and building the adapters
  costs ~100-150 ms per run. Our options are plain str / int / float / Path (or lists of them; numbers may have
  min/max bounds), whose coercion is trivial, so `install_plain_coercion` gives those a direct one. Anything else
  (enums, clamping, custom parsers, path checks) keeps Typer's own coercion, and if Typer's internals change
  shape we silently keep Typer's path.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer.core import TyperGroup

try:  # typer ≥ 0.29 vendors click
    from typer import _click as click
    from typer._click.exceptions import BadParameter
    from typer._click.utils import make_default_short_help
except ImportError:  # pragma: no cover
    import click
    from click.exceptions import BadParameter
    from click.utils import make_default_short_help

# name → (module, attribute, is_group); filled by cli/app.py from GROUPS and COMMANDS.
LAZY: dict[str, tuple[str, str, bool]] = {}


class LazyGroup(TyperGroup):
    """The root group: sub-commands are imported and built on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.commands, *(n for n in LAZY if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY:
            self.commands[cmd_name] = _build(cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in LAZY and args[0] not in self.commands:
            for name in LAZY:  # an unknown name: build all so that "Did you mean ...?" can see every command
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, make_default_short_help(_help(n, self.commands.get(n)), limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _target(name: str) -> Any:
    module, attr, _ = LAZY[name]
    return getattr(importlib.import_module(module), attr)


def _help(name: str, built: click.Command | None) -> str:
    if built is not None:
        return built.help or built.short_help or ""
    target = _target(name)
    if LAZY[name][2]:  # a Typer group: its help without building it
        if isinstance(target.info.help, str):
            return target.info.help
        callback = target.registered_callback.callback if target.registered_callback else None
        return (getattr(callback, "__doc__", None) or "").strip()
    return (target.__doc__ or "").strip()


def _build(name: str) -> click.Command:
    target = _target(name)
    if LAZY[name][2]:
        target.rich_markup_mode = None  # plain-text help everywhere, like the root: consistent, and no rich import
        target._add_completion = False  # as with add_typer: completion options belong to the root only
        cmd = typer.main.get_group(target)  # a group even with one command, as add_typer makes it
    else:
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
        single.command(name)(target)
        cmd = typer.main.get_command(single)
    cmd.name = name
    return cmd


# --- plain coercion -------------------------------------------------------------------------------------------
def _plain_converter(annotation: Any, info: Any):
    """A converter for a plain annotation, or None if Typer's own coercion must handle it."""
    constrained = (info.parser is not None or getattr(info, "click_type", None) is not None
                   or getattr(info, "clamp", False) or getattr(info, "exists", False)
                   or getattr(info, "resolve_path", False) or getattr(info, "allow_dash", False)
                   or getattr(info, "path_type", None) is not None)
    bounded = info.min is not None or info.max is not None
    if constrained or (bounded and annotation not in (int, float)):
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        conv = _plain_converter(item, info)
        return None if conv is None else (lambda v: [conv(x) for x in (v if isinstance(v, (list, tuple)) else [v])])
    if annotation is str:
        return lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    if annotation is Path:
        return lambda v: v if isinstance(v, Path) else Path(v)
    if annotation is bool:
        return _bool
    if annotation is int:
        return _number(int, "integer", info.min, info.max)
    if annotation is float:
        return _number(float, "float", info.min, info.max)
    return None


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("0", "false", "f", "no", "n", "off", ""):
        return False
    raise BadParameter(f"{v!r} is not a valid boolean.")


def _number(kind: type, label: str, low: Any = None, high: Any = None):
    """A number, within [low, high] when given (Click's wording for both errors; `check --workers` and
    `--deadline` have bounds, and Typer's own coercion of a bounded option imports pydantic: ~150 ms a run)."""
    def conv(v: Any) -> Any:
        if isinstance(v, kind) and not isinstance(v, bool):
            n = v
        else:
            try:
                n = kind(str(v).strip())
            except ValueError:
                raise BadParameter(f"{v!r} is not a valid {label}.") from None
        if (low is not None and n < low) or (high is not None and n > high):
            span = (f"x>={low}" if high is None else f"x<={high}" if low is None else f"{low}<=x<={high}")
            raise BadParameter(f"{n} is not in the range {span}.")
        return n

    return conv


def install_plain_coercion() -> None:
    """Wrap Typer's lazy per-parameter coercion factory: plain types get a direct converter."""
    try:
        from typer._coercion import RuntimeParam
        from typer.core import _TyperParameter
    except ImportError:  # pragma: no cover - another Typer: keep its coercion
        return
    typer_factory = _TyperParameter.get_runtime_param
    if getattr(typer_factory, "_canteen_ops_plain", False):
        return

    class PlainRuntimeParam(RuntimeParam):
        def __init__(self, parameter_info: Any, annotation: Any, convert: Any) -> None:
            object.__setattr__(self, "parameter_info", parameter_info)
            object.__setattr__(self, "annotation", annotation)
            object.__setattr__(self, "convert", convert)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value)
            except BadParameter as exc:
                exc.ctx, exc.param = ctx, param
                raise

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            desc = getattr(self, "type_descriptor", None)
            if desc is not None and desc.file_annotation is None:
                conv = _plain_converter(desc.annotation, desc.parameter_info)
                if conv is not None:
                    self._runtime_param = PlainRuntimeParam(desc.parameter_info, desc.annotation, conv)
        return typer_factory(self)

    get_runtime_param._canteen_ops_plain = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param


install_plain_coercion()
