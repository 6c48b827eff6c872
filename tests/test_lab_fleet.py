"""Fleet planning, the generated inventory and secrets, fault specs, and the lab's RTSP streams (PyAV client)."""

from __future__ import annotations

import ipaddress
import os
import stat

import httpx
import pytest
from defusedxml import ElementTree as DET

from canteen_ops.inventory.loader import load_inventory
from canteen_ops.lab.fleet import (AREAS, FleetError, apply_fault_specs, build_fleet, parse_fault_specs,
                                   write_inventory)
from canteen_ops.media.probe import probe_stream


# --- planning -------------------------------------------------------------------------------------------------------
def test_fleet_shape_vendors_addresses_and_coverage():
    fleet = build_fleet(4, 7, ("hikvision", "dahua", "onvif"), first_address="127.0.1.1", seed=3)
    assert len(fleet.schools) == 4 and len(fleet.devices) == 4 * 8
    vendors = [s.devices[0].vendor for s in fleet.schools]
    assert vendors == ["hikvision", "dahua", "onvif", "hikvision"]  # round robin per school
    for school in fleet.schools:
        nvr, cams = school.devices[0], school.devices[1:]
        assert nvr.kind == "nvr" and all(c.kind == "camera" for c in cams)
        assert {school.areas[c.id] for c in cams} == set(AREAS)  # complete coverage with 7 cameras
        assert [ch.ip for ch in nvr.channels] == [c.host for c in cams]  # NVR channels fed by the cameras
        assert [school.nvr_channel[c.id] for c in cams] == [(nvr.id, i) for i in range(1, 8)]
        if nvr.vendor != "onvif":  # mixed estates: one ONVIF camera per Hikvision / Dahua school
            assert [c.vendor for c in cams].count("onvif") == 1 and cams[-1].vendor == "onvif"
    hosts = [ipaddress.IPv4Address(d.host) for d in fleet.devices]
    assert hosts[0] == ipaddress.IPv4Address("127.0.1.1") and len(set(hosts)) == len(hosts)
    assert all(h.is_loopback and h.packed[3] not in (0, 255) for h in hosts)
    assert all(d.http_port == 8080 and d.rtsp_port == 8554 for d in fleet.devices)
    assert len({d.serial for d in fleet.devices}) == len(fleet.devices)
    hik_nvr = fleet.schools[0].devices[0]
    assert hik_nvr.channels[1].rtsp_path == "/Streaming/Channels/201"
    assert fleet.schools[1].devices[0].channels[0].rtsp_path == "/cam/realmonitor?channel=1&subtype=0"


def test_big_fleet_skips_broadcast_like_addresses_and_names_stay_unique():
    fleet = build_fleet(60, 4, ("hikvision", "dahua"), seed=1)
    assert len(fleet.devices) == 300
    assert len({s.id for s in fleet.schools}) == 60 and len({s.name for s in fleet.schools}) == 60
    assert all(ipaddress.IPv4Address(d.host).packed[3] not in (0, 255) for d in fleet.devices)


def test_passwords_are_random_per_lab_and_per_vendor():
    a = build_fleet(2, 2, ("hikvision", "dahua"))
    b = build_fleet(2, 2, ("hikvision", "dahua"))
    assert a.credentials["lab-hikvision"][1] != b.credentials["lab-hikvision"][1]
    assert a.credentials["lab-hikvision"][1] != a.credentials["lab-dahua"][1]
    assert all(len(pw) >= 16 for _u, pw in a.credentials.values())


@pytest.mark.parametrize("kwargs, message", [
    ({"schools": 0}, "at least one school"),
    ({"vendors": ("hikvision", "axis")}, "unknown vendor"),
    ({"cameras_per_school": 65}, "at most 64"),
    ({"first_address": "10.0.0.1"}, "not a loopback address"),
    ({"first_address": "localhost"}, "not an IPv4 address"),
])
def test_bad_fleet_parameters(kwargs, message):
    args = {"schools": 1, "cameras_per_school": 2, "vendors": ("hikvision",)} | kwargs
    with pytest.raises(FleetError, match=message):
        build_fleet(**args)


