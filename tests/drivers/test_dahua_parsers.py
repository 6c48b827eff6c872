"""Dahua CGI parsers against the samples of protocols.md §B (tests/fixtures/dahua)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from canteen_ops.drivers import dahua as D
from canteen_ops.drivers import kv
from canteen_ops.drivers.base import ProtocolError

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "dahua"
UTC = dt.timezone.utc


def flat(name: str) -> dict[str, str]:
    return kv.parse_flat(kv.decode((FIX / name).read_bytes()))


def tree(name: str):
    return kv.parse(kv.decode((FIX / name).read_bytes()))


def test_facts_from_magicbox():
    network = kv.parse("table.Network.DefaultInterface=eth0\ntable.Network.eth0.PhysicalAddress=3C:EF:8C:11:22:33\n"
                       "table.Network.eth0.IPAddress=192.168.1.108\n")
    f = D.parse_facts(flat("system_info.txt"), flat("software_version.txt"), flat("machine_name.txt"), network,
                      "camera")
    assert (f.vendor, f.model, f.serial) == ("dahua", "IPC-HDW5831R-ZE", "4X7C5A1ZAG21L3F")
    assert f.firmware == "2.800.0000016.0.R,build:2020-06-05"
    assert (f.name, f.mac, f.hardware, f.device_type) == ("FrontDoorCam", "3c:ef:8c:11:22:33", "1.00", "IPC")


def test_storage_sample_ok():
    disks = D.parse_storage(tree("storage.txt"))
    assert len(disks) == 1
    d = disks[0]
    assert (d.id, d.status, d.raw_status, d.name) == ("1", "ok", "Success", "/dev/sda")
    assert d.capacity_mb == pytest.approx(495636709376 / 2**20)
    assert d.free_mb is None  # no UsedBytes in the sample: free space unknown, not zero


def test_storage_faults():
    disks = D.parse_storage(tree("storage_faults.txt"))
    assert [(d.status, d.raw_status) for d in disks] == [("error", "Failure"), ("ok", "Success"),
                                                         ("error", "Degraded")]
    assert disks[0].free_mb == pytest.approx((4000787030016 - 1000000000000) / 2**20)
    assert disks[1].free_mb == pytest.approx(500000000000 / 2**20)  # summed over partitions
    assert disks[1].read_only is True
    full = D.parse_storage(kv.parse("list.info[0].State=Success\nlist.info[0].Detail[0].TotalBytes=100.0\n"
                                    "list.info[0].Detail[0].UsedBytes=100.0\n"))
    assert full[0].status == "full"
    assert disks[2].name == "SD0"
    unknown = D.parse_storage(kv.parse("list.info[0].State=Sleepy\nlist.info[0].Name=/dev/sda\n"))
    assert unknown[0].status == "unknown"


def test_current_time_is_local_wall_clock():
    raw = flat("current_time.txt")["result"]
    local = D.parse_dahua_time(raw)
    assert local == dt.datetime(2026, 7, 2, 19, 9, 25)
    # no explicit offset: read in the inventory zone (Asia/Shanghai = UTC+8)
    assert D.local_to_utc(local, None, "Asia/Shanghai") == dt.datetime(2026, 7, 2, 11, 9, 25, tzinfo=UTC)
    # DST-aware when the assumed zone has DST
    assert D.local_to_utc(local, None, "Europe/Berlin") == dt.datetime(2026, 7, 2, 17, 9, 25, tzinfo=UTC)
    assert D.local_to_utc(local, dt.timedelta(hours=-5), "Asia/Shanghai").hour == 0
    with pytest.raises(ProtocolError):
        D.parse_dahua_time("yesterday")


def test_time_zone_only_from_an_explicit_offset():
    assert D.explicit_offset(flat("ntp.txt")) is None  # TimeZone=13: an index we do not guess at
    assert D.explicit_offset({"table.NTP.TimeZoneDesc": "GMT+08:00"}) == dt.timedelta(hours=8)
    assert D.explicit_offset({"table.NTP.TimeZoneDesc": "(UTC-05:30) Somewhere"}) == dt.timedelta(hours=-5,
                                                                                                 minutes=-30)
    assert D.explicit_offset({"table.NTP.TimeZoneDesc": "Beijing"}) is None


def test_utc_to_local_round_trip():
    t = dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert D.utc_to_local(t, None, "Asia/Shanghai") == dt.datetime(2026, 1, 1, 8, 0)
    assert D.local_to_utc(D.utc_to_local(t, None, "Asia/Shanghai"), None, "Asia/Shanghai") == t


def test_video_loss_and_titles():
    assert D.parse_video_loss(tree("videoloss.txt")) == {2, 5}
    assert D.parse_channel_titles(tree("channel_title.txt")) == ["加工区", "烹饪区", "专间=1号"]


def test_find_items():
    found, items = D.parse_find_items(flat("find_next_file.txt"))
    assert found == 2
    assert items == [(dt.datetime(2020, 1, 6, 6, 5), dt.datetime(2020, 1, 6, 6, 13)),
                     (dt.datetime(2020, 1, 6, 6, 13), dt.datetime(2020, 1, 6, 7, 0))]
    assert D.parse_find_items(flat("find_next_file_end.txt")) == (0, [])
    # item order comes from the index, not from the line order; an item without both times is skipped
    assert D.parse_find_items({"found": "3", "items[10].StartTime": "2020-01-06 08:00:00",
                               "items[10].EndTime": "2020-01-06 09:00:00", "items[2].StartTime": "2020-01-06 06:00:00",
                               "items[2].EndTime": "2020-01-06 07:00:00", "items[5].StartTime": "2020-01-06 07:00:00"}
                              )[1] == [(dt.datetime(2020, 1, 6, 6), dt.datetime(2020, 1, 6, 7)),
                                       (dt.datetime(2020, 1, 6, 8), dt.datetime(2020, 1, 6, 9))]
    for bad in ("2020-13-06 06:05:00", "2020-01-06T06:05:00", "yesterday", "2020-01-06 06:05"):
        with pytest.raises(ProtocolError, match="unreadable Dahua time"):
            D.parse_dahua_time(bad)


def test_encode():
    streams = D.parse_encode(tree("encode.txt"))
    assert [(s["channel"], s["main"], s["codec"], s["width"], s["height"], s["fps"], s["bitrate_kbps"])
            for s in streams] == [(1, True, "H.265", 3840, 2160, 25.0, 4096.0),
                                  (1, False, "H.264", 704, 480, 15.0, 512.0)]


def test_upgrade_state():
    st = D.parse_upgrade_state(flat("upgrade_state.txt"))
    assert (st.upgrading, st.percent, st.state) == (True, 37, "Upgrading")
    idle = D.parse_upgrade_state({"State": "Idle", "Progress": "0"})
    assert idle.upgrading is False


def test_query_keeps_brackets_and_quotes_spaces():
    q = D.query("findFile", ("object", 123), ("condition.Types[0]", "dav"),
                ("condition.StartTime", "2020-01-02 03:04:05"))
    assert q == "action=findFile&object=123&condition.Types[0]=dav&condition.StartTime=2020-01-02%2003:04:05"


def test_strip_secrets():
    data = {"users": [{"Name": "admin", "Password": "x", "Group": "admin"}], "table": {"PPPoE": {"Pwd": "y"}}}
    assert D.strip_secrets(data) == {"users": [{"Name": "admin", "Group": "admin"}], "table": {"PPPoE": {}}}
