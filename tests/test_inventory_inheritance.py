"""Values inherit defaults → group → school → device; policy merges per key; tags accumulate."""

from __future__ import annotations

import datetime as dt

import pytest

from canteen_ops.inventory.loader import load_inventory, parse_inventory
from canteen_ops.inventory.model import Policy
from tests.conftest import EXAMPLE
from tests.inventory_fixtures import BASE, write

LAYERED = """\
version: 1
credentials:
  a: {username: ua, password_env: PW_A}
  b: {username: ub, password_env: PW_B}
  c: {username: uc, password_env: PW_C}
  d: {username: ud, password_file: /secrets/d}
defaults:
  credentials: a
  timeout: 5
  rtsp_port: 10554
  policy: {clock_warn_s: 3, min_fps: 12}
  tags: [t-default]
  working_hours: {days: [mon, tue, wed, thu, fri], start: "08:00", end: 18:00, timezone: Asia/Shanghai}
groups:
  g:
    credentials: b
    timeout: 4
    port: 8000
    policy: {retention_warn_days: 20}
    tags: [t-group]
    working_hours: {start: 7:30}
schools:
  - id: s1
    name: 第一中学
    group: g
    credentials: c
    https: true
    policy: {clock_crit_s: 30}
    tags: [t-school, t-group]
    working_hours: {days: [mon, tue, wed, thu, fri, sat], end: "19:30"}
    devices:
      - {id: inherit-all, kind: camera, vendor: hikvision, host: 10.0.0.1}
      - id: override-all
        kind: camera
        vendor: dahua
        host: 10.0.0.2
        credentials: d
        port: 8443
        rtsp_port: 554
        https: false
        timeout: 9.5
        policy: {min_resolution: 1280x720, clock_warn_s: 1}
        tags: [t-device, t-default]
  - id: s2
    name: 第二小学
    devices:
      - {id: plain, kind: nvr, vendor: onvif, host: 10.0.1.1}
      - {id: tls, kind: camera, vendor: onvif, host: 10.0.1.2, https: true}
"""


@pytest.fixture
def inv():
    return parse_inventory(LAYERED, "layered.yaml")


def test_credentials_follow_the_nearest_layer(inv):
    assert inv.device("inherit-all").credentials.name == "c"  # school beats group and defaults
    assert inv.device("override-all").credentials.name == "d"
    assert inv.device("plain").credentials.name == "a"  # no group: defaults
    assert inv.device("plain").credentials.username == "ua"


def test_ports_and_https(inv):
    # group port 8000 is inherited even though the school turns https on: an explicit port always wins
    d = inv.device("inherit-all")
    assert (d.https, d.port, d.rtsp_port) == (True, 8000, 10554)
    assert d.base_url == "https://10.0.0.1:8000"
    o = inv.device("override-all")
    assert (o.https, o.port, o.rtsp_port) == (False, 8443, 554)
    # no port anywhere: 80 for http, 443 for https; rtsp from defaults
    assert (inv.device("plain").port, inv.device("plain").https) == (80, False)
    assert (inv.device("tls").port, inv.device("tls").https) == (443, True)
    assert inv.device("tls").base_url == "https://10.0.1.2:443"


def test_builtin_defaults_without_any_layer():
    inv = parse_inventory("version: 1\nschools:\n  - {id: s, name: S, devices: [{id: d, kind: camera, "
                          "vendor: onvif, host: '::1'}]}\n")
    d = inv.device("d")
    assert (d.port, d.rtsp_port, d.https, d.timeout, d.credentials, d.tags) == (80, 554, False, 5.0, None, ())
    assert d.policy == Policy()
    assert d.base_url == "http://[::1]:80"
    wh = inv.schools[0].working_hours
    assert (wh.days, wh.start, wh.end, wh.timezone) == ((0, 1, 2, 3, 4), dt.time(8), dt.time(18), "Asia/Shanghai")


def test_timeout(inv):
    assert inv.device("inherit-all").timeout == 4.0  # group
    assert inv.device("override-all").timeout == 9.5
    assert inv.device("plain").timeout == 5.0


def test_policy_merges_per_key(inv):
    p = inv.device("inherit-all").policy
    assert p.clock_warn_s == 3.0  # defaults
    assert p.min_fps == 12.0  # defaults
    assert p.retention_warn_days == 20.0  # group
    assert p.clock_crit_s == 30.0  # school
    assert p.min_resolution == "1920x1080"  # built-in default untouched
    o = inv.device("override-all").policy
    assert (o.clock_warn_s, o.min_resolution, o.retention_warn_days, o.clock_crit_s) == (1.0, "1280x720", 20.0, 30.0)
    assert o.min_width_height == (1280, 720)
    assert inv.schools[0].policy.clock_crit_s == 30.0
    assert inv.schools[0].policy.min_resolution == "1920x1080"  # device overrides do not leak upwards
    assert inv.device("plain").policy.retention_warn_days == 30.0  # other school: no group
    assert inv.policy.clock_warn_s == 3.0 and inv.policy.retention_warn_days == 30.0


def test_tags_accumulate_without_duplicates(inv):
    assert inv.device("inherit-all").tags == ("t-default", "t-group", "t-school")
    assert inv.device("override-all").tags == ("t-default", "t-group", "t-school", "t-device")
    assert inv.device("plain").tags == ("t-default",)
    assert inv.schools[0].tags == ("t-default", "t-group", "t-school")


