"""The shared HTTP plumbing over real loopback sockets: auth discipline, deadlines, body caps.

The key property: a wrong password costs exactly ONE failed authenticated request on the wire, and a second
call raises without any traffic. Stale nonces are the only 401 that is retried (once).
"""

from __future__ import annotations

import socket
import time
import tracemalloc

import pytest

from canteen_ops.drivers.base import AuthFailed, Locked, Offline, ProtocolError, Timeout
from canteen_ops.drivers.dahua import DahuaDriver
from canteen_ops.drivers.hikvision import HikvisionDriver
from canteen_ops.inventory.model import Credentials, Device, Policy

from tests.isolated import run_isolated

from .fake_digest import (
    FakeDevice,
    declared_huge,
    gzip_body,
    huge_chunked,
    never_answers,
    slow_drip,
)


def device(port: int, *, dev_id="cam-1", vendor="hikvision", kind="camera", timeout=2.0, https=False,
           **extra) -> Device:
    return Device(id=dev_id, kind=kind, vendor=vendor, host="127.0.0.1", port=port, rtsp_port=554, https=https,
                  school_id="s1", credentials=Credentials(name="c", username="admin", password="x"),
                  timeout=timeout, policy=Policy(), **extra)


def hik(port, password="secret", **kw) -> HikvisionDriver:
    return HikvisionDriver(device(port, **kw), password)


def test_good_password_probe_once_then_reuses_challenge():
    with FakeDevice() as fake, hik(fake.port) as drv:
        for _ in range(3):
            drv.login()
        assert fake.auth_failures == 0
        assert fake.requests == 4  # one unauthenticated probe, then credentials pre-sent each time
        assert drv.requests_sent == 4


def test_wrong_password_costs_exactly_one_failed_attempt_and_is_never_retried():
    with FakeDevice() as fake:
        with hik(fake.port, password="wrong") as drv:
            with pytest.raises(AuthFailed) as exc:
                drv.login()
            assert not isinstance(exc.value, Locked)
            assert "4 attempt(s) left" in str(exc.value)
            assert "wrong" not in str(exc.value).replace("wrong user", "")  # never echoes the password
            assert (fake.auth_attempts, fake.auth_failures) == (1, 1)
            seen = fake.requests
            with pytest.raises(AuthFailed, match="not retried"):
                drv.facts()
            assert fake.requests == seen  # no traffic at all
        # A new driver for the same device in the same run does not try again either.
        with hik(fake.port, password="wrong") as again:
            with pytest.raises(AuthFailed):
                again.login()
        assert (fake.requests, fake.auth_failures) == (seen, 1)


@pytest.mark.parametrize("style", ["header", "body"])
def test_stale_nonce_is_retried_once_and_succeeds(style):
    with FakeDevice(stale_after=1, stale_style=style) as fake, hik(fake.port) as drv:
        drv.login()  # probe + auth (nonce used once)
        drv.login()  # pre-sent with the used nonce → stale → one retry with the fresh nonce
        drv.login()
        assert fake.auth_failures == 0
        assert fake.requests == 2 + 2 + 2


def test_wrong_password_after_stale_challenge_still_one_failure():
    # The password changes on the device mid-run: the pre-sent attempt fails with a userCheck body → no retry.
    with FakeDevice() as fake, hik(fake.port) as drv:
        drv.login()
        fake.password = "changed"
        with pytest.raises(AuthFailed):
            drv.login()
        assert fake.auth_failures == 1


def test_locked_device_gets_no_credentials():
    with FakeDevice(locked=True) as fake, hik(fake.port) as drv:
        with pytest.raises(Locked) as exc:
            drv.login()
        assert exc.value.unlock_in_s == 1800
        assert "30 min" in str(exc.value)
        assert fake.auth_attempts == 0
        with pytest.raises(Locked):
            drv.login()
        assert fake.requests == 1


def dahua(port, password="secret", **kw) -> DahuaDriver:
    return DahuaDriver(device(port, vendor="dahua", **kw), password)


def test_dahua_reuses_the_nonce_it_was_given():
    with FakeDevice() as fake, dahua(fake.port) as drv:
        for _ in range(3):
            drv._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
        assert fake.auth_failures == 0
        assert fake.requests == 4  # one probe, then one exchange per call


