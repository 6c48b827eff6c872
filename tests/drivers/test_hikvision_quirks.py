"""Hikvision quirks the lab does not simulate, on a loopback server: pagination that makes no progress,
ResponseStatus errors with HTTP 200, export errors, not-supported resources."""

from __future__ import annotations

import datetime as dt

import pytest

from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.base import ConfigExport, NotSupported, ProtocolError

from .fake_digest import FakeDevice
from .test_http_auth import hik

UTC = dt.timezone.utc
TIME = (b'<Time xmlns="http://www.isapi.org/ver20/XMLSchema"><timeMode>NTP</timeMode>'
        b"<localTime>2024-05-01T18:00:00+08:00</localTime><timeZone>CST-8:00:00</timeZone></Time>")


def xml_route(body: bytes, status: int = 200):
    def route(dev, h):
        dev._reply(h, status, body, {"Content-Type": "application/xml"})
    return route


def page(strg: str, items: list[tuple[str, str]], track=101) -> bytes:
    its = "".join(f"<searchMatchItem><trackID>{track}</trackID><timeSpan><startTime>{s}</startTime>"
                  f"<endTime>{e}</endTime></timeSpan></searchMatchItem>" for s, e in items)
    return (f'<CMSearchResult xmlns="http://www.hikvision.com/ver20/XMLSchema"><responseStatus>true</responseStatus>'
            f"<responseStatusStrg>{strg}</responseStatusStrg><numOfMatches>{len(items)}</numOfMatches>"
            f"<matchList>{its}</matchList></CMSearchResult>").encode()


class SearchLog:
    def __init__(self, pages):
        self.pages, self.bodies = pages, []

    def __call__(self, dev, h):
        self.bodies.append(h.body)
        answer = self.pages[min(len(self.bodies) - 1, len(self.pages) - 1)]
        dev._reply(h, 200, answer, {"Content-Type": "application/xml"})


WINDOW = (dt.datetime(2024, 4, 30, tzinfo=UTC), dt.datetime(2024, 5, 2, tzinfo=UTC))


def test_pages_follow_until_ok_and_times_use_the_device_offset():
    log = SearchLog([page("MORE", [("2024-05-01T08:00:00Z", "2024-05-01T09:00:00Z")]),
                     page("OK", [("2024-05-01T09:00:00Z", "2024-05-01T10:00:00Z"),
                                 ("2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z")])])
    routes = {"/ISAPI/System/time": xml_route(TIME), "/ISAPI/ContentMgmt/search": log}
    with FakeDevice(routes=routes) as fake, hik(fake.port, kind="nvr") as drv:
        spans = drv.recordings(1, *WINDOW)
    assert len(log.bodies) == 2
    first, second = (X.parse(b) for b in log.bodies)
    assert X.text(first, "searchResultPostion") == "0" and X.text(second, "searchResultPostion") == "1"
    assert X.text(first, "searchID") == X.text(second, "searchID")  # one search, paged
    assert X.text(first, "trackIDList/trackID") == "101"
    # the window goes out in device wall-clock time with the 'Z' quirk: 2024-04-30 00:00 UTC = 08:00 (+8)
    assert X.text(first, "timeSpanList/timeSpan/startTime") == "2024-04-30T08:00:00Z"
    assert [(s.start.hour, s.end.hour) for s in spans] == [(0, 2), (3, 4)]  # 08:00 local (+8) = 00:00 UTC


def test_firmware_ignoring_the_position_is_caught():
    same = page("MORE", [("2024-05-01T08:00:00Z", "2024-05-01T09:00:00Z")])
    log = SearchLog([same])
    routes = {"/ISAPI/System/time": xml_route(TIME), "/ISAPI/ContentMgmt/search": log}
    with FakeDevice(routes=routes) as fake, hik(fake.port, kind="nvr") as drv:
        with pytest.raises(ProtocolError, match="no progress.*same page"):
            drv.recordings(1, *WINDOW)
    assert len(log.bodies) == 2