def test_working_hours_merge_per_key_and_sexagesimal_times(inv):
    # defaults: end 18:00 written unquoted (YAML 1.1 reads it as the integer 1080); group: start 7:30
    # unquoted; school: days and a quoted end.
    wh = inv.schools[0].working_hours
    assert wh.days == (0, 1, 2, 3, 4, 5)
    assert wh.start == dt.time(7, 30)
    assert wh.end == dt.time(19, 30)
    assert wh.timezone == "Asia/Shanghai"
    wh2 = inv.schools[1].working_hours
    assert (wh2.start, wh2.end, wh2.days) == (dt.time(8), dt.time(18), (0, 1, 2, 3, 4))


def test_weekday_full_names_and_case():
    inv = parse_inventory("version: 1\nschools:\n  - id: s\n    name: S\n    working_hours: {days: [Monday, SAT, sun]}"
                          "\n    devices: []\n")
    assert inv.schools[0].working_hours.days == (0, 5, 6)


def test_device_fields(inv):
    inv = parse_inventory(BASE)
    d = inv.device("s1-cam-2")
    assert (d.school_id, d.kind, d.vendor, d.host, d.area, d.nvr, d.nvr_channel) == (
        "s1", "camera", "onvif", "cam2.s1.example", "专间", "s1-nvr", 2)
    assert d.line == 24
    assert inv.school("s1").name == "西城区实验小学"
    assert [s.id for s in inv.schools] == ["s1", "s2"]
    assert len(inv.devices) == 5


def test_dates_and_numeric_strings():
    inv = parse_inventory("version: 1\nschools:\n  - id: s\n    name: S\n    contacts: [{name: 王, phone: 13800010001}]\n"
                          "    devices:\n      - {id: d, kind: camera, vendor: onvif, host: h1, serial: 12345,"
                          " installed: 2023-08-20, warranty_until: '2026-08-19'}\n")
    d = inv.device("d")
    assert d.installed == dt.date(2023, 8, 20) and d.warranty_until == dt.date(2026, 8, 19)
    assert d.serial == "12345"
    assert inv.schools[0].contacts[0].phone == "13800010001"


def test_credentials_resolve(monkeypatch, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-from-file\n")
    text = BASE.replace("/run/secrets/dahua", str(secret))
    inv = parse_inventory(text)
    monkeypatch.setenv("HIK_PW", "s3cret-from-env")
    assert inv.device("s1-cam-1").credentials.resolve() == "s3cret-from-env"
    assert inv.device("s2-cam-1").credentials.resolve() == "s3cret-from-file"  # trailing newline stripped
    assert "s3cret" not in repr(inv.device("s1-cam-1").credentials)


def test_credentials_are_read_once_per_loaded_inventory(monkeypatch, tmp_path):
    """A run reads each password once (not once per device); the next run (a new load) reads it again."""
    from canteen_ops import redact

    secret = tmp_path / "pw"
    secret.write_text("first-Pw-1\n")
    text = BASE.replace("/run/secrets/dahua", str(secret))
    inv = parse_inventory(text)
    creds = inv.device("s2-cam-1").credentials
    assert creds.resolve() == "first-Pw-1"
    secret.write_text("second-Pw-2\n")
    assert creds.resolve() == "first-Pw-1"  # same run: not read again
    assert "Pw" not in repr(creds) and creds == parse_inventory(text).device("s2-cam-1").credentials
    monkeypatch.setattr(redact, "_KNOWN", set())
    creds.resolve()
    assert "first-Pw-1" in redact._KNOWN  # still registered for masking on every resolve
    assert parse_inventory(text).device("s2-cam-1").credentials.resolve() == "second-Pw-2"


def test_credentials_unavailable_is_clear(monkeypatch):
    from canteen_ops.inventory.model import SecretUnavailable

    inv = parse_inventory(BASE)
    monkeypatch.delenv("HIK_PW", raising=False)
    with pytest.raises(SecretUnavailable, match="HIK_PW is not set"):
        inv.device("s1-cam-1").credentials.resolve()
    with pytest.raises(SecretUnavailable, match="cannot read password_file /run/secrets/dahua"):
        inv.device("s2-cam-1").credentials.resolve()


def test_yaml_anchors_and_merge_keys():
    text = """\
version: 1
schools:
  - id: s
    name: S
    devices:
      - &cam {id: c1, kind: camera, vendor: hikvision, host: 10.0.0.1, area: 专间}
      - {<<: *cam, id: c2, host: 10.0.0.2}
"""
    inv = parse_inventory(text)
    assert [(d.id, d.host, d.area) for d in inv.devices] == [("c1", "10.0.0.1", "专间"), ("c2", "10.0.0.2", "专间")]


def test_example_inventory_is_valid_and_realistic():
    inv = load_inventory(EXAMPLE)
    assert len(inv.schools) == 2
    for s in inv.schools:
        nvrs = [d for d in s.devices if d.kind == "nvr"]
        cams = [d for d in s.devices if d.kind == "camera"]
        assert len(nvrs) == 1 and 6 <= len(cams) <= 8
        assert all(c.nvr == nvrs[0].id for c in cams)
    assert all(c.password is None for c in inv.credentials.values())  # no plaintext in the shipped example
    assert inv.warnings == ()