def test_dahua_nonce_called_stale_on_reuse_is_renewed_each_time():
    # A device that takes each nonce once and says stale=true to a reused one: every call is a refused reuse and
    # a retry with the 401's fresh nonce, never counted as a failed login (RFC 7616).
    with FakeDevice(rotate=True) as fake, dahua(fake.port) as drv:
        for _ in range(3):
            drv._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
        assert fake.auth_failures == 0
        assert fake.requests == 6


@pytest.mark.parametrize("refusal", ["401", "403"])
def test_dahua_that_refuses_a_reused_nonce_is_refused_once_per_run(refusal):
    # The worst case: each nonce is good once, and a reused one is refused and counted as a failed login. The
    # driver sends the refused call once more with a fresh challenge (the 401's own; after a 403 a new probe) and
    # from then on asks for a fresh challenge before every request, in this driver and in any later one.
    with FakeDevice(rotate=refusal) as fake:
        with dahua(fake.port) as drv:
            for _ in range(4):
                reply = drv._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
                assert reply.status == 200
        retry = 1 if refusal == "401" else 2
        assert fake.requests == 2 + (1 + retry) + 2 + 2
        with dahua(fake.port) as again:
            again._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
            again._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
        assert fake.reuse_refusals == 1 and fake.auth_failures == 1


def test_dahua_403_that_answers_the_request_keeps_the_nonce_reuse():
    def forbidden(dev, h):
        dev._reply(h, 403, b"Error\r\nNo Authority!\r\n", {"Content-Type": "text/plain"})

    path = "/cgi-bin/userManager.cgi"
    with FakeDevice(routes={path: forbidden}) as fake, dahua(fake.port) as drv:
        drv._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")  # probe + request
        assert drv._http.request("GET", path + "?action=getUserInfoAll").status == 403  # reused, then fresh: 403 both
        assert fake.requests == 2 + 3
        drv._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
        assert fake.requests == 2 + 3 + 1  # the 403 was the request's, not the nonce's: reuse goes on
        assert fake.auth_failures == 0


def test_dahua_wrong_password_after_refused_reuse_is_one_failed_login_more():
    # The password changes between two calls of one run on a device that refuses reused nonces: the refused reuse,
    # then the one authenticated retry is the AuthFailed, remembered; nothing more is sent.
    with FakeDevice(rotate="401") as fake, dahua(fake.port) as drv:
        drv._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
        fake.password = "changed"
        with pytest.raises(AuthFailed):
            drv._http.request("GET", "/cgi-bin/magicBox.cgi?action=getDeviceType")
        seen = fake.requests
        with pytest.raises(AuthFailed, match="not retried"):
            drv.clock()
        assert fake.requests == seen == 2 + 2
        assert (fake.reuse_refusals, fake.auth_failures) == (1, 2)


def test_dahua_wrong_password_one_failure_and_message_mentions_connection_limit():
    with FakeDevice(rotate=True) as fake, dahua(fake.port, "bad") as drv:
        with pytest.raises(AuthFailed, match="connection/user limit"):
            drv.login()
        with pytest.raises(AuthFailed):
            drv.clock()
        assert (fake.auth_attempts, fake.auth_failures) == (1, 1)


def test_basic_scheme_from_challenge_where_the_inventory_allows_it():
    with FakeDevice(scheme="basic") as fake:
        with DahuaDriver(device(fake.port, vendor="dahua", dev_id="d-ok", auth="basic"), "secret") as drv:
            drv._http.request("GET", "/x")
            drv._http.request("GET", "/x")
        assert fake.auth_failures == 0 and fake.requests == 3
        with DahuaDriver(device(fake.port, vendor="dahua", dev_id="d-bad", auth="basic"), "nope") as drv:
            with pytest.raises(AuthFailed):
                drv._http.request("GET", "/x")
        assert fake.auth_failures == 1


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_is_offline():
    with hik(_free_port()) as drv:
        with pytest.raises(Offline, match="cannot connect"):
            drv.login()


def test_blackhole_times_out_within_the_deadline():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)  # the kernel accepts connections; nobody ever reads or answers
    try:
        with hik(s.getsockname()[1], timeout=0.5) as drv:
            t0 = time.monotonic()
            with pytest.raises(Timeout):
                drv.login()
            assert time.monotonic() - t0 < 1.5
    finally:
        s.close()


