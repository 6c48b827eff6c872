"""Error types and the exit statuses they map to (documented in the README).

The core raises; only the CLI turns exceptions into exit codes (httpie-style). An error carries its message as
an English template and its values (`UsageError("unknown check {name!r}", name=x)`): `str(exc)` is English, as
anything that keeps it (the log, a change's refusal) needs; `localized()` is what the technician reads, the
template looked up in the gettext catalog (canteen_ops/i18n.py) and filled with the same values. Values are data
and are never translated, except our own words marked as such: `Word("cancelled")` (a state), `Word("resolve",
"verb")` (looked up as `verb:resolve`), `Words(states)` (joined with "or").
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_WARN = 1
EXIT_CRIT = 2
EXIT_UNKNOWN = 3
EXIT_USAGE = 64  # bad command line
EXIT_DATAERR = 65  # invalid input file: inventory, playbook, firmware catalog
EXIT_NOINPUT = 66  # an input file or record does not exist
EXIT_UNAVAILABLE = 69  # upstream / device unreachable (sync offline)
EXIT_SOFTWARE = 70  # internal error
EXIT_CANTCREAT = 73  # cannot write output
EXIT_TEMPFAIL = 75  # another run holds the lock; try again later
EXIT_NOPERM = 77  # refused by change control (no started change / permit)
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # the reader of our output went away (`| head`): 128 + SIGPIPE, as the shell reports it


class Word(str):
    """One of our own words inside a message's values: English in str(), translated by localized()."""

    def __new__(cls, text: str, context: str = "") -> "Word":
        word = super().__new__(cls, text)
        word.context = context  # a `context:` prefix in the catalog for a word with several meanings (i18n.word)
        return word


class Words(tuple):
    """Several of our words as one value: `open or acked`."""

    def __format__(self, spec: str) -> str:
        return format(" or ".join(self), spec)


def _fill(template: str, values: dict) -> str:
    return template.format(**values) if values else template


def _ours(value):
    from canteen_ops.i18n import _, word

    if isinstance(value, Word):
        return word(f"{value.context}:{value}") if value.context else _(value)
    if isinstance(value, Words):
        return _(" or ").join(_ours(Word(v)) for v in value)
    return value


class CanteenOpsError(Exception):
    exit_code = EXIT_SOFTWARE

    def __init__(self, message: str = "", **values):
        super().__init__(_fill(message, values))
        self.template, self.values = message, values

    def localized(self) -> str:
        """The message in the reader's language (English when the catalog has no entry for the template)."""
        from canteen_ops.i18n import _

        return _fill(_(self.template), {k: _ours(v) for k, v in self.values.items()})


class UsageError(CanteenOpsError):
    exit_code = EXIT_USAGE


class NotFound(CanteenOpsError):
    exit_code = EXIT_NOINPUT


class Unavailable(CanteenOpsError):
    exit_code = EXIT_UNAVAILABLE


class LogUnusable(CanteenOpsError):
    """The maintenance log cannot be opened: not SQLite, another program's database, or a newer schema."""

    exit_code = EXIT_DATAERR


class CannotWrite(CanteenOpsError):
    exit_code = EXIT_CANTCREAT


class LockHeld(CanteenOpsError):
    exit_code = EXIT_TEMPFAIL


class PermissionRefused(CanteenOpsError):
    exit_code = EXIT_NOPERM


@dataclass(frozen=True)
class Problem:
    """One problem in an input file, located precisely."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # dotted field path, e.g. schools[0].devices[2].port
    message: str  # in English; given as a template filled with `values` (as for CanteenOpsError)
    values: dict = field(default_factory=dict, compare=False)
    template: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template", self.message)
        object.__setattr__(self, "message", _fill(self.message, self.values))

    def __str__(self) -> str:
        return self._located(self.message)

    def localized(self) -> str:
        return self._located(self.text())

    def text(self) -> str:
        """The message alone in the reader's language."""
        from canteen_ops.i18n import _

        return _fill(_(self.template), {k: _ours(v) for k, v in self.values.items()})

    def _located(self, message: str) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {message}" if self.path else f"{where}: {message}"


class InvalidFile(CanteenOpsError):
    """An input file failed validation; carries every problem found, not just the first."""

    exit_code = EXIT_DATAERR

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
