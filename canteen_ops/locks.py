"""Non-blocking exclusive locks shared by processes (a playbook run, a device's backup, the watch).

Through `filelock` (flock on POSIX, msvcrt on Windows: technicians carry Windows laptops), so a lock dies with
its process and a killed cron job never leaves anything locked. Lock files are never deleted by us. Who holds a
lock is written beside it (`NAME.holder`), so a refused run can say so; on Windows the lock file itself cannot be
read while it is held.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from canteen_ops.errors import LockHeld


@contextmanager
def exclusive(path: Path, busy: str, holder: str | None = None, **values) -> Iterator[None]:
    """Hold `path` or raise LockHeld(`busy`) at once: an English template (errors.py) filled with `values` and
    `{holder}`, who holds the lock; our own `holder` says who we are (default: our pid)."""
    from filelock import FileLock, Timeout

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    side = path.with_name(path.name + ".holder")
    try:
        lock.acquire()
    except Timeout:
        raise LockHeld(busy, holder=_holder(side), **values) from None
    try:
        try:
            side.write_text(holder or f"pid {os.getpid()}\n", encoding="utf-8")
        except OSError:
            pass  # only the message of a refused run loses its detail
        yield
    finally:
        lock.release()


def _holder(side: Path) -> str:
    try:
        text = side.read_text(encoding="utf-8", errors="replace").strip()[:64]
    except OSError:
        return ""
    return f" ({text})" if text else ""
