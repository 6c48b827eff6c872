"""`inventory set` / `inventory add-device`: comments and layout kept, validated before writing, atomic."""

from __future__ import annotations

import os

import pytest

from canteen_ops.inventory.loader import load_inventory
from tests.conftest import EXAMPLE


@pytest.fixture
def inv(tmp_path):
    p = tmp_path / "inventory.yaml"
    p.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    os.chmod(p, 0o600)
    return p


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b) if x != y]


def test_set_replaces_a_camera_keeping_everything_else(cli, inv):
    before = inv.read_text(encoding="utf-8")
    r = cli("-i", inv, "inventory", "set", "xc-cam-02", "serial=0123", "model=DS-2CD2387G2-LU", "tags=cold-room,new",
            "installed=2026-12-04")
    assert r.code == 0, r
    assert "model: DS-2CD2386G2-IU → DS-2CD2387G2-LU" in r.out
    after = inv.read_text(encoding="utf-8")
    [(old, new)] = _changed_lines(before, after)  # one line changed; every comment and other line is as it was
    assert old.startswith("      - {id: xc-cam-02,") and new.startswith("      - {id: xc-cam-02,")
    assert "serial: '0123'" in new and "tags: [cold-room, new]" in new
    d = load_inventory(inv).device("xc-cam-02")
    assert d.serial == "0123" and d.model == "DS-2CD2387G2-LU" and set(d.tags) >= {"cold-room", "new"}
    assert str(d.installed) == "2026-12-04"
    assert os.stat(inv).st_mode & 0o777 == 0o600  # the file's mode is kept
    assert [p.name for p in inv.parent.iterdir() if p.name.startswith(".inventory")] == []  # no temp file left
    # KEY= removes a key
    assert cli("-i", inv, "inventory", "set", "xc-cam-02", "serial=").code == 0
    assert load_inventory(inv).device("xc-cam-02").serial is None


def test_add_device_by_school_name_in_the_neighbours_style(cli, inv):
    before = inv.read_text(encoding="utf-8")
    r = cli("-i", inv, "inventory", "add-device", "海淀区育才中学", "id=hd-cam-08", "kind=camera", "vendor=dahua",
            "host=10.13.1.28", "area=仓库", "nvr=hd-nvr-01", "nvr_channel=8")
    assert r.code == 0, r
    after = inv.read_text(encoding="utf-8")
    assert after.startswith(before.split("      - {id: hd-cam-07")[0])
    line = next(ln for ln in after.splitlines() if "hd-cam-08" in ln)
    assert line == ("      - {id: hd-cam-08, kind: camera, vendor: dahua, host: 10.13.1.28, area: 仓库, nvr: hd-nvr-01, "
                    "nvr_channel: 8}")
    d = load_inventory(inv).device("hd-cam-08")
    assert d.school_id == "hd-yucai-zx" and d.nvr_channel == 8


@pytest.mark.parametrize("args, code, message", [
    (["set", "xc-cam-02", "port=abc"], 65, "port"),
    (["set", "xc-cam-02", "nvr=ghost-nvr"], 65, "ghost-nvr"),
    (["set", "xc-cam-02", "colour=red"], 65, "colour"),
    (["set", "xc-cam-02", "host=http://10.0.0.1"], 65, "host"),
    (["add-device", "xc-shiyan-xx", "id=xc-cam-01", "kind=camera", "vendor=hikvision", "host=10.1.1.1"], 65,
     "duplicate device id"),
    (["add-device", "xc-shiyan-xx", "id=xc-cam-09", "kind=camera"], 65, "host"),
    (["set", "ghost", "serial=1"], 66, "ghost"),
    (["add-device", "no-such-school", "id=x"], 66, "no-such-school"),
    (["set", "xc-cam-02", "serial"], 64, "KEY=VALUE"),
])
def test_invalid_changes_leave_the_file_untouched(cli, inv, args, code, message):
    before = inv.read_bytes()
    r = cli("-i", inv, "inventory", *args)
    assert r.code == code, r
    assert message in r.err
    assert inv.read_bytes() == before


def test_a_plaintext_password_is_refused_and_never_echoed(cli, inv):
    before = inv.read_bytes()
    for arg in ("password=S3cret-Pw9", "credentials.password=S3cret-Pw9", "Password=S3cret-Pw9"):
        r = cli("-i", inv, "inventory", "set", "xc-cam-02", arg)
        assert r.code == 64 and "password_env" in r.err, r
        assert "S3cret-Pw9" not in r.out + r.err
    r = cli("-i", inv, "inventory", "add-device", "xc-shiyan-xx", "id=x1", "kind=camera", "vendor=onvif",
            "host=10.1.1.1", "password=S3cret-Pw9")
    assert r.code == 64 and "S3cret-Pw9" not in r.out + r.err
    assert inv.read_bytes() == before


def test_an_invalid_file_is_not_edited(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nschools: {}\n", encoding="utf-8")
    r = cli("-i", bad, "inventory", "set", "x", "serial=1")
    assert r.code == 65
    assert bad.read_text(encoding="utf-8") == "version: 1\nschools: {}\n"


def test_block_style_file_keeps_comments_and_indentation(cli, tmp_path):
    text = ("# 测试\nversion: 1\ncredentials:\n  hik:\n    username: admin\n    password_env: HIK_PW   # 密码在环境变量\n"
            "schools:\n- id: s1\n  name: 一小\n  devices:\n  # the NVR\n  - id: s1-nvr\n    kind: nvr\n"
            "    vendor: hikvision\n    host: 10.0.0.1\n    credentials: hik\n  - id: s1-cam\n    kind: camera\n"
            "    vendor: hikvision\n    host: 10.0.0.2   # 东\n    credentials: hik\n")
    p = tmp_path / "inventory.yaml"
    p.write_text(text, encoding="utf-8")
    assert cli("-i", p, "inventory", "set", "s1-cam", "host=10.0.0.3", "serial=X1").code == 0
    assert cli("-i", p, "inventory", "add-device", "s1", "id=s1-cam2", "kind=camera", "vendor=hikvision",
               "host=10.0.0.4", "credentials=hik").code == 0
    assert p.read_text(encoding="utf-8") == text.replace("10.0.0.2   # 东", "10.0.0.3   # 东") + (
        "    serial: X1\n  - id: s1-cam2\n    kind: camera\n    vendor: hikvision\n    host: 10.0.0.4\n"
        "    credentials: hik\n")
