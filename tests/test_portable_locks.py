"""Technicians carry Windows laptops: the playbook and backup locks must not need POSIX-only modules."""

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
