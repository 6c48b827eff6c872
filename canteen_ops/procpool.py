"""Worker processes for CPU-bound work (picture analysis, a big fleet's protocol parsing; `check --processes`): one
Python process's threads share one core (the GIL), so work that computes rather than waits needs processes.

A `concurrent.futures.ProcessPoolExecutor` started with `spawn` on every platform: the only start method Windows
has, and the one that is safe in a process that already runs threads (fork copies locks other threads hold).
So whatever runs in a worker is a top-level, importable function, and its arguments and results are picklable.

Workers ignore Ctrl-C (the terminal sends it to every process): the parent decides. Stopping a run (`close(stop=
True)`) makes every worker leave at once (a watcher thread calls os._exit), and so does the parent's death: a
worker in the middle of a device or a stream would otherwise keep the parent from exiting until its own
timeouts ran out. A worker can send
messages to the parent while it works (`send`, `WorkerProcesses.messages`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

STOPPED_EXIT = 130

_messages: Any = None  # in a worker: the queue to its parent, when the pool has one


class WorkerProcesses:
    def __init__(self, processes: int, *, messages: bool = False):
        self._ctx = multiprocessing.get_context("spawn")
        self._processes = max(1, processes)
        # Stopping is the parent closing its end of a pipe every worker watches: EOF reaches all of them at once,
        # also when the parent dies. (A multiprocessing.Event's set() waits for every waiter to wake, and blocks
        # for ever when one of them was killed.)
        self._watch, self._stop = self._ctx.Pipe(duplex=False)
        self.messages = self._ctx.Queue() if messages else None
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self._processes, mp_context=self._ctx, initializer=_init_worker,
                                   initargs=(self._watch, self.messages))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run fn(*args, **kwargs) in a worker. When a worker died (a crash in native code), the executor is
        broken for good: what was running in it fails with BrokenProcessPool, and later work gets new workers."""
        with self._lock:
            try:
                return self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                return self._pool.submit(fn, *args, **kwargs)

    def close(self, stop: bool = False) -> None:
        """Wait for the submitted work (stop=False), or end every worker now and drop what is left."""
        if stop:
            self._stop.close()
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._stop.close()
        self._watch.close()
        if self.messages is not None:
            self.messages.close()
            self.messages.cancel_join_thread()

    def __enter__(self) -> "WorkerProcesses":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Leaving the block ends the workers now: what a worker still runs then (a stream probe whose camera's
        # deadline passed) has no one left to take its result.
        self.close(stop=True)


def send(message: Any) -> None:
    """From a worker: put a message on its pool's queue (thread-safe)."""
    _messages.put(message)


def _init_worker(watch, messages) -> None:
    global _messages
    _messages = messages
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_leave_when_stopped, args=(watch,), name="stop-watch", daemon=True).start()


def _leave_when_stopped(watch) -> None:
    try:
        watch.recv_bytes()  # nothing is ever sent: this returns (EOF) when the parent's end is closed
    except (EOFError, OSError):
        pass
    os._exit(STOPPED_EXIT)
