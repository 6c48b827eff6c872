"""TLS per device (drivers/transport.py TlsPolicy): verify against a CA bundle, pin on first use (a changed
certificate is refused before anything is sent, CRIT in `check` until `device accept-cert`), insecure, and the
legacy context only for devices marked tls_legacy. Real TLS servers on 127.0.0.1 with the certificates in
tests/fixtures/tls ("device", and "replaced": the same device after a reset)."""

from __future__ import annotations

import textwrap

import pytest

from canteen_ops.drivers.base import ProtocolError
from canteen_ops.drivers.hikvision import HikvisionDriver
from canteen_ops.drivers.transport import CertChanged, device_certificate
from canteen_ops.store.log import MaintenanceLog

from .fake_digest import TLS_DIR, FakeDevice, cert_fingerprint
from .test_http_auth import device

DEVICE_FP = cert_fingerprint("device")
REPLACED_FP = cert_fingerprint("replaced")


def hik_tls(port: int, pin: str | None = None, **extra) -> HikvisionDriver:
    return HikvisionDriver(device(port, https=True, **extra), "secret", tls_pin=pin)


def test_pin_first_use_then_match():
    with FakeDevice(tls=True) as fake:
        with hik_tls(fake.port, tls="pin") as drv:
            drv.login()
            t = drv.device_transport
            assert (t.fingerprint, t.first_use) == (DEVICE_FP, True)  # to be recorded by the caller
        with hik_tls(fake.port, DEVICE_FP, tls="pin") as drv:
            drv.login()
            assert drv.device_transport.first_use is False
        assert fake.auth_failures == 0


def test_pin_changed_certificate_is_refused_before_anything_is_sent():
    with FakeDevice(tls=True, cert="replaced") as fake:
        with hik_tls(fake.port, DEVICE_FP, tls="pin") as drv:
            with pytest.raises(CertChanged, match="certificate changed") as exc:
                drv.login()
            assert exc.value.fingerprint == REPLACED_FP and DEVICE_FP in str(exc.value)
        assert fake.requests == 0  # not even the unauthenticated probe


def test_insecure_accepts_any_certificate_and_pins_nothing():
    with FakeDevice(tls=True, cert="replaced") as fake, hik_tls(fake.port, DEVICE_FP) as drv:
        drv.login()  # tls: insecure (the default) ignores the pin
        assert drv.device_transport.first_use is False


def test_verify_with_a_ca_bundle_and_without():
    with FakeDevice(tls=True) as fake:
        with hik_tls(fake.port, tls="verify", tls_ca=str(TLS_DIR / "device-cert.pem")) as drv:
            drv.login()
        with hik_tls(fake.port, tls="verify") as drv:  # the system's CAs do not know a camera's own certificate
            with pytest.raises(ProtocolError, match="TLS handshake failed"):
                drv.login()
        with hik_tls(fake.port, tls="verify", tls_ca=str(TLS_DIR / "replaced-cert.pem")) as drv:
            with pytest.raises(ProtocolError, match="TLS handshake failed"):
                drv.login()
        assert fake.auth_attempts == 1


def test_a_legacy_only_server_is_refused_by_default_and_reached_with_tls_legacy():
    with FakeDevice(tls=True, legacy_only=True) as fake:
        with hik_tls(fake.port) as drv:
            with pytest.raises(ProtocolError, match="TLS handshake failed"):
                drv.login()
        with hik_tls(fake.port, tls_legacy=True) as drv:
            drv.login()
            assert drv.facts().model == "X"
        assert fake.auth_failures == 0


def test_device_certificate_reads_the_fingerprint_without_sending_anything():
    with FakeDevice(tls=True, cert="replaced") as fake:
        assert device_certificate(device(fake.port, https=True)) == REPLACED_FP
        assert fake.requests == 0


# --- end to end: check, CRIT, accept-cert ----------------------------------------------------------------------
INVENTORY = """\
version: 1
credentials:
  hik: {{username: admin, password_env: TLS_TEST_PW}}
defaults:
  credentials: hik
  https: true
  tls: pin
schools:
  - id: s1
    name: 第一小学
    working_hours: {{days: [mon], start: "08:00", end: "18:00"}}
    devices:
      - {{id: cam-1, kind: camera, vendor: hikvision, host: 127.0.0.1, port: {port}}}
"""


