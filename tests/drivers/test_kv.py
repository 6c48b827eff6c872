"""Dahua key=value bodies → flat and nested data, with the sample bodies of protocols.md §B as fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from canteen_ops.drivers import kv
from canteen_ops.drivers.base import NotSupported, ProtocolError

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "dahua"


def body(name: str) -> str:
    return kv.decode((FIX / name).read_bytes())


def test_general_table_nests_by_dots():
    tree = kv.parse(body("general.txt"))
    general = tree["table"]["General"]
    assert general == {"MachineName": "NVR", "LocalNo": "8", "LockLoginEnable": "true",
                       "LockLoginTimes": "5", "LoginFailLockTime": "300"}


def test_storage_sample_nests_lists_by_index():
    tree = kv.parse(body("storage.txt"))
    info = tree["list"]["info"]
    assert len(info) == 1
    assert info[0]["State"] == "Success"
    assert info[0]["Name"] == "/dev/sda"
    assert [d["Path"] for d in info[0]["Detail"]] == ["/dev/sda0", "/dev/sda1"]
    assert info[0]["Detail"][0]["TotalBytes"] == "495636709376.000000"


def test_values_split_on_first_equals_only_and_keep_utf8():
    flat = kv.parse_flat(body("channel_title.txt"))
    assert flat["table.ChannelTitle[2].Name"] == "专间=1号"
    assert kv.parse(body("channel_title.txt"))["table"]["ChannelTitle"][0]["Name"] == "加工区"
    assert kv.parse_flat(body("software_version.txt")) == {"version": "2.800.0000016.0.R,build:2020-06-05"}


def test_double_index_and_sparse_positions():
    tree = kv.parse(body("record.txt"))
    sections = tree["table"]["Record"][0]["TimeSection"]
    assert sections[0][0] == "1 00:00:00-24:00:00"
    assert sections[0][1] == "0 00:00:00-24:00:00"
    sparse = kv.parse("channels[3]=x\n")
    assert sparse["channels"] == [None, None, None, "x"]


def test_find_next_file_items():
    tree = kv.parse(body("find_next_file.txt"))
    assert tree["found"] == "2"
    assert tree["items"][0]["FilePath"].endswith("[M][0@0][0].mp4")
    assert tree["items"][0]["Flags"] == ["Event"]
    assert tree["items"][1]["StartTime"] == "2020-01-06 06:13:00"


def test_lf_crlf_and_blank_lines():
    assert kv.parse_flat("a=1\r\n\r\nb=2\nc=3\r") == {"a": "1", "b": "2", "c": "3"}
    assert kv.is_ok(body("ok.txt"))
    assert not kv.is_ok("result=1")


def test_error_bodies():
    with pytest.raises(kv.DahuaPermissionDenied) as exc:
        kv.parse(body("error_authorization.txt"))
    assert isinstance(exc.value, NotSupported) and isinstance(exc.value, ProtocolError)
    assert "Authorization Failed" in str(exc.value)
    with pytest.raises(kv.DahuaError, match="Bad Request"):
        kv.parse_flat(body("error_bad_request.txt"))
    with pytest.raises(kv.DahuaError) as exc2:
        kv.check_error(body("error_no_events.txt"))
    assert exc2.value.detail == "No Events"


def test_value_and_parent_at_once_keeps_both():
    tree = kv.parse("a.b=1\na.b.c=2\n")
    assert tree["a"]["b"] == {"": "1", "c": "2"}


@pytest.mark.parametrize("text", [
    "items[999999999].Channel=0\n",  # would allocate a billion-entry list
    "a[0]=1\na.b=2\n",  # list and dict under the same name
])
def test_hostile_shapes_are_protocol_errors(text):
    with pytest.raises(ProtocolError):
        kv.parse(text)


def test_too_many_lines_refused():
    with pytest.raises(ProtocolError, match="lines"):
        kv.parse_flat("a=1\n" * (kv.MAX_LINES + 1))


@pytest.mark.parametrize("raw", [
    b"deviceType=IPC\r\nserialNumber=4X7C\xff\xfe\x00 garbled line without separator",  # the lab's malformed fault
    b"deviceType=IPC\r\njust some words\r\n",
    b"a=1\r\nb=\x01\x02\r\n",
])
def test_garbled_answers_are_refused(raw):
    with pytest.raises(ProtocolError):
        kv.parse_flat(kv.decode(raw))


def test_ok_body_is_empty_data():
    assert kv.parse_flat("OK\r\n") == {}
