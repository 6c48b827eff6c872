"""Numbers a parser cannot use (1e999, a thousand digits, "²", "١٢", inf, nan) make the check `unknown` with the
reason (ProtocolError, contained to the device), never an internal error; non-numbers keep the old leniency."""

from __future__ import annotations

import pytest

from canteen_ops.drivers import dahua as D
from canteen_ops.drivers import hikvision as H
from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.base import ProtocolError
from canteen_ops.drivers.numbers import device_float, device_int
from canteen_ops.drivers.onvif import channel_number

UNUSABLE = ["1e999", "-1e999", "9" * 1000, "1" * 41, "²", "١٢", "12²", "inf", "-Infinity", "NaN", "1e18"]


@pytest.mark.parametrize("text", UNUSABLE)
def test_unusable_numbers_are_protocol_errors_naming_the_field(text):
    with pytest.raises(ProtocolError, match=r"^capacity: (number out of range|unreadable number): "):
        device_float(text, "capacity")


@pytest.mark.parametrize("text, value", [("30436", 30436), (" 2.5 ", 2), ("-3", -3), ("1E3", 1000), (".5", 0),
                                         ("", None), ("  ", None), (None, None), ("N/A", None), ("12 MB", None)])
def test_plain_numbers_and_non_numbers(text, value):
    assert device_int(text, "x") == value


def test_hikvision_status_code_and_disk_sizes():
    root = X.parse(b"<ResponseStatus><statusCode>1e999</statusCode><statusString>OK</statusString></ResponseStatus>")
    with pytest.raises(ProtocolError, match="statusCode: number out of range: '1e999'"):
        H.parse_response_status(root)
    hdd = (b"<hddList><hdd><id>1</id><status>ok</status><capacity>%s</capacity><freeSpace>10</freeSpace></hdd>"
           b"</hddList>")
    with pytest.raises(ProtocolError, match="capacity: unreadable number"):
        H.parse_storage(X.parse(hdd % "²".encode()))
    assert H.parse_storage(X.parse(hdd % b"30436"))[0].capacity_mb == 30436.0


def test_hikvision_channel_ids():
    status = X.parse("<InputProxyChannelStatusList><InputProxyChannelStatus><id>١</id><online>true</online>"
                     "</InputProxyChannelStatus></InputProxyChannelStatusList>".encode())
    with pytest.raises(ProtocolError, match="id: unreadable number: '١'"):
        H.parse_channels(None, status)


def test_dahua_fields():
    assert D.parse_video_loss({"channels": ["0", "²", "9" * 5000, "2"]}) == {0, 2}  # "²".isdigit() is True
    with pytest.raises(ProtocolError, match="found: unreadable number: '²'"):
        D.parse_find_items({"found": "²"})
    with pytest.raises(ProtocolError, match="number out of range"):
        D.parse_find_items({"found": "1e999"})
    with pytest.raises(ProtocolError, match="number out of range"):
        D.parse_encode({"table": {"Encode": [{"MainFormat": [{"Video": {"Width": "1e999", "Height": "1080"}}]}]}})
    disks = {"list": {"info": [{"Name": "/dev/sda", "State": "Success",
                                "Detail": [{"TotalBytes": "inf", "UsedBytes": "0"}]}]}}
    with pytest.raises(ProtocolError):
        D.parse_storage(disks)


def test_onvif_token_with_a_huge_number_falls_back_to_the_position():
    assert channel_number("VideoSource_" + "9" * 5000, 4) == 4
    assert channel_number("VideoSource_2", 4) == 2
