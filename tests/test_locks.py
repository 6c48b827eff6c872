"""canteen_ops/locks.py: the OS file locks (filelock) behind the playbook lock (exit 75) and the per-device backup lock,
held by another real process, and freed when that process dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from canteen_ops.errors import LockHeld

HOLDER = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from canteen_ops.store.backups import BackupStore
    from canteen_ops.playbooks.run import playbook_lock
    kind, root = sys.argv[1], Path(sys.argv[2])
    lock = BackupStore(root).lock("cam-01") if kind == "backup" else playbook_lock(root, "nightly")
    with lock:
        print("held", flush=True)
        time.sleep(60)
""")


def _hold(kind: str, root: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(root)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.mark.parametrize("kind", ["backup", "playbook"])
def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_dies(kind, tmp_path):
    from canteen_ops.playbooks.run import playbook_lock
    from canteen_ops.store.backups import BackupStore

    def take():
        return BackupStore(tmp_path).lock("cam-01") if kind == "backup" else playbook_lock(tmp_path, "nightly")

    holder = _hold(kind, tmp_path)
    try:
        with pytest.raises(LockHeld) as exc:
            with take():
                pass
        assert f"pid {holder.pid}" in str(exc.value)
        assert exc.value.exit_code == 75
    finally:
        holder.kill()  # no clean release: the OS frees the lock with the process
        holder.wait()
    for _ in range(50):
        try:
            with take():
                break
        except LockHeld:
            time.sleep(0.1)
    else:
        pytest.fail("the lock outlived its process")


def test_backup_locks_are_per_device(tmp_path):
    from canteen_ops.store.backups import BackupStore

    store = BackupStore(tmp_path)
    with store.lock("cam-01"):
        with store.lock("cam-02"):
            pass
        with pytest.raises(LockHeld, match="cam-01: another backup of this device is running"):
            with store.lock("cam-01"):
                pass
    with store.lock("cam-01"):
        pass
    assert not list(store.files())  # lock files are not backups


def test_playbook_lock_held_by_another_process_exits_75(cli, tmp_path):
    from tests.conftest import EXAMPLE
    from tests.test_playbooks import write

    p = write(tmp_path, "name: nightly\nsteps:\n  - wait: 0\n")
    holder = _hold("playbook", tmp_path / "locks")
    try:
        r = cli("-i", EXAMPLE, "playbook", "run", p)
    finally:
        holder.kill()
        holder.wait()
    assert r.code == 75, r
    assert "already running" in r.err and f"pid {holder.pid}" in r.err
