"""Pausing Python's cyclic garbage collector while a command builds its long-lived data."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (reference counting still frees everything that is not in a
    cycle). Loading a 1,000-device inventory and the ONVIF WSDLs creates hundreds of thousands of objects that
    all stay alive, and every few thousand allocations the collector walked the growing heap again: a fifth of
    `check`'s start-up (docs/benchmarks.md). Nested pauses are fine: only the outermost turns it back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
