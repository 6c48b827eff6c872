"""ONVIF driver and parsers on answers real devices gave (tests/fixtures/devices/onvif/<model>/, sources in SOURCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.base import NotSupported
from canteen_ops.drivers.onvif.driver import OnvifDriver
from canteen_ops.drivers.onvif.parsers import parse_ntp_servers
from canteen_ops.lab.replay import REPLAY_PASSWORD
from tests.replay_support import replayed

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "devices" / "onvif"


def answer(model: str, name: str):
    root = X.parse((REAL / model / name).read_bytes())
    return next(iter(X.find(root, "Body")))  # the answer element, as the driver hands it to the parsers


def test_an_unset_ntp_server_written_as_0000_is_no_server():
    assert parse_ntp_servers(answer("SUNBA-Performance-Series", "GetNTP.xml")) == []
    assert parse_ntp_servers(answer("GX728MF-IR28", "GetNTP.xml")) == []
    assert parse_ntp_servers(answer("IPG-8150PSS", "GetNTP.xml")) == ["pool.ntp.org"]
    assert parse_ntp_servers(answer("XM530-50X50-WG-8M", "GetNTP.xml")) == ["NTP"]  # as the firmware wrote it


def test_ntp_mode_without_a_server_is_not_ntp_enabled():
    with replayed(REAL / "D-Link-DCS-6511") as (_rec, _server, device):
        driver = OnvifDriver(device, REPLAY_PASSWORD, timeout=5.0)
        try:
            clock = driver.clock()
        finally:
            driver.close()
    assert (clock.mode, clock.ntp_servers, clock.ntp_enabled) == ("NTP", [], False)


def test_gsoap_method_not_implemented_fault_means_not_offered():
    """IPD-H4K8M05-BS answers an operation it lacks with a bare Sender fault "Method '...' not implemented"; that is
    "not offered" (n/a), not an unreadable answer: settings() leaves the part out, streams() is not supported."""
    with replayed(REAL / "IPD-H4K8M05-BS") as (_rec, server, device):
        driver = OnvifDriver(device, REPLAY_PASSWORD, timeout=5.0)
        try:
            settings = driver.settings()
            assert settings["network"] is None and settings["identity"]["model"] == "IPD-H4K8M05-BS"
            with pytest.raises(NotSupported, match="not supported by the device"):
                driver.streams()  # the SubStream's GetStreamUri is not recorded: the firmware's fault answers it
        finally:
            driver.close()
    assert "POST /onvif/device_service GetNetworkInterfaces" in server.replayer.unanswered


def test_firmware_without_get_system_date_and_time_still_answers_with_a_token_on_our_clock():
    with replayed(REAL / "Milesight-MS-C8165-PE") as (_rec, server, device):
        driver = OnvifDriver(device, REPLAY_PASSWORD, timeout=5.0)
        try:
            facts = driver.facts()  # the replay checks the WS-Security digest: the token was accepted
            with pytest.raises(NotSupported):
                driver.clock()
        finally:
            driver.close()
    assert (facts.model, facts.serial, facts.firmware) == ("MS-C8165-PE", "EM82V102329001403", "61.8.0.3-r8")
    assert server.replayer.served == ["POST /onvif/device_service GetDeviceInformation"]
