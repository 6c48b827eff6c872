"""The environment a command runs in: paths, operator, console, lazily opened inventory and log.

Passed to every command instead of globals, so tests can build one directly (httpie-style).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The global `--debug` flag, for any module (tracebacks of unexpected errors; later a device wire log). Set by the
# CLI's root callback before a command runs; False outside the CLI.
_debug = False


def set_debug(on: bool) -> None:
    global _debug
    _debug = bool(on)


def debug() -> bool:
    return _debug


if TYPE_CHECKING:
    from rich.console import Console

    from canteen_ops.inventory.model import Inventory
    from canteen_ops.store.log import MaintenanceLog


DEFAULT_TZ = "Asia/Shanghai"


@dataclass
class Env:
    inventory_path: Path
    db_path: Path
    operator: str
    quiet: bool = False
    force_login: bool = False  # --force-login: send credentials even to devices that refused them recently
    command: str | None = None
    argv: list[str] = field(default_factory=lambda: list(sys.argv[1:]))
    _inventory: Any = None
    _log: Any = None
    _console: Any = None
    _err: Any = None

    @property
    def console(self) -> "Console":
        if self._console is None:
            from canteen_ops.cli.render import make_console

            self._console = make_console(quiet=self.quiet)
        return self._console

    @property
    def err(self) -> "Console":
        if self._err is None:
            from canteen_ops.cli.render import make_console

            self._err = make_console(stderr=True)
        return self._err

    def inventory(self) -> "Inventory":
        if self._inventory is None:
            from canteen_ops.i18n import _
            from canteen_ops.inventory.loader import load_inventory

            self._inventory = load_inventory(self.inventory_path)
            if not self.quiet:
                for w in self._inventory.warnings:
                    self.err.print(f"{_('warning')}: {w}", style="yellow", soft_wrap=True)
        return self._inventory

    def inventory_or_none(self) -> "Inventory | None":
        """The inventory when a valid one is at hand (school names, time zone); the log is readable without it."""
        from canteen_ops.errors import CanteenOpsError

        if not self.inventory_path.exists():
            return None
        try:
            return self.inventory()
        except CanteenOpsError:
            return None

    def timezone(self) -> str:
        """The zone people's dates and times are in: the inventory's, or Asia/Shanghai without a valid one."""
        inv = self.inventory_or_none()
        return inv.settings.timezone if inv else DEFAULT_TZ

    def log(self) -> "MaintenanceLog":
        if self._log is None:
            from canteen_ops.store.log import MaintenanceLog

            self._log = MaintenanceLog.open(self.db_path)
            from canteen_ops.drivers.base import tls_pins
            from canteen_ops.store.tlspins import accepted_pins

            log = self._log
            tls_pins.set_source(lambda: accepted_pins(log))  # drivers opened by this command check the pins
            self._remember_logins()
        return self._log

    def _remember_logins(self) -> None:
        """Device commands open the log before any driver: from then on a refused login is remembered in it, and
        a device that refused one within its lockout window gets no credentials (store/logins.py)."""
        from canteen_ops.drivers.base import auth_guard
        from canteen_ops.store.logins import LoginMemory

        auth_guard.use_memory(LoginMemory(self.db_path, command=self.command, force=self.force_login))

    def close(self) -> None:
        if self._log is not None:
            from canteen_ops.drivers.base import auth_guard, tls_pins

            auth_guard.use_memory(None)
            tls_pins.set_source(None)
            self._log.close()
            self._log = None
