"""Dahua CGI behaviour on a loopback server with a fresh nonce per answer: the mediaFileFind life cycle (always
closed and destroyed), error bodies, the time-zone rule, exports."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, urlsplit

import pytest

from canteen_ops.drivers.base import NotSupported, ProtocolError
from canteen_ops.drivers.dahua import DahuaDriver

from .fake_digest import FakeDevice
from .test_http_auth import device

UTC = dt.timezone.utc


def text_route(body: str, status: int = 200):
    def route(dev, h):
        dev._reply(h, status, body.encode(), {"Content-Type": "text/plain;charset=utf-8"})
    return route


class Finder:
    """mediaFileFind.cgi: factory.create → findFile → findNextFile… → close → destroy, recording the calls."""

    def __init__(self, pages: list[str], close_action="close", find_file="OK\r\n"):
        self.pages, self.calls, self.close_action, self.find_file = list(pages), [], close_action, find_file

    def __call__(self, dev, h):
        q = dict(parse_qsl(urlsplit(h.path).query))
        action = q.get("action")
        self.calls.append((action, q))
        if action == "factory.create":
            body = "result=777\r\n"
        elif action == "findFile":
            body = self.find_file
        elif action == "findNextFile":
            body = self.pages.pop(0) if self.pages else "found=0\r\n"
        elif action in (self.close_action, "destroy", "factory.destroy"):
            body = "OK\r\n"
        else:
            dev._reply(h, 400, b"Error\r\nBad Request!\r\n")
            return
        dev._reply(h, 200, body.encode())

    def actions(self):
        return [a for a, _ in self.calls]


def items(*spans):
    lines = [f"found={len(spans)}"]
    for i, (s, e) in enumerate(spans):
        lines += [f"items[{i}].Channel=0", f"items[{i}].StartTime={s}", f"items[{i}].EndTime={e}",
                  f"items[{i}].Type=dav"]
    return "\r\n".join(lines) + "\r\n"


NTP_BEIJING = "table.NTP.Address=pool.ntp.org\r\ntable.NTP.Enable=true\r\ntable.NTP.TimeZone=13\r\n"
WINDOW = (dt.datetime(2020, 1, 5, tzinfo=UTC), dt.datetime(2020, 1, 7, tzinfo=UTC))


def dahua(port, **kw) -> DahuaDriver:
    return DahuaDriver(device(port, vendor="dahua", kind="nvr", **kw), "secret")


def test_media_file_find_flow_pages_and_cleans_up(monkeypatch):
    # Pages of 2: the first page is full, so the driver asks again; the second holds 1 < 2 items, so it is the
    # last one and no findNextFile answering found=0 is needed. The finder is destroyed when the driver closes.
    monkeypatch.setattr("canteen_ops.drivers.dahua.FIND_PAGE", 2)
    finder = Finder([items(("2020-01-06 06:05:00", "2020-01-06 06:13:00"), ("2020-01-06 06:13:00", "2020-01-06 07:00:00")),
                     items(("2020-01-06 08:00:00", "2020-01-06 09:00:00"))])
    routes = {"/cgi-bin/mediaFileFind.cgi": finder, "/cgi-bin/configManager.cgi": text_route(NTP_BEIJING)}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        spans = drv.recordings(3, *WINDOW)
        assert fake.auth_failures == 0
    assert finder.actions() == ["factory.create", "findFile", "findNextFile", "findNextFile", "close", "destroy"]
    assert finder.calls[2][1]["count"] == "2"
    find = finder.calls[1][1]
    assert find["object"] == "777" and find["condition.Channel"] == "3"
    assert find["condition.StartTime"] == "2020-01-05 08:00:00"  # UTC → device local (Asia/Shanghai)
    assert [(s.start.hour, s.end.hour, s.end.minute) for s in spans] == [(22, 23, 0), (0, 1, 0)]
    assert spans[0].start == dt.datetime(2020, 1, 5, 22, 5, tzinfo=UTC)


def test_finder_is_destroyed_even_when_a_page_is_garbage():
    finder = Finder(["found=1\r\nitems[0].StartTime=yesterday\r\nitems[0].EndTime=today\r\n"],
                    close_action="factory.close")
    routes = {"/cgi-bin/mediaFileFind.cgi": finder, "/cgi-bin/configManager.cgi": text_route(NTP_BEIJING)}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        with pytest.raises(ProtocolError, match="unreadable Dahua time"):
            drv.recordings(1, *WINDOW)
    # 'close' is refused (400), so the driver falls back to 'factory.close'; then destroys.
    assert finder.actions()[-3:] == ["close", "factory.close", "destroy"]


def test_find_file_error_means_no_recordings():
    finder = Finder([], find_file="Error\r\nNo Files\r\n")
    routes = {"/cgi-bin/mediaFileFind.cgi": finder, "/cgi-bin/configManager.cgi": text_route(NTP_BEIJING)}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        assert drv.recordings(1, *WINDOW) == []
    assert finder.actions()[-2:] == ["close", "destroy"]


def test_repeated_page_is_caught(monkeypatch):
    monkeypatch.setattr("canteen_ops.drivers.dahua.FIND_PAGE", 1)  # full pages, so the driver keeps asking
    page = items(("2020-01-06 06:05:00", "2020-01-06 06:13:00"))
    finder = Finder([page, page, page])
    routes = {"/cgi-bin/mediaFileFind.cgi": finder, "/cgi-bin/configManager.cgi": text_route(NTP_BEIJING)}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        with pytest.raises(ProtocolError, match="same page"):
            drv.recordings(1, *WINDOW)
    assert finder.actions()[-2:] == ["close", "destroy"]


def test_clock_uses_an_explicit_offset_when_the_device_gives_one():
    routes = {"/cgi-bin/global.cgi": text_route("result=2026-07-02 19:09:25\r\n"),
              "/cgi-bin/configManager.cgi": text_route(
                  "table.NTP.Enable=false\r\ntable.NTP.TimeZone=25\r\ntable.NTP.TimeZoneDesc=GMT-05:00\r\n")}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        c = drv.clock()
    assert c.device_utc == dt.datetime(2026, 7, 3, 0, 9, 25, tzinfo=UTC)
    assert (c.mode, c.ntp_enabled, c.ntp_servers) == ("manual", False, [])


def test_clock_falls_back_to_the_inventory_zone():
    routes = {"/cgi-bin/global.cgi": text_route("result=2026-07-02 19:09:25\r\n"),
              "/cgi-bin/configManager.cgi": text_route(NTP_BEIJING)}
    with FakeDevice(rotate=True, routes=routes) as fake:
        with dahua(fake.port) as drv:
            assert drv.clock().device_utc == dt.datetime(2026, 7, 2, 11, 9, 25, tzinfo=UTC)
            assert "Asia/Shanghai" in drv.clock().timezone
        with dahua(fake.port) as drv:
            drv.timezone = "Europe/Berlin"  # what open_driver(..., timezone=settings.timezone) sets
            assert drv.clock().device_utc == dt.datetime(2026, 7, 2, 17, 9, 25, tzinfo=UTC)


def test_permission_denied_and_bad_request_are_not_supported():
    routes = {"/cgi-bin/upgrader.cgi": text_route("Error\nAuthorization Failed!\n"),
              "/cgi-bin/storageDevice.cgi": text_route("Error\r\nBad Request!\r\n", 400)}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        with pytest.raises(NotSupported, match="Authorization Failed"):
            drv.upgrade_status()
        with pytest.raises(NotSupported, match="400"):
            drv.storage()


def test_export_must_be_json_and_import_is_refused():
    with FakeDevice(rotate=True, routes={"/cgi-bin/Config.backup": text_route('{"General": {"MachineName": "NVR"}}')}) \
            as fake, dahua(fake.port) as drv:
        export = drv.export_config()
        assert (export.method, export.extension, export.content_type) == ("dahua-Config.backup", ".json",
                                                                          "application/json")
        with pytest.raises(NotSupported, match="factory reset"):
            drv.import_config(export)
    with FakeDevice(rotate=True, routes={"/cgi-bin/Config.backup": text_route("<html>oops")}) as fake, \
            dahua(fake.port) as drv:
        with pytest.raises(ProtocolError, match="not valid JSON"):
            drv.export_config()


def test_parse_errors_name_the_device_and_getter():
    routes = {"/cgi-bin/upgrader.cgi": text_route("State=Idle\r\n\xe9garbage without separator\r\n")}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        with pytest.raises(ProtocolError, match=r"^cam-1: upgrade_status: garbled key=value"):
            drv.upgrade_status()


class ForgetfulFinder(Finder):
    """A device that drops finder objects: findFile on a dropped object answers an Error body (as some firmware
    does for 'nothing found', so only a fresh finder's Error may be read that way)."""

    def __init__(self, pages, **kw):
        super().__init__(pages, **kw)
        self.next_id, self.live = 777, set()

    def __call__(self, dev, h):
        q = dict(parse_qsl(urlsplit(h.path).query))
        action = q.get("action")
        if action == "factory.create":
            self.calls.append((action, q))
            self.live.add(str(self.next_id))
            dev._reply(h, 200, f"result={self.next_id}\r\n".encode())
            self.next_id += 1
        elif action == "findFile" and q.get("object") not in self.live:
            self.calls.append((action, q))
            dev._reply(h, 200, b"Error\r\nInvalid object\r\n")
        else:
            super().__call__(dev, h)


def test_refused_reused_finder_is_destroyed_and_replaced_once():
    day = items(("2020-01-06 06:00:00", "2020-01-06 07:00:00"))
    finder = ForgetfulFinder([day, day], close_action="factory.close")
    routes = {"/cgi-bin/mediaFileFind.cgi": finder, "/cgi-bin/configManager.cgi": text_route(NTP_BEIJING)}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        assert len(drv.recordings(1, *WINDOW)) == 1
        finder.live.clear()  # the device forgot object 777 (idle timeout, reboot)
        assert len(drv.recordings(2, *WINDOW)) == 1
        assert fake.auth_failures == 0
    assert finder.actions() == [
        "factory.create", "findFile", "findNextFile", "close", "factory.close",  # 'close' refused: fall back
        "findFile", "destroy",  # 777 refused: destroyed (best-effort) ...
        "factory.create", "findFile", "findNextFile", "factory.close",  # ... a fresh 778; the working close first
        "destroy"]  # the driver closes
    assert [q["object"] for a, q in finder.calls if a == "findFile"] == ["777", "777", "778"]
    assert finder.calls[-1][1]["object"] == "778"


def test_fresh_finder_error_still_means_no_recordings():
    finder = ForgetfulFinder([], find_file="Error\r\nNo Files\r\n")
    routes = {"/cgi-bin/mediaFileFind.cgi": finder, "/cgi-bin/configManager.cgi": text_route(NTP_BEIJING)}
    with FakeDevice(rotate=True, routes=routes) as fake, dahua(fake.port) as drv:
        assert drv.recordings(1, *WINDOW) == []
        # reused, it answers Error again: one fresh finder is tried, whose Error means nothing matches
        assert drv.recordings(2, *WINDOW) == []
    assert finder.actions() == ["factory.create", "findFile", "close",
                                "findFile", "destroy", "factory.create", "findFile", "close", "destroy"]
