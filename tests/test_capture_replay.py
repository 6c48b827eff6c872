"""`device capture` on lab devices, then the capture replayed: masked, and `check` reads the same facts from both."""

from __future__ import annotations

import json
import re

import pytest

from canteen_ops.checks.run import run_checks
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.lab.replay import load
from tests.replay_support import replayed

NAMES = ["login", "facts", "clock", "storage", "channels"]


def _by_check(results):
    return {r.check: r for r in results}


@pytest.mark.parametrize("vendor", ["hikvision", "dahua", "onvif"])
def test_capture_masks_and_replays_the_same_device(lab, lab_env, cli, tmp_path, vendor):
    st = lab.first(vendor, "nvr")
    out = tmp_path / f"{st.id}.json"
    r = cli("device", "capture", st.id, "--output", out, "--skip", "stream,picture")
    assert r.code == 0, r
    text = out.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["format"] == "canteen-ops-capture/1" and doc["exchanges"]
    # Nothing that identifies the site or logs in.
    secrets = [st.serial, st.host, st.password, st.mac, st.mac.upper(), st.mac.replace(":", "-")]
    secrets += [ch.name for ch in st.channels if ch.name]
    for s in secrets:
        assert s not in text, f"{s!r} left in the capture"
    assert f'"{st.username}"' not in text and f">{st.username}<" not in text and f"={st.username}\\r" not in text
    assert "authorization" not in text.lower().replace("notauthorized", "")
    assert not re.search(r"(?<![\d.])127\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.])", text)  # no lab address at all
    assert doc["masked"].get("serial") and doc["masked"].get("ip")
    # Only what `check` reads: no write and no config export.
    assert all(e["request"].split()[0] in ("GET", "POST") for e in doc["exchanges"])
    assert not [e for e in doc["exchanges"] if "configurationData" in e["request"] or "Config.backup" in e["request"]
                or "GetSystemBackup" in e["request"] or e["request"].startswith("PUT")]

    # The same check against the lab device and against its replay.
    inv = load_inventory(lab.inventory)
    lab_device = next(d for d in inv.devices if d.id == st.id)
    live = _by_check(run_checks([lab_device], inv, NAMES, progress=False).results)
    rec = load(out)
    assert rec.vendor == vendor and rec.model == st.model
    with replayed(rec) as (_rec, server, device):
        device = type(device)(**{**device.__dict__, "id": st.id, "kind": st.kind, "school_id": lab_device.school_id})
        again = _by_check(run_checks([device], inv, NAMES, progress=False).results)
        assert not server.replayer.unanswered, server.replayer.unanswered
    for key in ("model", "firmware", "device_type"):
        assert again["facts"].data.get(key) == live["facts"].data.get(key), key
    assert again["facts"].data.get("serial", "").startswith("MASKED-SERIAL-")
    assert again["channels"].data.get("total") == live["channels"].data.get("total")
    assert again["channels"].status == live["channels"].status
    assert again["storage"].status == live["storage"].status
    assert len(again["storage"].data.get("disks") or []) == len(live["storage"].data.get("disks") or [])
    # The replayed clock is the one captured: plausible (within minutes of the capture), not the lab's "now".
    drift = again["clock"].data.get("drift_s")
    assert drift is not None and abs(drift) < 600, again["clock"]


def test_capture_directory_gets_one_file_per_selected_device(lab, lab_env, cli, tmp_path):
    out = tmp_path / "captures"
    r = cli("device", "capture", "--vendor", "dahua", "--kind", "camera", "--output", out, "--only", "facts")
    assert r.code == 0, r
    files = sorted(p.name for p in out.iterdir())
    cams = sorted(f"{d.id}.capture.json" for d in lab.fleet.devices if d.vendor == "dahua" and d.kind == "camera")
    assert files == cams
    for f in out.iterdir():
        assert load(f).exchanges


def test_capture_of_an_unknown_device_is_a_usage_error(lab, lab_env, cli, tmp_path):
    r = cli("device", "capture", "no-such-device", "--output", tmp_path / "x.json")
    assert r.code == 64 and not (tmp_path / "x.json").exists()