def test_more_with_no_items_is_caught():
    routes = {"/ISAPI/System/time": xml_route(TIME), "/ISAPI/ContentMgmt/search": SearchLog([page("MORE", [])])}
    with FakeDevice(routes=routes) as fake, hik(fake.port, kind="nvr") as drv:
        with pytest.raises(ProtocolError, match="no items"):
            drv.recordings(1, *WINDOW)


def test_other_tracks_are_ignored_and_no_matches_is_empty():
    routes = {"/ISAPI/System/time": xml_route(TIME),
              "/ISAPI/ContentMgmt/search": SearchLog([page("OK", [("2024-05-01T08:00:00Z", "2024-05-01T09:00:00Z")],
                                                           track=201)])}
    with FakeDevice(routes=routes) as fake, hik(fake.port, kind="nvr") as drv:
        assert drv.recordings(1, *WINDOW) == []


def test_export_error_inside_a_200_is_refused():
    err = (b'<?xml version="1.0" encoding="UTF-8"?><ResponseStatus version="1.0" '
           b'xmlns="http://www.isapi.org/ver20/XMLSchema"><statusCode>3</statusCode><statusString>Device Error'
           b"</statusString><subStatusCode>deviceError</subStatusCode></ResponseStatus>")
    with FakeDevice(routes={"/ISAPI/System/configurationData": xml_route(err)}) as fake, hik(fake.port) as drv:
        with pytest.raises(ProtocolError, match="deviceError"):
            drv.export_config()


def test_import_refusal_is_an_error():
    bad = (b'<ResponseStatus xmlns="http://www.hikvision.com/ver20/XMLSchema"><statusCode>6</statusCode>'
           b"<statusString>Invalid Content</statusString><subStatusCode>importErrorData</subStatusCode>"
           b"</ResponseStatus>")
    with FakeDevice(routes={"/ISAPI/System/configurationData": xml_route(bad, 400)}) as fake, hik(fake.port) as drv:
        with pytest.raises(ProtocolError, match="importErrorData"):
            drv.import_config(ConfigExport(b"\x00bin", "application/octet-stream", "isapi-configurationData", ".bin"))
        with pytest.raises(ProtocolError, match="cannot import"):
            drv.import_config(ConfigExport(b"{}", "application/json", "dahua-Config.backup", ".json"))


def test_missing_resources_are_not_supported():
    not_support = (b'<ResponseStatus xmlns="http://www.isapi.org/ver20/XMLSchema"><statusCode>4</statusCode>'
                   b"<statusString>Invalid Operation</statusString><subStatusCode>notSupport</subStatusCode>"
                   b"</ResponseStatus>")
    routes = {"/ISAPI/System/upgradeStatus": xml_route(b"", 404),
              "/ISAPI/ContentMgmt/Storage": xml_route(not_support, 403)}
    with FakeDevice(routes=routes) as fake, hik(fake.port) as drv:
        with pytest.raises(NotSupported):
            drv.upgrade_status()
        with pytest.raises(NotSupported, match="notSupport"):
            drv.storage()


def test_time_without_offset_uses_posix_zone_end_to_end():
    no_offset = (b"<Time><timeMode>manual</timeMode><localTime>2024-05-01T18:00:00</localTime>"
                 b"<timeZone>CST+5:00:00</timeZone></Time>")
    with FakeDevice(routes={"/ISAPI/System/time": xml_route(no_offset),
                            "/ISAPI/System/time/ntpServers": xml_route(b"", 404)}) as fake, hik(fake.port) as drv:
        c = drv.clock()
    assert c.device_utc == dt.datetime(2024, 5, 1, 23, 0, tzinfo=UTC)
    assert (c.mode, c.ntp_enabled, c.ntp_servers) == ("manual", False, [])


def test_parse_errors_name_the_device_and_getter():
    bad_time = b"<Time><timeMode>NTP</timeMode><localTime>yesterday noon</localTime></Time>"
    with FakeDevice(routes={"/ISAPI/System/time": xml_route(bad_time)}) as fake, hik(fake.port) as drv:
        with pytest.raises(ProtocolError, match=r"^cam-1: clock: unreadable time"):
            drv.clock()
