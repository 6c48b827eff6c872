"""The wire debug log (drivers/wirelog.py): every exchange of every vendor, heads and capped bodies, with the
secrets masked: Digest response/cnonce, Basic credentials, cookies, passwords and WS-Security digests in bodies."""

from __future__ import annotations

import base64
import io

import pytest

from canteen_ops.drivers import wirelog
from canteen_ops.drivers.dahua import DahuaDriver
from canteen_ops.drivers.hikvision import HikvisionDriver

from .fake_digest import FakeDevice
from .test_http_auth import device


@pytest.fixture
def log():
    out = io.StringIO()
    wirelog.enable(out)
    yield out
    wirelog.disable()


def test_digest_exchange_is_logged_with_its_secrets_masked(log):
    def set_password(dev, h):
        dev._reply(h, 200, b'<ResponseStatus><statusCode>1</statusCode></ResponseStatus>',
                   {"Content-Type": "application/xml", "Set-Cookie": "WebSession=abc123"})

    with FakeDevice(routes={"/ISAPI/Security/users/1": set_password}) as fake:
        with HikvisionDriver(device(fake.port), "secret") as drv:
            drv._http.request("PUT", "/ISAPI/Security/users/1",
                              content=b"<User><userName>admin</userName><password>NewPass1!</password></User>")
        sent = [a for a in fake.authorizations if a]
    text = log.getvalue()
    assert f"127.0.0.1:{fake.port} >> PUT /ISAPI/Security/users/1" in text
    assert f"127.0.0.1:{fake.port} << 401" in text and f"127.0.0.1:{fake.port} << 200" in text
    assert 'Digest realm="DS-6e392e44"' in text  # the challenge is shown
    assert 'response=***' in text and 'cnonce=***' in text and 'username="admin"' in text
    assert "<password>***</password>" in text and "NewPass1!" not in text
    assert "Set-Cookie: ***" in text and "abc123" not in text
    digest_response = sent[0].split('response="')[1].split('"')[0]
    cnonce = sent[0].split('cnonce="')[1].split('"')[0]
    assert digest_response not in text and cnonce not in text


def test_basic_credentials_and_key_value_passwords_are_masked(log):
    token = base64.b64encode(b"admin:secret").decode()
    with FakeDevice(scheme="basic") as fake:
        with DahuaDriver(device(fake.port, vendor="dahua", dev_id="d1", auth="basic"), "secret") as drv:
            drv._http.request("GET", "/cgi-bin/userManager.cgi?action=modifyPassword&name=admin&pwd=x&"
                                     "password=Hunter2&pwdOld=secret")
    text = log.getvalue()
    assert "Authorization: Basic ***" in text and token not in text
    assert "Hunter2" not in text and "pwdOld=***" in text and "password=***" in text


def test_a_huge_body_is_cut_in_the_log_and_nothing_is_logged_when_disabled():
    out = io.StringIO()
    wirelog.enable(out)
    try:
        def big(dev, h):
            dev._reply(h, 200, b"x" * 100_000, {"Content-Type": "text/plain"})

        with FakeDevice(routes={"/big": big}) as fake, HikvisionDriver(device(fake.port), "secret") as drv:
            assert len(drv._http.request("GET", "/big").body) == 100_000
    finally:
        wirelog.disable()
    assert "… (100000 bytes in all)" in out.getvalue() and len(out.getvalue()) < 10_000
    with FakeDevice() as fake, HikvisionDriver(device(fake.port), "secret") as drv:
        drv.login()
    assert "(100000 bytes in all)" in out.getvalue() and out.getvalue().count("<< 200") == 1


def test_onvif_ws_security_digest_and_nonce_are_masked():
    body = ('<s:Header><wsse:Security><wsse:UsernameToken><wsse:Username>admin</wsse:Username>'
            '<wsse:Password Type="http://docs.oasis-open.org/wss#PasswordDigest">c2VjcmV0ZGlnZXN0</wsse:Password>'
            '<wsse:Nonce EncodingType="x">bm9uY2U=</wsse:Nonce></wsse:UsernameToken></wsse:Security></s:Header>')
    masked = wirelog.mask_body(body)
    assert "c2VjcmV0ZGlnZXN0" not in masked and "bm9uY2U=" not in masked
    assert "<wsse:Username>admin</wsse:Username>" in masked
    assert wirelog.mask_body('{"userName": "a", "oldPassword": "p1", "password":"p2"}') == \
        '{"userName": "a", "oldPassword": "***", "password":"***"}'


def test_wire_log_to_a_file(tmp_path):
    path = tmp_path / "wire.log"
    wirelog.enable(path)
    try:
        with FakeDevice() as fake, HikvisionDriver(device(fake.port), "secret") as drv:
            drv.login()
    finally:
        wirelog.disable()
    assert "GET /ISAPI/System/deviceInfo" in path.read_text(encoding="utf-8")