def test_lab_up_replay_serves_recorded_devices_next_to_simulated_ones(cli, lab, lab_env, tmp_path):
    """`lab up --replay` with a corpus model folder and a fresh capture file: both join the inventory (school
    `replay`) and `check` reads them like any device."""
    import random

    from canteen_ops.lab.control import pid_alive
    from tests.replay_support import CORPUS

    st = lab.first("dahua", "nvr")
    cap = tmp_path / "dahua-nvr.json"
    assert cli("device", "capture", st.id, "--output", cap, "--only", "facts,channels").code == 0
    d = tmp_path / "replaylab"
    folder = CORPUS / "hikvision" / "DS-7608NXI-I2"
    block = f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}.1"
    r = cli("lab", "up", "--dir", d, "--schools", "1", "--cameras-per-school", "1", "--vendors", "onvif",
            "--first-address", block, "--no-warm", "--replay", f"{folder},{cap}")
    assert r.code == 0, r
    info = json.loads((d / "lab.json").read_text())
    try:
        assert len(info["replayed"]) == 2 and info["devices"] == 4 and "school replay" in r.out
        inv_path = d / "inventory.yaml"
        assert cli("-i", inv_path, "inventory", "validate").code == 0
        inv = load_inventory(inv_path)
        replayed = [x for x in inv.devices if x.school_id == "replay"]
        assert [x.vendor for x in replayed] == ["hikvision", "dahua"]
        assert all(x.host.startswith(block.rsplit(".", 1)[0]) for x in replayed)
        r = cli("-i", inv_path, "check", "--school", "replay", "--only", "facts", "--json")
        facts = {json.loads(line)["device_id"]: json.loads(line) for line in r.out.splitlines() if line.strip()}
        hik, dah = (facts[x.id]["data"] for x in replayed)
        assert hik["model"] == "DS-7608NXI-I2/8P/S" and hik["firmware"] == "V4.62.210 build 230619"
        assert dah["model"] == st.model and dah["serial"].startswith("MASKED-SERIAL-")
        r = cli("lab", "status", "--dir", d, "--json")
        shown = json.loads(r.out)["replayed"]
        assert [x["id"] for x in shown] == info["replayed"] and all(x["answered"] > 0 for x in shown)
    finally:
        assert cli("lab", "down", "--dir", d).code == 0
    assert not pid_alive(info["pid"]) and not d.exists()


def test_lab_up_replay_rejects_a_bad_file_before_starting(cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    r = cli("lab", "up", "--dir", tmp_path / "l", "--no-warm", "--replay", str(bad))
    assert r.code == 65 and "bad.json" in r.err and not (tmp_path / "l" / "lab.json").exists()
    r = cli("lab", "up", "--dir", tmp_path / "l", "--no-warm", "--replay", str(tmp_path / "missing.json"))
    assert r.code == 66


def test_capture_of_an_offline_device_writes_nothing_and_says_why(lab, lab_env, lab_faults, cli, tmp_path):
    st = lab.first("hikvision", "camera")
    lab_faults.set(st.id, "offline")
    out = tmp_path / "x.json"
    r = cli("device", "capture", st.id, "--output", out, "--only", "reachable,facts", "--deadline", "5")
    assert r.code == 69 and "nothing recorded" in r.err and not out.exists()


@pytest.mark.parametrize("vendor", ["hikvision", "dahua", "onvif"])
def test_capture_sends_exactly_what_check_sends(lab, lab_env, cli, tmp_path, vendor):
    """The device sees the same number of requests from `device capture` as from `check` with the same checks."""
    st = lab.first(vendor, "nvr")
    checks = "reachable,login,facts,clock,ntp,storage,channels"
    served = lambda: lab.thread.service.http.requests  # noqa: E731 - answered requests, the lab's own count
    before = served()
    assert cli("check", "-d", st.id, "--only", checks).code in (0, 1, 2, 3)
    by_check = served() - before
    before = served()
    assert cli("device", "capture", st.id, "--output", tmp_path / "c.json", "--only", checks).code == 0
    by_capture = served() - before
    assert by_capture == by_check > 0
    doc = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert 0 < len(doc["exchanges"]) <= by_capture  # 401 probes are answered but not recorded
