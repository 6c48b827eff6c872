"""Exclusive, non-blocking locks on a file, shared by every process on this machine (cron and a technician).

`filelock` takes the operating system's lock (fcntl on Linux and macOS, msvcrt on Windows), so the same code runs
on the technicians' Windows laptops, and a lock dies with its process: a killed cron job never leaves anything
locked. Who holds a lock is written next to it (`<lock>.owner`), only to say so when someone else wants it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from canteen_ops.errors import LockHeld


@contextmanager
def exclusive(path: Path, busy: str, mode: int = 0o600) -> Iterator[None]:
    """Hold the lock on `path` for the block; LockHeld(busy + who holds it) at once when another holder has it."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0, mode=mode)
    owner = path.with_name(path.name + ".owner")
    try:
        lock.acquire()
    except Timeout:
        raise LockHeld(busy.format(holder=_holder(owner))) from None
    try:
        try:
            owner.write_text(f"pid {os.getpid()}\n", encoding="ascii")
        except OSError:
            pass  # only informative
        yield
    finally:
        lock.release()


def _holder(owner: Path) -> str:
    try:
        text = owner.read_text(encoding="ascii", errors="replace")[:64].strip()
    except OSError:
        return ""
    return f" ({text})" if text.isprintable() and text else ""
