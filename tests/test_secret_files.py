"""password_file (and the upstream token file) is read only when it is a small regular file: a FIFO, a device, a
directory or a huge file is a clear error (per device: `unknown`), never a hang; a file others can read is warned
about."""

from __future__ import annotations

import os
import sys
import threading

import pytest
import yaml

from canteen_ops.inventory.loader import load_inventory
from canteen_ops.inventory.model import Credentials, SecretUnavailable
from canteen_ops.secretfile import MAX_BYTES, SecretFileError, open_to_others, read_secret_file
from canteen_ops.status import Status

posix_only = pytest.mark.skipif(os.name == "nt", reason="FIFOs, devices and mode bits are POSIX")


def read_within(path, timeout=20.0):
    """read_secret_file(path) in a thread: a blocking open (a FIFO without a writer) fails the test, not the suite."""
    out: dict = {}

    def target():
        try:
            out["value"] = read_secret_file(path)
        except SecretFileError as exc:
            out["error"] = str(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"reading {path} blocked"
    return out


def test_a_small_regular_file_is_read(tmp_path):
    p = tmp_path / "pw"
    p.write_text("Kitchen-Pw-9\n", encoding="utf-8")
    assert read_secret_file(p) == "Kitchen-Pw-9\n"
    p.write_bytes(b"x" * MAX_BYTES)
    assert read_secret_file(p) == "x" * MAX_BYTES


@posix_only
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo)
    assert read_within(fifo) == {"error": "not a regular file (a FIFO)"}


@posix_only
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused_without_reading_it():
    assert read_within("/dev/zero") == {"error": "not a regular file (a character device)"}


@pytest.mark.parametrize("kind", ["directory", "huge", "binary", "missing"])
def test_other_unusable_files(tmp_path, kind):
    p = tmp_path / "pw"
    if kind == "directory":
        p.mkdir()
    elif kind == "huge":
        p.write_bytes(b"y" * (MAX_BYTES + 1))
    elif kind == "binary":
        p.write_bytes(b"\xff\xfe pw")
    err = read_within(p).get("error", "")
    if kind == "directory" and os.name == "nt":
        assert err  # Windows refuses to open a directory
    else:
        assert err.startswith({"directory": "not a regular file (a directory)", "huge": "larger than 4096 bytes",
                               "binary": "not UTF-8 text", "missing": "No such file"}[kind]), err


@posix_only
def test_credentials_name_the_file_and_the_reason(tmp_path):
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo)
    creds = Credentials(name="hik", username="admin", password_file=str(fifo))
    with pytest.raises(SecretUnavailable, match=r"credentials 'hik': cannot read password_file .*pw.fifo: "
                                                r"not a regular file \(a FIFO\)"):
        creds.resolve()


@posix_only
def test_a_password_file_others_can_read_is_warned_about(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("Kitchen-Pw-9", encoding="utf-8")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"version: 1\ncredentials:\n  hik: {{username: admin, password_file: {pw}}}\nschools: []\n",
                   encoding="utf-8")
    os.chmod(pw, 0o600)
    assert not open_to_others(pw) and load_inventory(inv).warnings == ()
    os.chmod(pw, 0o640)
    (warning,) = load_inventory(inv).warnings
    assert warning == f"{inv}:3:41: password file {pw} is readable by other users; chmod 600 it"


@pytest.mark.skipif(sys.platform == "win32", reason="FIFO")
def test_a_lab_device_whose_password_file_is_a_fifo_is_unknown(lab, tmp_path):
    from canteen_ops.checks.run import run_checks

    data = yaml.safe_load(lab.inventory.read_text(encoding="utf-8"))
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo)
    data["credentials"]["lab-hikvision"]["password_file"] = str(fifo)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    inv = load_inventory(path)
    dev = inv.device(lab.first("hikvision", "camera").id)
    out = run_checks([dev], inv, ["reachable", "login", "clock"], progress=False, workers=1, deadline_s=20)
    login = [r for r in out.results if r.check == "login"]
    assert login and login[0].status is Status.UNKNOWN, [(r.check, r.status, r.summary) for r in out.results]
    assert "not a regular file (a FIFO)" in login[0].summary