# --- inventory and secrets ------------------------------------------------------------------------------------------------
def test_inventory_validates_and_references_password_files(tmp_path):
    fleet = build_fleet(3, 7, ("hikvision", "dahua", "onvif"), seed=5)
    path = write_inventory(fleet, tmp_path / "lab")
    inv = load_inventory(path)
    assert len(inv.schools) == 3 and len(inv.devices) == 24 and not inv.warnings
    text = path.read_text(encoding="utf-8")
    for _user, pw in fleet.credentials.values():
        assert pw not in text  # never plaintext
    assert "password:" not in text and "第一实验小学" in text
    secrets_dir = tmp_path / "lab" / "secrets"
    assert stat.S_IMODE(os.stat(secrets_dir).st_mode) == 0o700
    for d, state in zip(inv.devices, fleet.devices):
        assert (d.id, d.host, d.port, d.vendor, d.kind, d.serial) == (
            state.id, state.host, state.http_port, state.vendor, state.kind, state.serial)
        assert d.credentials.password_file and stat.S_IMODE(os.stat(d.credentials.password_file).st_mode) == 0o600
        assert (d.credentials.username, d.credentials.resolve()) == (state.username, state.password)
    cam = inv.device("s001-cam03")
    assert (cam.nvr, cam.nvr_channel, cam.area) == ("s001-nvr", 3, "专间")
    assert set(inv.school("s001-diyi-shiyan-xx").policy.required_areas) <= {d.area for d in inv.devices}


# --- fault specs --------------------------------------------------------------------------------------------------------
def test_fault_specs_with_globs():
    fleet = build_fleet(2, 2, ("hikvision", "dahua"))
    applied = apply_fault_specs(fleet, "s001-cam01:offline, s002-*:clock-drift=+300,s001-nvr:channel-offline=2")
    assert ("s001-cam01", "offline", None) in applied
    assert {d for d, f, v in applied if f == "clock-drift"} == {"s002-nvr", "s002-cam01", "s002-cam02"}
    assert fleet.device("s002-cam02").faults == {"clock-drift": "+300"}
    assert fleet.device("s001-nvr").fault_value("channel-offline", 0) == 2
    assert parse_fault_specs("") == []


@pytest.mark.parametrize("spec, message", [
    ("s001-cam01", "DEVICE:FAULT"),
    ("s001-cam01:melted", "unknown fault"),
    ("nosuch-*:offline", "no device matches"),
    (":offline", "DEVICE:FAULT"),
])
def test_bad_fault_specs(spec, message):
    with pytest.raises(FleetError, match=message):
        apply_fault_specs(build_fleet(1, 1, ("hikvision",)), spec)


def test_set_setting_validation():
    d = build_fleet(1, 1, ("hikvision",)).device("s001-cam01")
    d.set_setting("record_mode", "motion")
    d.set_setting("channel.1.width", "1280")
    assert d.record_mode == "motion" and d.channels[0].width == 1280
    for key, value in (("record_mode", "sometimes"), ("channel.9.width", "1"), ("channel.1.width", "wide"),
                       ("colour", "red"), ("auth", "ntlm")):
        with pytest.raises(ValueError):
            d.set_setting(key, value)


# --- RTSP streams of the running lab, read with PyAV ----------------------------------------------------------------------
def _small(lab_faults, device_id: str, channels=(1,)):
    """Stream at 320x180 for a quick encode; the device then advertises that size too."""
    for ch in channels:
        lab_faults.setting(device_id, f"channel.{ch}.width", "320")
        lab_faults.setting(device_id, f"channel.{ch}.height", "180")


def _probe(dev, path, **kw):
    return probe_stream(f"rtsp://{dev.host}:{dev.rtsp_port}{path}", username=dev.username,
                        password=dev.effective_password if kw.pop("right", True) else "wrong",
                        timeout=kw.pop("timeout", 15), frames=kw.pop("frames", 3))


def test_camera_stream_matches_what_the_device_advertises(lab, lab_faults):
    cam = lab.first("hikvision", "camera")
    _small(lab_faults, cam.id)
    user, pw = lab.credentials(cam.id)
    with httpx.Client(auth=httpx.DigestAuth(user, pw), timeout=5, verify=False) as c:
        root = DET.fromstring(c.get(lab.url(cam.id) + "/ISAPI/Streaming/channels/101").content)
    adv = {el.tag.rsplit("}", 1)[-1]: el.text for el in root.iter()}
    p = _probe(cam, "/Streaming/Channels/101")
    assert p.ok, p
    assert (p.codec, p.width, p.height) == ("h264", 320, 180)
    assert (str(p.width), str(p.height)) == (adv["videoResolutionWidth"], adv["videoResolutionHeight"])
    assert len(p.frames) >= 3