def test_overall_deadline_bounds_a_slow_drip():
    with FakeDevice(routes={"/ISAPI/System/deviceInfo": slow_drip}) as fake, hik(fake.port, timeout=0.6) as drv:
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            drv.login()
        assert time.monotonic() - t0 < 1.5


def test_driver_deadline_caps_request_timeout():
    with FakeDevice(routes={"/ISAPI/System/deviceInfo": never_answers}) as fake, hik(fake.port, timeout=5) as drv:
        drv.set_deadline(0.4)
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            drv.login()
        assert time.monotonic() - t0 < 1.5
        with pytest.raises(Timeout, match="deadline passed"):
            drv.login()


def _peak_while_refusing_64_mib() -> int:
    """Peak traced memory while a 64 MiB answer is refused (run in a fresh interpreter: tests/isolated.py)."""
    routes = {"/ISAPI/System/deviceInfo": huge_chunked(64 * 1024 * 1024)}
    with FakeDevice(routes=routes) as fake, hik(fake.port, timeout=10) as drv:
        tracemalloc.start()
        try:
            with pytest.raises(ProtocolError, match="exceeds"):
                drv.login()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_64_mib_body_is_cut_at_the_cap_without_buffering_it():
    assert run_isolated(_peak_while_refusing_64_mib) < 24 * 1024 * 1024
    routes = {"/ISAPI/System/deviceInfo": huge_chunked(64 * 1024 * 1024)}
    with FakeDevice(routes=routes) as fake, hik(fake.port, timeout=10) as drv:
        with pytest.raises(ProtocolError, match="exceeds"):
            drv.login()
        # contained: the same driver keeps working for other resources
        assert drv.storage.__name__ == "storage"
        drv._http.request("GET", "/ISAPI/System/time")


def test_chunked_answer_is_read_whole_and_the_connection_kept():
    def chunked(dev, h):
        h.send_response(200)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for part in (b"<DeviceInfo><model>", b"DS-2CD", b"</model></DeviceInfo>"):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        h.wfile.write(b"0\r\n\r\n")

    with FakeDevice(routes={"/ISAPI/System/deviceInfo": chunked}) as fake, hik(fake.port) as drv:
        for _ in range(2):
            reply = drv._http.request("GET", "/ISAPI/System/deviceInfo")
            assert reply.body == b"<DeviceInfo><model>DS-2CD</model></DeviceInfo>"
        assert len(drv._http.transport._pool.connections) == 1 and fake.requests == 3  # probe + 2; kept open


def test_declared_huge_length_refused_before_reading():
    with FakeDevice(routes={"/ISAPI/System/deviceInfo": declared_huge(64 * 1024 * 1024)}) as fake, \
            hik(fake.port) as drv:
        with pytest.raises(ProtocolError, match="exceeds"):
            drv.login()


def test_unrequested_compression_refused():
    with FakeDevice(routes={"/ISAPI/System/deviceInfo": gzip_body}) as fake, hik(fake.port) as drv:
        with pytest.raises(ProtocolError, match="Content-Encoding"):
            drv.login()


def test_device_that_calls_every_nonce_stale_is_a_protocol_error_not_a_rejected_login():
    with FakeDevice(stale_after=0) as fake, hik(fake.port) as drv:
        with pytest.raises(ProtocolError, match="fresh nonce"):
            drv.login()
        assert fake.auth_failures == 0


def _redirect_with_cookie(dev, h):
    dev._reply(h, 302, b"", {"Location": "http://127.0.0.2:9/elsewhere", "Set-Cookie": "WebSession=abc; path=/"})


