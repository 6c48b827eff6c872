"""Digest and Basic answers (drivers/httpauth.py) against httpx's own DigestAuth/BasicAuth, field for field, and
the request head DeviceHTTP builds against the one httpx would build. Devices saw httpx's requests before the
drivers stopped building httpx.Requests; they must not see a different one now."""

from __future__ import annotations

import httpx
import pytest

from canteen_ops.drivers import httpauth
from canteen_ops.drivers.base import AuthFailed, ProtocolError
from canteen_ops.drivers.hikvision import HikvisionDriver
from canteen_ops.drivers.http import DeviceHTTP
from canteen_ops.drivers.httpauth import Digest, basic, first_digest, parse_challenge

from .fake_digest import FakeDevice
from .test_http_auth import device

CNONCE = bytes(range(8))


def httpx_headers(method, url, challenge, user, password, times=1, content=None, headers=None):
    """What httpx.DigestAuth sends after a 401 with `challenge`, for `times` requests in a row."""
    auth = httpx.DigestAuth(user, password)
    auth._get_client_nonce = lambda nc, nonce: CNONCE.hex().encode()
    out = []
    for i in range(times):
        request = httpx.Request(method, url, content=content, headers=headers)
        flow = auth.sync_auth_flow(request)
        sent = next(flow)
        if i == 0:
            sent = flow.send(httpx.Response(401, headers={"WWW-Authenticate": challenge}, request=request))
        out.append(sent.headers["Authorization"])
    return out


@pytest.fixture
def fixed_cnonce(monkeypatch):
    monkeypatch.setattr(httpauth.os, "urandom", lambda n: CNONCE[:n])


@pytest.mark.parametrize("challenge", [
    'Digest realm="DS-1a2b3c4d", qop="auth", nonce="4e6a6b4d5a6a", algorithm="MD5"',
    'Digest realm="Login to 7J0ABC", qop="auth", nonce="1234", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    'Digest realm="r", qop="auth,auth-int", nonce="n", algorithm=MD5-sess',
    'Digest realm="r", qop="auth", nonce="n", algorithm=SHA-256',
    'Digest realm="r", qop="auth", nonce="n", algorithm=SHA-256-sess, opaque="o"',
    'Digest realm="old, with comma", nonce="n"',  # RFC 2069: no qop
    'Digest realm="r",nonce=abc,qop=auth,algorithm=MD5',  # tokens, no spaces
])
@pytest.mark.parametrize("user", ["admin", "值班员"])
def test_digest_answer_is_httpx_digestauth_field_for_field(fixed_cnonce, challenge, user):
    target = "/cgi-bin/mediaFileFind.cgi?action=findFile&object=1&condition.Types[0]=dav"
    ours = Digest(user, "pa:ss wörd", parse_challenge(challenge))
    got = [ours.authorization("GET", target) for _ in range(3)]
    want = httpx_headers("GET", "http://127.0.0.1" + target, challenge, user, "pa:ss wörd", times=3)
    assert got == want
    if "qop" in challenge:
        assert "nc=00000003" in got[2]


def test_quoted_pairs_are_unescaped_for_the_hash_and_escaped_again_in_the_answer(fixed_cnonce):
    """RFC 7235 quoted-string: the realm is `a "quoted" realm`; httpx hashes the same value (so the response field
    matches) but echoes it without escapes, which would break the header's quoting."""
    challenge = 'Digest realm="a \\"quoted\\" realm",nonce=abc,qop=auth'
    assert parse_challenge(challenge).realm == 'a "quoted" realm'
    ours = Digest("admin", "pw", parse_challenge(challenge)).authorization("GET", "/x")
    assert 'realm="a \\"quoted\\" realm"' in ours
    theirs = httpx_headers("GET", "http://127.0.0.1/x", challenge, "admin", "pw")[0]
    response = [p for p in theirs.split(", ") if p.startswith("response=")]
    assert response and response[0] in ours


def test_basic_answer_is_httpx_basicauth():
    request = httpx.Request("GET", "http://127.0.0.1/")
    want = next(httpx.BasicAuth("管理员", "p:w").sync_auth_flow(request)).headers["Authorization"]
    assert basic("管理员", "p:w") == want


@pytest.mark.parametrize("header, message", [
    ('Digest realm="r"', "no realm or nonce"),
    ('Digest nonce="n"', "no realm or nonce"),
    ('Digest realm="r", nonce="n", algorithm=SHA-999', "unsupported Digest algorithm"),
    ('Digest realm="r", nonce="n", qop="auth-int"', "only qop=auth"),
    ('Basic realm="r"', "not a Digest challenge"),
])
def test_challenges_we_cannot_answer_are_protocol_errors(header, message):
    with pytest.raises(ProtocolError, match=message):
        parse_challenge(header)


