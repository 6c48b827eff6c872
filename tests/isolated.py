"""Run a measurement in a fresh interpreter.

For tracemalloc: CPython 3.11's tracemalloc is not safe while other threads allocate through the C API as it
starts or stops, and a test worker also runs the lab, whose picture threads allocate through numpy — a worker
segfaulted that way. So a test that traces memory runs the traced part in a child process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_isolated(func, *args):
    """func(*args) in a fresh interpreter; func is a module-level function of an importable module, args and the
    result are JSON."""
    code = (f"import json, sys; from {func.__module__} import {func.__name__} as f; "
            f"print(json.dumps(f(*json.loads(sys.argv[1]))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