def test_device_traffic_ignores_env_proxies_redirects_and_cookies(monkeypatch):
    # The channel is an httpx transport, not a Client: a proxy in the environment, a redirect to another host
    # or a cookie from the device must change nothing about where or what we send.
    dead = _free_port()
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{dead}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    seen: list[str | None] = []

    def record_cookie(dev, h):
        seen.append(h.headers.get("Cookie"))
        dev._reply(h, 200, b"<Time><timeMode>NTP</timeMode></Time>", {"Content-Type": "application/xml"})

    routes = {"/ISAPI/System/deviceInfo": _redirect_with_cookie, "/ISAPI/System/time": record_cookie}
    with FakeDevice(routes=routes) as fake, hik(fake.port) as drv:
        reply = drv._http.request("GET", "/ISAPI/System/deviceInfo")
        assert reply.status == 302  # returned to the driver, not followed
        drv._http.request("GET", "/ISAPI/System/time")
        assert seen == [None]  # no cookie sent back
        assert fake.requests == 3 and fake.auth_failures == 0  # probe, request, request: all reached the device


def test_device_that_closes_after_each_answer_gets_a_new_connection_each_time():
    # Some Dahua firmware answer every request with Connection: close (protocols.md 0.1).
    def close_after(dev, h):
        dev._reply(h, 200, b"<Time><timeMode>NTP</timeMode></Time>",
                   {"Content-Type": "application/xml", "Connection": "close"})
        h.close_connection = True

    with FakeDevice(routes={"/ISAPI/System/time": close_after}) as fake, hik(fake.port) as drv:
        for _ in range(3):
            assert drv._http.request("GET", "/ISAPI/System/time").status == 200
        assert fake.requests == 4 and fake.auth_failures == 0  # the probe, then one request per call


def test_idle_keepalive_connection_closed_by_the_device_is_reopened_once():
    # The device drops the connection after answering without saying so (an idle keep-alive timeout): the next
    # request finds it closed before the device read anything, so it is sent once more on a fresh connection.
    def silent_close(dev, h):
        dev._reply(h, 200, b"<Time><timeMode>NTP</timeMode></Time>", {"Content-Type": "application/xml"})
        h.close_connection = True

    with FakeDevice(routes={"/ISAPI/System/time": silent_close}) as fake, hik(fake.port) as drv:
        for _ in range(3):
            assert drv._http.request("GET", "/ISAPI/System/time").status == 200
            time.sleep(0.05)  # let the close reach us first
        assert fake.requests == 4 and fake.auth_failures == 0
        assert drv.requests_sent == 4  # the resend of a request the device never saw is not counted again


def test_https_device_with_a_self_signed_certificate():
    # Cameras ship self-signed certificates and a canteen LAN has no CA: accepted (still encrypted). The same
    # device refuses a client that insists on verification, and that is a TLS error, not "offline".
    from canteen_ops.drivers.http import DeviceHTTP
    from canteen_ops.drivers.transport import TlsPolicy

    with FakeDevice(tls=True) as fake, hik(fake.port, https=True) as drv:
        drv.login()
        assert drv.facts().model == "X" and fake.auth_failures == 0 and drv.adopt_connection(socket.socket()) is False
        strict = DeviceHTTP(device_id="strict", base_url=fake.url, username="admin", password="secret", timeout=2,
                            on_auth_failure=lambda reply, authenticated: None, tls=TlsPolicy("verify"))
        with pytest.raises(ProtocolError, match="TLS handshake failed"):
            strict.request("GET", "/ISAPI/System/deviceInfo")
        strict.close()


def _drip_headers(dev, h):
    # a header line every 0.1 s, for ever: each read gets a byte well within any per-read timeout
    h.wfile.write(b"HTTP/1.1 200 OK\r\n")
    try:
        for i in range(200):
            if dev.stop_event.wait(0.1):
                return
            h.wfile.write(b"X-Drip-%d: x\r\n" % i)
            h.wfile.flush()
    except OSError:
        pass


def _late_part_then_stall(dev, h):
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    h.wfile.flush()
    dev.stop_event.wait(0.5)
    try:
        h.wfile.write(b"x" * 10)
        h.wfile.flush()
    except OSError:
        return
    dev.stop_event.wait(10)


@pytest.mark.parametrize("route", [_drip_headers, _late_part_then_stall], ids=["dripping-headers", "late-stall"])
def test_the_whole_answer_is_bounded_by_the_budget_not_each_read(route):
    # The budget covers the answer, head and body, not each receive: a device cannot hold us past it by sending
    # a little now and then.
    with FakeDevice(routes={"/ISAPI/System/deviceInfo": route}) as fake, hik(fake.port, timeout=0.8) as drv:
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            drv.login()
        assert time.monotonic() - t0 < 1.3
