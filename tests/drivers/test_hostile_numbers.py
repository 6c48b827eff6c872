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


FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"
HOSTILE_TEXT = ["1e999", "9" * 5000, "²", "١٢", "NaN", "-1", "2026-13-45T99:99:99Z"]


def _only_protocol_errors(call) -> None:
    try:
        call()
    except ProtocolError:
        pass


def test_every_hikvision_field_replaced_by_hostile_text_is_contained():
    """Each text node of every recorded ISAPI answer, replaced by hostile text: the parsers answer or raise
    ProtocolError (the check is `unknown` with the reason), nothing else escapes."""
    import re
    import xml.sax.saxutils as sx

    parsers = [H.parse_response_status, H.parse_device_info, H.parse_time, H.parse_ntp_servers, H.parse_storage,
               lambda r: H.parse_channels(r, r), H.parse_search_result, H.parse_admin_accesses,
               H.parse_streaming_channels, H.parse_lock_info, H.parse_upgrade_status]
    for fx in sorted((FIXTURES / "hikvision").glob("*.xml")):
        src = fx.read_text(encoding="utf-8", errors="replace")
        for m in list(re.finditer(r">([^<>]+)<", src))[:40]:
            for text in HOSTILE_TEXT:
                try:
                    root = X.parse((src[:m.start(1)] + sx.escape(text) + src[m.end(1):]).encode())
                except ProtocolError:  # the text was outside an element (the XML declaration)
                    continue
                for parse in parsers:
                    _only_protocol_errors(lambda: parse(root))


def test_every_dahua_value_replaced_by_hostile_text_is_contained():
    from canteen_ops.drivers import kv

    parsers = [D.parse_storage, D.parse_video_loss, D.parse_channel_titles, D.parse_encode]
    flat_parsers = [D.parse_find_items, D.parse_upgrade_state]
    for fx in sorted((FIXTURES / "dahua").glob("*.txt")):
        lines = fx.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines[:60]):
            if "=" not in line:
                continue
            for text in HOSTILE_TEXT:
                body = "\n".join([*lines[:i], f"{line.partition('=')[0]}={text}", *lines[i + 1:]])
                try:
                    flat = kv.parse_flat(body)
                    tree = kv.nest(flat)
                except ProtocolError:
                    continue
                for parse in parsers:
                    _only_protocol_errors(lambda: parse(tree))
                for parse in flat_parsers:
                    _only_protocol_errors(lambda: parse(flat))