def tls_results(tmp_path):
    log = MaintenanceLog.open(tmp_path / "log.db")
    try:
        return [(r["status"], r["data"].get("fingerprint"), r["data"].get("pinned"))
                for r in log.query("SELECT * FROM results WHERE check_name = 'tls' ORDER BY seq")]
    finally:
        log.close()


def test_check_pins_on_first_use_crit_when_changed_until_accepted(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TLS_TEST_PW", "secret")
    with FakeDevice(tls=True) as fake:
        port = fake.port
        inv = tmp_path / "inventory.yaml"
        inv.write_text(textwrap.dedent(INVENTORY.format(port=port)), encoding="utf-8")
        monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(inv))
        first = cli("check", "--only", "login", "--all")
        assert first.code == 0, first
        assert "pinned on first use" in first.out
        again = cli("check", "--only", "login")
        assert again.code == 0, again
    assert tls_results(tmp_path) == [("ok", DEVICE_FP, 1)]  # pinned once, not again on a match

    with FakeDevice(tls=True, cert="replaced", port=port) as fake:  # the same address, a new certificate
        changed = cli("check", "--only", "login")
        assert changed.code == 2, changed
        assert "certificate changed" in changed.out and fake.requests == 0
        assert cli("check", "--only", "login").code == 2  # still CRIT: nothing accepted it
        wrong = cli("device", "accept-cert", "cam-1", "--fingerprint", DEVICE_FP)
        assert wrong.code == 77, wrong
        accepted = cli("device", "accept-cert", "cam-1", "--fingerprint", REPLACED_FP.replace(":", "").lower())
        assert accepted.code == 0, accepted
        assert f"accepted SHA-256 {REPLACED_FP} (was {DEVICE_FP})" in accepted.out
        after = cli("check", "--only", "login")
        assert after.code == 0, after
        assert fake.auth_failures == 0
    assert tls_results(tmp_path) == [("ok", DEVICE_FP, 1), ("crit", REPLACED_FP, 0), ("crit", REPLACED_FP, 0),
                                     ("ok", REPLACED_FP, 1)]


def test_a_check_reads_the_pins_from_the_log_once(cli, tmp_path, monkeypatch):
    """run_checks and the drivers it opens share one read of the pins per run (a device pinned on first use
    made the driver read them a second time); each run reads them afresh."""
    from canteen_ops.store import tlspins

    reads = []
    real = tlspins.accepted_pins
    monkeypatch.setattr(tlspins, "accepted_pins", lambda log: reads.append(1) or real(log))
    monkeypatch.setenv("TLS_TEST_PW", "secret")
    with FakeDevice(tls=True) as fake:
        inv = tmp_path / "inventory.yaml"
        inv.write_text(textwrap.dedent(INVENTORY.format(port=fake.port)), encoding="utf-8")
        monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(inv))
        first = cli("check", "--only", "login", "--all")
        assert first.code == 0 and "pinned on first use" in first.out, first
        assert len(reads) == 1
        assert cli("check", "--only", "login").code == 0
        assert len(reads) == 2
    assert tls_results(tmp_path) == [("ok", DEVICE_FP, 1)]


def test_accept_cert_refuses_a_device_that_is_not_pinned(cli, tmp_path, monkeypatch):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(textwrap.dedent(INVENTORY.format(port=443)).replace("tls: pin", "tls: verify"), encoding="utf-8")
    monkeypatch.setenv("CANTEEN_OPS_INVENTORY", str(inv))
    r = cli("device", "accept-cert", "cam-1")
    assert r.code == 64 and "tls: pin" in r.err
    assert cli("device", "accept-cert", "nope").code == 66


def test_every_command_that_opens_a_driver_checks_the_pin():
    # backup, snapshot, firmware open drivers with open_driver(device): the pins of the command's log apply
    from canteen_ops.drivers.base import tls_pins
    from canteen_ops.drivers.registry import open_driver

    with FakeDevice(tls=True, cert="replaced", password="x") as fake:  # device()'s credentials say "x"
        dev = device(fake.port, https=True, tls="pin", dev_id="pinned-cam")
        tls_pins.set_source(lambda: {dev.id: DEVICE_FP})
        try:
            with open_driver(dev) as drv:
                with pytest.raises(CertChanged):
                    drv.login()
        finally:
            tls_pins.set_source(None)
        with open_driver(dev) as drv:  # no log, no pin: first use
            drv.login()
            assert drv.device_transport.first_use
        assert fake.requests == 2
