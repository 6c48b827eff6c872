"""The inventory's transport settings: auth (Basic over plain HTTP), tls, tls_ca, tls_legacy — inherited from
defaults, group and school like the other settings, refused with file:line when wrong."""

from __future__ import annotations

from canteen_ops.inventory.loader import load_inventory
from tests.inventory_fixtures import assert_problem, one_problem, write

HEAD = """\
version: 1
credentials:
  hik: {username: admin, password_env: HIK_PW}
defaults:
  credentials: hik
  tls: pin
groups:
  old-dahua:
    auth: basic
    tls_legacy: true
    https: true
schools:
  - id: s1
    name: 第一小学
    devices:
      - {id: cam-a, kind: camera, vendor: hikvision, host: 10.0.1.21}
      - {id: cam-b, kind: camera, vendor: hikvision, host: 10.0.1.22, https: true, tls: verify, tls_ca: ca.pem}
  - id: s2
    name: 第二小学
    group: old-dahua
    devices:
      - {id: nvr-c, kind: nvr, vendor: dahua, host: 10.0.2.10, tls: insecure}
"""


def test_transport_settings_are_inherited(tmp_path):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    inv = load_inventory(write(tmp_path, HEAD))
    a, b, c = (inv.device(i) for i in ("cam-a", "cam-b", "nvr-c"))
    assert (a.auth, a.tls, a.tls_ca, a.tls_legacy) == (None, "pin", None, False)
    assert (b.tls, b.tls_ca) == ("verify", str(tmp_path / "ca.pem"))  # relative to the inventory file
    assert (c.auth, c.tls, c.tls_legacy, c.https, c.port) == ("basic", "insecure", True, True, 443)


def test_defaults_are_todays_behaviour(tmp_path):
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    inv = load_inventory(write(tmp_path, HEAD.replace("  tls: pin\n", "")))
    dev = inv.device("cam-a")
    assert (dev.auth, dev.tls, dev.tls_ca, dev.tls_legacy) == (None, "insecure", None, False)


def test_unknown_auth_value(tmp_path):
    text = HEAD.replace("    auth: basic", "    auth: ntlm")
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    assert_problem(one_problem(tmp_path, text), text, "ntlm", "groups.old-dahua.auth",
                   "auth must be one of digest, basic, got 'ntlm'")


def test_unknown_tls_mode(tmp_path):
    text = HEAD.replace("tls: insecure", "tls: none")
    (tmp_path / "ca.pem").write_text("x", encoding="utf-8")
    assert_problem(one_problem(tmp_path, text), text, "none", "schools[1].devices[0].tls",
                   "tls must be one of insecure, verify, pin, got 'none'")


def test_missing_ca_bundle_and_a_legacy_flag_that_is_not_a_boolean(tmp_path):
    text = HEAD.replace("tls_legacy: true", "tls_legacy: sometimes")
    from canteen_ops.errors import InvalidFile

    try:
        load_inventory(write(tmp_path, text))
    except InvalidFile as exc:
        messages = {p.path: (p.line, p.message) for p in exc.problems}
    else:
        raise AssertionError("inventory unexpectedly valid")
    lines = text.splitlines()
    line, message = messages["schools[0].devices[1].tls_ca"]
    assert "CA bundle 'ca.pem' not found" in message and "tls_ca: ca.pem" in lines[line - 1]
    line, message = messages["groups.old-dahua.tls_legacy"]
    assert "expected true or false" in message and "sometimes" in lines[line - 1]
