"""Hardened XML parsing: namespaces by local name, hostile documents refused as ProtocolError."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from canteen_ops.drivers import xmlsafe as X
from canteen_ops.drivers.base import ProtocolError
from tests.isolated import run_isolated

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "hikvision"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<DeviceInfo><deviceName>&lol9;</deviceName></DeviceInfo>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<DeviceInfo><deviceName>&xxe;</deviceName></DeviceInfo>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE DeviceInfo SYSTEM "http://127.0.0.1:9/evil.dtd">
<DeviceInfo><deviceName>x</deviceName></DeviceInfo>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [ <!ENTITY % p SYSTEM "http://127.0.0.1:9/x"> %p; ]>
<r/>"""


HOSTILE = {"billion-laughs": BILLION_LAUGHS, "external-entity": EXTERNAL_ENTITY, "external-dtd": EXTERNAL_DTD,
           "parameter-entity": PARAMETER_ENTITY}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_documents_are_refused(name):
    with pytest.raises(ProtocolError, match="hostile XML|malformed"):
        X.parse(HOSTILE[name], what="dev1: /ISAPI/System/deviceInfo")


def _peaks_refusing_hostile() -> dict[str, int]:
    """Peak traced memory while each hostile document is refused (in a fresh interpreter: tests/isolated.py)."""
    peaks = {}
    for name, body in HOSTILE.items():
        tracemalloc.start()
        try:
            with pytest.raises(ProtocolError):
                X.parse(body, what="dev1: /ISAPI/System/deviceInfo")
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peaks


def test_hostile_documents_are_refused_without_expanding():
    peaks = run_isolated(_peaks_refusing_hostile)
    assert set(peaks) == set(HOSTILE) and all(p < 2 * 1024 * 1024 for p in peaks.values()), peaks


@pytest.mark.parametrize("body", [
    b"<DeviceInfo><model>DS-2CD</model>",  # truncated, as the lab's malformed-xml fault sends
    b"<DeviceInfo><model>DS-2CD</mode></DeviceInfo>",
    b"not xml at all",
    b"",
    b"   \r\n ",
    b"<?xml version='1.0' encoding='utf-16'?><a/>",
], ids=["truncated", "mismatched", "text", "empty", "blank", "bad-encoding"])
def test_malformed_documents_are_protocol_errors(body):
    with pytest.raises(ProtocolError):
        X.parse(body)


def test_size_cap_is_enforced_before_parsing():
    big = b"<a>" + b"x" * (X.DEFAULT_MAX_BYTES + 1) + b"</a>"
    with pytest.raises(ProtocolError, match="exceeds"):
        X.parse(big)
    assert X.parse(b"<a>" + b"x" * 1000 + b"</a>", max_bytes=2000).text.startswith("x")


def test_bom_and_leading_whitespace_are_tolerated():
    root = X.parse(b"\xef\xbb\xbf\r\n  <?xml version='1.0'?><Time><timeMode>NTP</timeMode></Time>")
    assert X.text(root, "timeMode") == "NTP"


@pytest.mark.parametrize("name,ns", [
    ("deviceInfo_ipc.xml", "http://www.hikvision.com/ver20/XMLSchema"),
    ("deviceInfo_nvr.xml", "http://www.isapi.org/ver20/XMLSchema"),
    ("deviceInfo_psia.xml", "urn:psialliance-org"),
])
def test_lookup_by_local_name_across_namespaces(name, ns):
    root = X.parse((FIX / name).read_bytes())
    assert root.tag == "{%s}DeviceInfo" % ns
    assert X.local(root.tag) == "DeviceInfo"
    assert X.text(root, "model")
    assert X.find(root, "serialNumber") is not None
    assert X.text(root, "noSuchElement", "dflt") == "dflt"


def test_nested_namespace_switch_is_transparent():
    # storage is ver20, its hddList/nasList are ver10: paths still resolve by local name.
    root = X.parse((FIX / "storage_hdd1_nas1.xml").read_bytes())
    assert [X.text(h, "hddName") for h in X.findall(root, "hddList/hdd")] == ["hdde"]
    assert X.text(X.find(root, "//nas"), "nasType") == "NFS"
    assert X.integer(X.find(root, "hddList/hdd"), "capacity") == 30436
    assert X.number(X.find(root, "hddList/hdd"), "freeSpace") == 27392.0
    assert X.boolean(X.parse(b"<a><b>true</b><c>0</c><d>maybe</d></a>"), "b") is True


def test_to_dict_groups_repeats_and_drops_secrets():
    root = X.parse((FIX / "inputproxy_channels.xml").read_bytes())
    d = X.to_dict(root)
    chans = d["InputProxyChannel"]
    assert isinstance(chans, list) and len(chans) == 2
    assert chans[0]["name"] == "加工区"
    assert "password" not in chans[1]["sourceInputPortDescriptor"]
    assert "should-never-appear" not in repr(d)
    assert chans[1]["sourceInputPortDescriptor"]["userName"] == "admin"


def test_to_dict_refuses_absurd_nesting():
    deep = b"<a>" * 200 + b"x" + b"</a>" * 200
    with pytest.raises(ProtocolError, match="nested"):
        X.to_dict(X.parse(deep))


def test_local_name_lookups_match_whole_names_only():
    root = X.parse(b'<a xmlns="urn:x"><xname>1</xname><name>2</name><!-- c --><b><name>3</name></b>'
                   b'<y:name xmlns:y="urn:y">4</y:name></a>')
    assert [e.text for e in X.iter_local(root, "name")] == ["2", "3", "4"]
    assert [e.text for e in X.children(root, "name")] == ["2", "4"]
    assert X.text(root, "b/name") == "3" and X.find(root, "ame") is None
    assert X.integer(X.find(root, "xname")) == 1