def test_stream_faults_reach_the_rtsp_stream(lab, lab_faults):
    cam = lab.first("dahua", "camera")
    path = cam.channels[0].rtsp_path
    _small(lab_faults, cam.id)
    lab_faults.set(cam.id, "black")
    p = _probe(cam, path)
    assert p.ok and max(float(f.mean()) for f in p.frames) < 20  # a black picture
    lab_faults.clear(cam.id, "black")
    lab_faults.set(cam.id, "no-stream")
    p = _probe(cam, path, timeout=2)
    assert not p.ok and p.error == "no_frames"
    lab_faults.clear(cam.id, "no-stream")
    lab_faults.set(cam.id, "wrong-password")
    p = _probe(cam, path, right=False, timeout=5)
    assert not p.ok and p.error == "unauthorized"
    lab_faults.clear(cam.id, "wrong-password")
    lab_faults.set(cam.id, "offline")
    p = _probe(cam, path, timeout=3)
    assert not p.ok and p.error == "refused"


def test_nvr_channels_stream_and_follow_their_cameras(lab, lab_faults):
    nvr = lab.first("hikvision", "nvr")
    cam = next(d for d in lab.fleet.devices if d.host == nvr.channels[1].ip)
    _small(lab_faults, nvr.id, channels=(1, 2))
    p = _probe(nvr, "/Streaming/Channels/101")
    assert p.ok and (p.width, p.height) == (320, 180)
    lab_faults.set(nvr.id, "channel-offline", "1")
    p = _probe(nvr, "/Streaming/Channels/101", timeout=2)
    assert not p.ok and p.error == "no_frames"  # video loss on that channel
    lab_faults.touch(cam.id)
    lab_faults.set(cam.id, "offline")  # the camera behind channel 2 disappears
    user, pw = lab.credentials(nvr.id)
    with httpx.Client(auth=httpx.DigestAuth(user, pw), timeout=5, verify=False) as c:
        root = DET.fromstring(c.get(lab.url(nvr.id) + "/ISAPI/ContentMgmt/InputProxy/channels/2/status").content)
    assert next(el.text for el in root.iter() if el.tag.endswith("online")) == "false"
    p = _probe(nvr, "/Streaming/Channels/201", timeout=2)
    assert not p.ok and p.error == "no_frames"
    lab_faults.clear(cam.id, "offline")
    with httpx.Client(auth=httpx.DigestAuth(user, pw), timeout=5, verify=False) as c:
        root = DET.fromstring(c.get(lab.url(nvr.id) + "/ISAPI/ContentMgmt/InputProxy/channels/2/status").content)
    assert next(el.text for el in root.iter() if el.tag.endswith("online")) == "true"


def test_rtsp_shares_the_device_account_and_its_lock(lab, lab_faults):
    cam = lab.first("hikvision", "camera")
    lab_faults.set(cam.id, "lock-after", "2")
    p = _probe(cam, "/Streaming/Channels/101", right=False, timeout=5)
    assert p.error == "unauthorized" and cam.failed_logins == 1  # an RTSP failure counts like an HTTP one
    p = _probe(cam, "/Streaming/Channels/101", right=False, timeout=5)
    assert cam.is_locked()
    p = _probe(cam, "/Streaming/Channels/101", timeout=5)
    assert not p.ok and p.error == "unauthorized"  # locked: the right password is refused too
    user, pw = lab.credentials(cam.id)
    r = httpx.get(lab.url(cam.id) + "/ISAPI/Security/userCheck", auth=httpx.DigestAuth(user, pw), timeout=5,
                  verify=False)
    assert r.status_code == 401 and b"<lockStatus>lock</lockStatus>" in r.content


def test_camera_sub_stream(lab, lab_faults):
    cam = lab.first("hikvision", "camera")
    lab_faults.touch(cam.id)
    p = _probe(cam, "/Streaming/Channels/102")
    assert p.ok and (p.width, p.height) == (640, 360)