def test_first_digest_challenge_is_picked_among_several():
    ch = first_digest(['Basic realm="x"', 'Digest realm="r", nonce="n", qop="auth"'])
    assert (ch.realm, ch.nonce, ch.qop, ch.algorithm) == ("r", "n", "auth", "MD5")
    with pytest.raises(ProtocolError, match="without a Digest"):
        first_digest(['Basic realm="x"'])


@pytest.mark.parametrize("method, content, headers", [
    ("GET", None, None),
    ("PUT", b"<Time/>", {"Content-Type": "application/xml"}),
    ("POST", None, None),
])
def test_request_head_on_the_wire(method, content, headers):
    """What a device receives: httpx's head (Host with the port, identity encoding asked for), no cookie, no
    proxy header, the Authorization of the answered challenge."""
    seen = []

    def record(dev, h):
        seen.append(dict(h.headers.items()))
        dev._reply(h, 200, b"<Time/>", {"Content-Type": "application/xml", "Set-Cookie": "s=1"})

    with FakeDevice(routes={"/ISAPI/System/time": record}) as fake:
        http = DeviceHTTP(device_id="d", base_url=fake.url, username="admin", password="secret", timeout=1,
                          on_auth_failure=lambda r, a: None)
        for _ in range(2):
            http.request(method, "/ISAPI/System/time", content=content, headers=headers)
        http.close()
    assert len(seen) == 2
    for head in seen:
        assert head["Host"] == f"127.0.0.1:{fake.port}"
        assert (head["Accept"], head["Accept-Encoding"], head["User-Agent"]) == ("*/*", "identity", "canteen-ops")
        assert head["Authorization"].startswith('Digest username="admin", realm=')
        assert 'uri="/ISAPI/System/time"' in head["Authorization"]
        assert "Cookie" not in head and "Proxy-Authorization" not in head
        assert head.get("Content-Length") == (str(len(content)) if content else "0" if method != "GET" else None)
        if headers:
            assert head["Content-Type"] == headers["Content-Type"]


@pytest.mark.parametrize("target", ["ISAPI/System/time", "/a b", "/caf\u00e9", "/a\r\nX: y"])
def test_a_target_that_is_not_ready_for_the_request_line_is_refused_before_sending(target):
    with FakeDevice() as fake:
        http = DeviceHTTP(device_id="d", base_url=fake.url, username="admin", password="secret", timeout=1,
                          on_auth_failure=lambda r, a: None)
        with pytest.raises(ValueError, match="not a request target"):
            http.request("GET", target)
        assert fake.requests == 0


@pytest.mark.parametrize("challenge, message", [
    ('Digest realm="r", qop="auth-int", nonce="n"', "only qop=auth"),
    ('Digest realm="r", nonce="n", algorithm=SHA-999', "unsupported Digest algorithm"),
    ('Digest qop="auth"', "no realm or nonce"),
])
def test_a_challenge_we_cannot_answer_sends_no_credentials_and_is_not_a_failed_login(challenge, message):
    with FakeDevice(challenge=challenge) as fake:
        with HikvisionDriver(device(fake.port), "secret") as drv:
            with pytest.raises(ProtocolError, match=message) as exc:
                drv.login()
            assert not isinstance(exc.value, AuthFailed)
            assert "cam-1" in str(exc.value)
        assert (fake.requests, fake.auth_attempts) == (1, 0)


def test_a_line_break_never_reaches_the_wire_inside_a_header():
    """The inventory refuses such a user name; the wire refuses any header that would end early too."""
    with FakeDevice() as fake:
        http = DeviceHTTP(device_id="d", base_url=fake.url, username="admin\r\nX-Injected: 1", password="secret",
                          timeout=1, on_auth_failure=lambda r, a: None)
        with pytest.raises(ValueError, match="line break"):
            http.request("GET", "/ISAPI/System/time")
        http.close()
        assert (fake.requests, fake.auth_attempts) == (1, 0)  # only the unauthenticated probe went out


@pytest.mark.parametrize("challenges, stale", [
    (['Digest qop="auth", realm="DS-1", nonce="n", stale="TRUE"'], True),  # Hikvision, quoted
    (['Digest realm="Login to X", qop="auth", nonce="n", opaque="o", stale=TRUE'], True),  # Dahua
    (['Digest realm="r", nonce="n", stale = true'], True),
    (['Digest realm="r", nonce="n", stale="FALSE"'], False),
    (['Digest realm="r", nonce="stale=true"'], False),  # inside another value: not a stale flag
    (['Basic realm="stale=true"'], False),
])
def test_stale_is_read_from_the_digest_challenges_params(challenges, stale):
    from canteen_ops.drivers.httpauth import challenge_is_stale, pick_scheme

    assert challenge_is_stale(challenges) is stale
    assert pick_scheme(challenges) == challenges[0].split(" ", 1)[0].lower()
