"""Regexes that see foreign text (device answers, notes, upstream replies) stay linear-time.

Each input below kept the old pattern busy for minutes (quadratic backtracking over a long run). The guard is a
thread joined with a generous timeout: a hang fails the test instead of stalling the suite. No speed is asserted.
"""

from __future__ import annotations

import threading

import pytest

from canteen_ops import redact
from canteen_ops.drivers.onvif import channel_number
from canteen_ops.redact import MASK, redact_text, remember_secret
from canteen_ops.tasks import firmware

GUARD_S = 20.0


def finishes(fn, *args):
    """fn(*args)'s value, or a failure if it is still running after GUARD_S (the thread is left to finish)."""
    out: dict = {}

    def target():
        out["value"] = fn(*args)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(GUARD_S)
    assert not t.is_alive(), f"{fn.__name__} did not finish within {GUARD_S} s: super-linear on hostile input"
    return out["value"]


@pytest.mark.parametrize("text", [
    "A" * 1_000_000,  # a device's 1 MB model string: the scheme pattern started at every letter
    "a1" * 500_000,
    "a://" * 250_000,  # many "://", none with userinfo
    "a://" + "b" * 1_000_000,  # userinfo that never ends in "@"
    "x" * 500_000 + "://u:p@h",  # a scheme as long as the note
    "password" + " " * 1_000_000,
    "换硬盘 " * 200_000,
])
def test_redaction_of_a_megabyte_of_hostile_text_finishes(text):
    out = finishes(redact_text, text)
    assert out.endswith(f"u:{MASK}@h") if text.endswith("u:p@h") else out == text


def test_url_passwords_are_masked_wherever_the_scheme_starts():
    cases = {
        "rtsp://admin:pw123@10.0.0.1/1": f"rtsp://admin:{MASK}@10.0.0.1/1",
        "see 1http://admin:pw@h/": f"see 1http://admin:{MASK}@h/",  # a scheme starts with a letter
        "HTTP://a:b@c and ftp://:x@y": f"HTTP://a:{MASK}@c and ftp://:{MASK}@y",
        "a://user@host": "a://user@host",  # no password
        "1://u:p@h": "1://u:p@h",  # no scheme
        "x://u:p@h://v:q@i": f"x://u:{MASK}@h://v:{MASK}@i",
    }
    for text, want in cases.items():
        assert redact_text(text) == want, text


def test_known_secrets_in_a_long_text_are_still_masked(monkeypatch):
    monkeypatch.setattr(redact, "_KNOWN", set())
    remember_secret("Kitchen-Cam-Pw-7")
    text = "y" * 300_000 + " Kitchen-Cam-Pw-7 " + "z" * 300_000  # long text, few secrets: the substring path
    assert finishes(redact.mask_known, text).count(MASK) == 1
    assert redact.mask_known("short Kitchen-Cam-Pw-7") == f"short {MASK}"


@pytest.mark.parametrize("raw", [
    "V5.5.0 build" + " " * 200_000 + "x",
    "V5.5.0" + " " * 200_000 + "build" + " " * 200_000 + "x",
    "build" + " " * 200_000 + "1",
])
def test_firmware_versions_from_devices_parse_in_linear_time(raw):
    for vendor in ("hikvision", "dahua", "onvif"):
        finishes(firmware.parse_version, vendor, raw)


def test_channel_token_of_many_digit_runs():
    token = "VideoSource_" + "1x" * 300_000
    assert finishes(channel_number, token, 3) == 1
    assert channel_number("VideoSource_3", 9) == 3
    assert channel_number("Source_12_main", 9) == 12
