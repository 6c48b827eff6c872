"""Technicians carry Windows laptops: nothing may need POSIX-only modules or calls without a portable path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from canteen_ops.errors import LockHeld
from canteen_ops.locks import exclusive


def test_playbooks_and_backups_import_without_fcntl():
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import canteen_ops.playbooks.run, canteen_ops.store.backups, canteen_ops.locks\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_held_lock_is_refused_at_once_and_names_its_holder(tmp_path):
    path = tmp_path / "locks" / "playbook-x.lock"
    with exclusive(path, "busy{holder}"):
        with pytest.raises(LockHeld) as exc:
            with exclusive(path, "x is running{holder}; later"):
                pass
    assert str(exc.value).startswith("x is running (pid ") and str(exc.value).endswith("; later")
    with exclusive(path, "busy{holder}"):  # released: free again
        pass


def test_every_module_imports_without_posix_only_modules():
    """Windows has no fcntl, resource, pwd, grp, termios and no select.poll: every module of the package (the
    lab's too) must import without them; code that uses them picks a portable path at run time."""
    code = (
        "import sys, select, pkgutil, importlib\n"
        "for name in ('fcntl', 'resource', 'pwd', 'grp', 'termios'):\n"
        "    sys.modules[name] = None\n"
        "del select.poll\n"
        "import canteen_ops\n"
        "bad = []\n"
        "for m in pkgutil.walk_packages(canteen_ops.__path__, 'canteen_ops.'):\n"
        "    if m.name.endswith('__main__'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{m.name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(bad))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_no_posix_only_calls_without_a_portable_path():
    """fork, fcntl and the POSIX signal/uid calls appear only behind a platform check."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "canteen_ops"
    pattern = re.compile(r"\bos\.(fork|forkpty|getuid|geteuid|setsid|killpg|wait3|wait4)\(|\bimport fcntl\b|"
                         r"\bsignal\.(SIGKILL|SIGHUP|SIGUSR1|SIGUSR2|SIGALRM)\b")
    found = []
    for path in root.rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and "getattr(signal" not in line and "sys.platform" not in line:
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    allowed = {"lab/district.py"}  # SIGKILL as the parent-death signal, inside `if sys.platform.startswith("linux")`
    assert [f for f in found if f.split(":")[0] not in allowed] == []
