"""`canteen-ops lab up | status | fault | set | down`: a real background lab process, driven through the CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from defusedxml import ElementTree as DET

from canteen_ops.inventory.loader import load_inventory
from canteen_ops.lab.control import pid_alive

ROOT = Path(__file__).resolve().parent.parent


def _block() -> str:
    return f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}.1"


@pytest.fixture
def lab_dir(tmp_path):
    """A lab directory; whatever lab process a test leaves behind is stopped."""
    d = tmp_path / "mylab"  # not ./lab-run (the default, cwd is tmp_path): commands then need --dir
    yield d
    info = d / "lab.json"
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not pid_alive(pid):
                    break
                time.sleep(0.05)


def _get(inv, device_id, path, **kw):
    dev = inv.device(device_id)
    auth = httpx.DigestAuth(dev.credentials.username, dev.credentials.resolve())
    return httpx.get(dev.base_url + path, auth=auth, timeout=kw.get("timeout", 5), verify=False)


def test_lab_up_status_fault_set_down(cli, lab_dir):
    r = cli("lab", "up", "--dir", lab_dir, "--schools", "2", "--cameras-per-school", "2", "--vendors",
            "hikvision,dahua", "--first-address", _block(), "--no-warm", "--faults", "s002-*:clock-drift=+400")
    assert r.code == 0, r
    inv_path = lab_dir / "inventory.yaml"
    assert f"export CANTEEN_OPS_INVENTORY={inv_path.resolve()}" in r.out and "lab down --dir" in r.out
    info = json.loads((lab_dir / "lab.json").read_text())
    assert pid_alive(info["pid"]) and info["devices"] == 6 and info["control"].startswith("127.0.0.1:")
    assert (lab_dir / "lab.json").stat().st_mode & 0o077 == 0  # holds the control token
    inv = load_inventory(inv_path)
    assert [d.id for d in inv.devices] == ["s001-nvr", "s001-cam01", "s001-cam02", "s002-nvr", "s002-cam01",
                                           "s002-cam02"]
    assert cli("-i", inv_path, "inventory", "validate").code == 0

    # a second lab in the same directory is refused
    r = cli("lab", "up", "--dir", lab_dir, "--no-warm", "--first-address", _block())
    assert r.code == 75 and "already running" in r.err

    r = cli("lab", "status", "--dir", lab_dir, "--json")
    assert r.code == 0, r
    st = json.loads(r.out)
    assert len(st["devices"]) == 6 and st["pid"] == info["pid"]
    assert {d["id"]: d["faults"] for d in st["devices"]}["s002-cam01"] == {"clock-drift": "+400"}
    nvr = next(d for d in st["devices"] if d["id"] == "s002-nvr")
    assert nvr["rtsp"][1] == f"rtsp://{nvr['host']}:8554/cam/realmonitor?channel=2&subtype=0"
    for _user, password in ((c.username, c.resolve()) for c in inv.credentials.values()):
        assert password not in r.out
    r = cli("lab", "status", "--dir", lab_dir)
    assert r.code == 0 and "s001-cam01" in r.out and "clock-drift=+400" in r.out

    assert _get(inv, "s001-cam01", "/ISAPI/System/deviceInfo").status_code == 200
    r = cli("lab", "fault", "--dir", lab_dir, "s001-cam01", "offline")
    assert r.code == 0 and "set offline on s001-cam01" in r.out
    with pytest.raises(httpx.ConnectError):
        _get(inv, "s001-cam01", "/ISAPI/System/deviceInfo", timeout=2)
    r = cli("lab", "fault", "--dir", lab_dir, "s001-cam01", "--clear", "offline")
    assert r.code == 0 and "cleared offline" in r.out
    assert _get(inv, "s001-cam01", "/ISAPI/System/deviceInfo").status_code == 200
    r = cli("lab", "fault", "--dir", lab_dir, "s002-*", "--clear")
    assert r.code == 0 and "s002-cam02" in r.out

    r = cli("lab", "set", "--dir", lab_dir, "s001-cam02", "ntp_server=10.0.0.9")
    assert r.code == 0, r
    root = DET.fromstring(_get(inv, "s001-cam02", "/ISAPI/System/time/ntpServers").content)
    assert next(el.text for el in root.iter() if el.tag.endswith("ipAddress")) == "10.0.0.9"
    r = cli("lab", "set", "--dir", lab_dir, "s002-cam01", "channel.1.width=1280")
    assert r.code == 0
    body = _get(inv, "s002-cam01", "/cgi-bin/configManager.cgi?action=getConfig&name=Encode").text
    assert "table.Encode[0].MainFormat[0].Video.Width=1280" in body

    # usage errors: unknown fault, unknown device, bad setting
    assert cli("lab", "fault", "--dir", lab_dir, "s001-cam01", "melted").code == 64
    r = cli("lab", "fault", "--dir", lab_dir, "nosuch", "offline")
    assert r.code == 64 and "no lab device matches" in r.err
    assert cli("lab", "set", "--dir", lab_dir, "s001-cam01", "colour=red").code == 64
    assert cli("lab", "set", "--dir", lab_dir, "s001-cam01", "no-equals-sign").code == 64

    r = cli("lab", "down", "--dir", lab_dir)
    assert r.code == 0, r
    assert not pid_alive(info["pid"]) and not lab_dir.exists()
    r = cli("lab", "status", "--dir", lab_dir)
    assert r.code == 66 and "no lab is running" in r.err


def test_lab_up_rejects_bad_arguments_and_starts_nothing(cli, lab_dir):
    r = cli("lab", "up", "--dir", lab_dir, "--faults", "s001-cam01:melted", "--no-warm")
    assert r.code == 64 and "unknown fault" in r.err
    r = cli("lab", "up", "--dir", lab_dir, "--vendors", "axis", "--no-warm")
    assert r.code == 64 and "unknown vendor" in r.err
    assert not lab_dir.exists()


def test_lab_faults_lists_every_fault(cli):
    from canteen_ops.lab.state import FAULTS

    r = cli("lab", "faults")
    assert r.code == 0 and all(name in r.out for name in FAULTS)


def test_stale_lab_json_is_reported(cli, lab_dir):
    lab_dir.mkdir()
    (lab_dir / "lab.json").write_text(json.dumps({"pid": 2 ** 22 + 7, "control": "127.0.0.1:1", "token": "x"}))
    r = cli("lab", "status", "--dir", lab_dir)
    assert r.code == 69 and "not running" in r.err


def test_lab_up_foreground_stops_cleanly_on_ctrl_c(tmp_path):
    d = tmp_path / "fg"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "canteen_ops", "lab", "up", "--foreground", "--dir", str(d),
                             "--schools", "1", "--cameras-per-school", "1", "--vendors", "dahua", "--no-warm",
                             "--first-address", _block()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        for _ in range(200):
            if (d / "lab.json").exists():
                break
            time.sleep(0.05)
        info = json.loads((d / "lab.json").read_text())
        assert info["pid"] == proc.pid and info["devices"] == 2
        inv = load_inventory(d / "inventory.yaml")
        r = _get(inv, "s001-cam01", "/cgi-bin/magicBox.cgi?action=getDeviceType")
        assert r.status_code == 200 and r.text.startswith("type=")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Press Ctrl-C to stop" in out and "export CANTEEN_OPS_INVENTORY=" in out
    assert not d.exists()  # inventory, secrets and lab.json removed


def test_lab_up_moves_to_a_free_block_when_the_default_one_is_taken(cli, tmp_path, monkeypatch):
    import socket

    from canteen_ops.lab import control

    started = {}

    def fake_start(directory, argv, **kw):  # the block choice is what is tested, not the lab process
        started["argv"] = argv
        return {"pid": 1, "devices": 4, "control": "http://127.0.0.1:1", "inventory": str(directory / "inv.yaml")}

    monkeypatch.setattr(control, "start_background", fake_start)
    with socket.socket() as probe:  # two ports nothing else uses on this machine
        probe.bind(("127.0.0.1", 0))
        http_port = probe.getsockname()[1]
    rtsp_port = http_port + 1 if http_port < 65535 else http_port - 1
    holder = socket.socket()
    holder.bind(("127.0.1.3", http_port))  # someone holds one address of the default block
    holder.listen(1)
    try:
        args = ("lab", "up", "--schools", "2", "--cameras-per-school", "1", "--dir", tmp_path / "lab",
                "--http-port", http_port, "--rtsp-port", rtsp_port, "--no-warm")
        r = cli(*args)
        assert r.code == 0, r
        assert f"default address block is in use (127.0.1.3:{http_port} is taken)" in r.err
        assert "using the free block from 127.0.2.1" in r.err
        argv = started["argv"]
        assert argv[argv.index("--first-address") + 1] == "127.0.2.1"
        # An explicit --first-address is taken as given.
        r = cli(*args, "--first-address", "127.0.1.1")
        assert r.code == 0 and "in use" not in r.err
        assert started["argv"][started["argv"].index("--first-address") + 1] == "127.0.1.1"
    finally:
        holder.close()
    r = cli(*args)  # free again: the default block
    assert r.code == 0 and "in use" not in r.err
    assert started["argv"][started["argv"].index("--first-address") + 1] == "127.0.1.1"


def test_free_block_spans_whole_24s_for_big_fleets():
    import socket

    from canteen_ops.lab.control import free_block

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    holder = socket.socket()
    holder.bind(("127.0.201.20", port))
    holder.listen(1)
    try:
        # 300 devices from 127.0.200.1 reach into 127.0.201.x: the next block starts two /24s later
        assert free_block(300, (port,), "127.0.200.1") == ("127.0.202.1", f"127.0.201.20:{port}")
        assert free_block(10, (port,), "127.0.200.1") == ("127.0.200.1", None)
    finally:
        holder.close()
