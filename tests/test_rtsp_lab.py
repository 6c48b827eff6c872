"""The lab's RTSP server, driven over real loopback sockets by a raw RTSP client and by PyAV."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import struct
import time

import numpy as np
import pytest

from canteen_ops.lab import rtsp, video
from canteen_ops.lab.rtsp import MAX_PAYLOAD, RtspServerThread, packetize
from tests.rtsp_lab_fixtures import LAB_PASSWORD, LAB_USER


# ------------------------------------------------------------------ a tiny independent RTSP client
class Client:
    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def request(self, method: str, url: str, headers: dict[str, str] | None = None):
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.response()

    def response(self):
        while True:
            while self.buf.startswith(b"$"):  # interleaved data before the reply: skip
                while len(self.buf) < 4:
                    self._fill()
                n = struct.unpack(">H", self.buf[2:4])[0]
                while len(self.buf) < 4 + n:
                    self._fill()
                self.buf = self.buf[4 + n:]
            if b"\r\n\r\n" in self.buf:
                break
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        code = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(hdrs.get("content-length", 0))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        assert hdrs["cseq"] == str(self.cseq)
        return code, hdrs, body

    def interleaved(self):
        """Next interleaved frame: (channel, payload)."""
        while len(self.buf) < 4:
            self._fill()
        assert self.buf[:1] == b"$", self.buf[:20]
        ch, n = self.buf[1], struct.unpack(">H", self.buf[2:4])[0]
        while len(self.buf) < 4 + n:
            self._fill()
        data, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return ch, data


def digest_header(challenge: str, method: str, uri: str, user: str, password: str, nc: int = 1) -> str:
    p = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    ha1 = hashlib.md5(f"{user}:{p['realm']}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    cnonce, ncs = "0a4f113b", f"{nc:08x}"
    resp = hashlib.md5(f"{ha1}:{p['nonce']}:{ncs}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
            f'response="{resp}", algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}"')


def authed(client: Client, method: str, url: str, challenge: str, headers=None, password=LAB_PASSWORD):
    h = dict(headers or {})
    h["Authorization"] = digest_header(challenge, method, url, LAB_USER, password, client.cseq + 1)
    return client.request(method, url, h)


def start_playing(lab, fault=None):
    """DESCRIBE/SETUP/PLAY with Digest; returns (client, sdp text, PLAY headers, challenge)."""
    url = lab.url(fault)
    c = Client(lab.host, lab.port)
    code, h, _ = c.request("DESCRIBE", url)
    assert code == 401
    chal = h["www-authenticate"]
    code, h, body = authed(c, "DESCRIBE", url, chal, {"Accept": "application/sdp"})
    assert code == 200, code
    base = h["content-base"]
    track = base + re.search(r"a=control:(trackID=\d+)", body.decode()).group(1)
    code, h, _ = authed(c, "SETUP", track, chal, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
    assert code == 200
    session = h["session"].split(";")[0]
    code, ph, _ = authed(c, "PLAY", url, chal, {"Session": session, "Range": "npt=0.000-"})
    assert code == 200
    return c, body.decode(), ph, chal


def read_access_units(c: Client, count: int):
    """Reassemble `count` access units from RTP (RFC 6184): list of (timestamp, seq list, [NAL units])."""
    units, current, ts_cur, seqs = [], [], None, []
    fu = None
    while len(units) < count:
        ch, pkt = c.interleaved()
        if ch != 0:
            continue
        v, pt_m, seq, ts, _ssrc = struct.unpack(">BBHII", pkt[:12])
        assert v >> 6 == 2 and pt_m & 0x7F == 96
        payload = pkt[12:]
        kind = payload[0] & 0x1F
        if kind == 28:  # FU-A
            ind, hdr = payload[0], payload[1]
            if hdr & 0x80:
                fu = bytearray([(ind & 0xE0) | (hdr & 0x1F)])
            fu += payload[2:]
            if hdr & 0x40:
                current.append(bytes(fu))
                fu = None
        else:
            current.append(payload)
        seqs.append(seq)
        ts_cur = ts
        if pt_m & 0x80:  # marker: last packet of the access unit
            units.append((ts_cur, seqs, current))
            current, seqs = [], []
    return units


# ------------------------------------------------------------------ packetization and loops (no sockets)
def test_packetize_single_nal_and_fu_a_roundtrip():
    small = bytes([0x65]) + bytes(range(200))
    assert packetize(small) == [small]
    big = bytes([0x65]) + np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    parts = packetize(big)
    assert len(parts) == -(-(len(big) - 1) // (MAX_PAYLOAD - 2))
    assert all(len(p) <= MAX_PAYLOAD for p in parts)
    assert all(p[0] & 0x1F == 28 and p[0] & 0x60 == 0x60 for p in parts)  # FU-A, NRI kept
    assert parts[0][1] & 0x80 and not parts[0][1] & 0x40
    assert parts[-1][1] & 0x40 and not parts[-1][1] & 0x80
    assert all(p[1] & 0x1F == 5 for p in parts)
    rebuilt = bytes([(parts[0][0] & 0xE0) | (parts[0][1] & 0x1F)]) + b"".join(p[2:] for p in parts)
    assert rebuilt == big


def test_split_annexb_handles_3_and_4_byte_start_codes():
    data = b"\x00\x00\x00\x01\x67AB\x00\x00\x01\x68C\x00\x00\x00\x01\x65DEF"
    assert video.split_annexb(data) == [b"\x67AB", b"\x68C", b"\x65DEF"]


def test_loop_cache_encodes_once_and_round_trips_through_disk(tmp_path):
    cache = video.LoopCache(tmp_path)
    a = cache.get("kitchen", 160, 90, 10)
    b = cache.get("kitchen", 160, 90, 10)
    assert a is b and cache.encodes == 1
    assert len(a.frames) == 20 and a.frames[0][0][0] & 0x1F == 7  # SPS leads the IDR access unit
    assert sum(1 for f in a.frames for n in f if n[0] & 0x1F == 5) >= 1
    again = video.LoopCache(tmp_path).get("kitchen", 160, 90, 10)  # a new process: read from disk
    assert again == a
    assert list(tmp_path.glob("*.h264loop"))


def test_lab_refuses_non_loopback_addresses():
    with RtspServerThread() as lab:
        with pytest.raises(ValueError, match="loopback"):
            lab.add_stream("10.1.2.3", 0, "/x", 160, 90, 10)


# ------------------------------------------------------------------ the protocol over sockets
def test_options_and_describe_challenge_then_sdp(rtsp_lab):
    c = Client(rtsp_lab.host, rtsp_lab.port)
    try:
        code, h, _ = c.request("OPTIONS", rtsp_lab.url())
        assert code == 200
        assert {"DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER"} <= set(
            m.strip() for m in h["public"].split(","))
        code, h, _ = c.request("DESCRIBE", rtsp_lab.url())
        assert code == 401
        assert h["www-authenticate"].startswith("Digest ") and 'qop="auth"' in h["www-authenticate"]
        code, h, body = authed(c, "DESCRIBE", rtsp_lab.url(), h["www-authenticate"])
        assert code == 200 and h["content-type"] == "application/sdp"
        sdp = body.decode()
        assert "m=video 0 RTP/AVP 96" in sdp and "a=rtpmap:96 H264/90000" in sdp
        assert "a=control:trackID=1" in sdp and "packetization-mode=1" in sdp
        sprop = re.search(r"sprop-parameter-sets=([^;\r\n]+)", sdp).group(1)
        sps, pps = (base64.b64decode(x) for x in sprop.split(","))
        assert sps[0] & 0x1F == 7 and pps[0] & 0x1F == 8
        assert re.search(r"profile-level-id=([0-9A-F]{6})", sdp).group(1) == sps[1:4].hex().upper()
        assert "a=x-dimensions:320,180" in sdp
    finally:
        c.close()


def test_rtp_over_tcp_timestamps_sequence_pacing_and_decoding(rtsp_lab):
    import av

    c, sdp, play, chal = start_playing(rtsp_lab)
    try:
        m = re.search(r"seq=(\d+);rtptime=(\d+)", play["rtp-info"])
        seq0, ts0 = int(m.group(1)), int(m.group(2))
        t0 = time.monotonic()
        units = read_access_units(c, 15)
        elapsed = time.monotonic() - t0
        # 15 frames at 25 fps: the last one is due 14/25 s after the first
        assert elapsed >= 0.45, elapsed
        assert units[0][0] == ts0 and units[0][1][0] == seq0
        assert [u[0] - units[0][0] for u in units] == [i * 3600 for i in range(15)]  # 90 kHz / 25 fps
        seqs = [s for u in units for s in u[1]]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
        first_types = [n[0] & 0x1F for n in units[0][2]]
        assert first_types[:2] == [7, 8] and 5 in first_types  # SPS, PPS, IDR slices
        assert any(len(n) > MAX_PAYLOAD for u in units for n in u[2]), "no FU-A was exercised"
        ctx = av.CodecContext.create("h264", "r")
        decoded = []
        for _, _, nals in units:
            for frame in ctx.decode(av.Packet(b"".join(b"\x00\x00\x00\x01" + n for n in nals))):
                decoded.append(frame)
        assert len(decoded) >= 14 and (decoded[0].width, decoded[0].height) == (320, 180)
        code, _, _ = authed(c, "GET_PARAMETER", rtsp_lab.url(), chal, {"Session": play["session"]})
        assert code == 200
        code, _, _ = authed(c, "TEARDOWN", rtsp_lab.url(), chal, {"Session": play["session"]})
        assert code == 200
    finally:
        c.close()


def test_keepalive_and_teardown_close_the_session(rtsp_lab):
    url = rtsp_lab.url()
    c = Client(rtsp_lab.host, rtsp_lab.port)
    try:
        chal = c.request("DESCRIBE", url)[1]["www-authenticate"]
        code, h, body = authed(c, "DESCRIBE", url, chal)
        track = h["content-base"] + "trackID=1"
        code, h, _ = authed(c, "SETUP", track, chal, {"Transport": "RTP/AVP;unicast;client_port=5000-5001"})
        assert code == 461  # UDP is not offered: TCP interleaved only
        code, h, _ = authed(c, "SETUP", track, chal, {"Transport": "RTP/AVP/TCP;unicast;interleaved=2-3"})
        assert code == 200 and "interleaved=2-3" in h["transport"]
        session = h["session"].split(";")[0]
        assert "timeout=" in h["session"]
        code, _, _ = authed(c, "GET_PARAMETER", url, chal, {"Session": session})
        assert code == 200
        code, _, _ = authed(c, "PLAY", url, chal, {"Session": "wrong"})
        assert code == 454
        code, _, _ = authed(c, "PLAY", url, chal, {"Session": session})
        assert code == 200
        ch, _ = c.interleaved()
        assert ch == 2
        code, _, _ = authed(c, "TEARDOWN", url, chal, {"Session": session})
        assert code == 200
        with pytest.raises((ConnectionError, OSError)):
            for _ in range(10000):  # drain what was in flight, then the server closes
                c._fill()
                c.buf = b""
    finally:
        c.close()


def test_wrong_digest_password_is_401_and_counted_once(rtsp_lab):
    stream = rtsp_lab.stream("frozen")
    before = stream.auth_failures
    c = Client(rtsp_lab.host, rtsp_lab.port)
    try:
        url = rtsp_lab.url("frozen")
        chal = c.request("DESCRIBE", url)[1]["www-authenticate"]
        assert stream.auth_failures == before  # asking without credentials is not a failed login
        code, h, _ = authed(c, "DESCRIBE", url, chal, password="wrong")
        assert code == 401 and "www-authenticate" in h
        assert stream.auth_failures == before + 1
    finally:
        c.close()


def test_unknown_path_is_404(rtsp_lab):
    c = Client(rtsp_lab.host, rtsp_lab.port)
    try:
        assert c.request("DESCRIBE", rtsp_lab.url(path="/Streaming/Channels/9901"))[0] == 404
        assert c.request("FLY", rtsp_lab.url())[0] == 501
    finally:
        c.close()


def test_basic_auth_many_addresses_and_listener_faults():
    with RtspServerThread() as lab:
        a = lab.add_stream("127.0.1.21", 0, "/cam/realmonitor?channel=1&subtype=0", 160, 90, 10,
                           credentials=("admin", "b4sic!"), auth="basic")
        b = lab.add_stream("127.0.1.22", a.port, "/Streaming/Channels/101", 160, 90, 10)
        for s in (a, b):
            c = Client(s.host, s.port)
            assert c.request("OPTIONS", s.url)[0] == 200
            c.close()
        c = Client(a.host, a.port)
        code, h, _ = c.request("DESCRIBE", a.url)
        assert code == 401 and h["www-authenticate"].startswith("Basic ")
        good = base64.b64encode(b"admin:b4sic!").decode()
        code, h, body = c.request("DESCRIBE", a.url, {"Authorization": f"Basic {good}"})
        assert code == 200 and b"sprop-parameter-sets" in body
        assert h["content-base"] == a.url + "/"
        bad = base64.b64encode(b"admin:nope").decode()
        assert c.request("DESCRIBE", a.url, {"Authorization": f"Basic {bad}"})[0] == 401
        assert a.auth_failures == 1
        c.close()
        # offline: refused; back online: accepted again
        lab.set_listener_fault(a.host, a.port, "offline")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((a.host, a.port), timeout=2)
        lab.set_listener_fault(a.host, a.port, None)
        socket.create_connection((a.host, a.port), timeout=2).close()
        # black hole: accepts, never answers
        lab.set_listener_fault(b.host, b.port, "black_hole")
        s = socket.create_connection((b.host, b.port), timeout=0.5)
        s.sendall(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        with pytest.raises(socket.timeout):
            s.recv(100)
        s.close()


def test_fault_change_while_playing_switches_the_picture(rtsp_lab):
    import av

    path = "/Streaming/Channels/9101"
    lab = rtsp_lab.thread
    lab.add_stream(rtsp_lab.host, rtsp_lab.port, path, 320, 180, 25, credentials=(LAB_USER, LAB_PASSWORD),
                   warm=True)
    url = f"rtsp://{LAB_USER}:{LAB_PASSWORD}@{rtsp_lab.host}:{rtsp_lab.port}{path}"
    container = av.open(url, options={"rtsp_transport": "tcp", "timeout": "5000000"}, timeout=10)
    try:
        lumas = []
        switched_at = None
        for i, frame in enumerate(container.decode(video=0)):
            lumas.append(float(frame.to_ndarray(format="gray")[40:].mean()))
            if i == 5:
                lab.set_fault(rtsp_lab.host, rtsp_lab.port, path, "black")
                switched_at = i
            if i > 60 or (switched_at and lumas[-1] < 2):
                break
        assert lumas[0] > 100
        assert lumas[-1] < 2, lumas  # the stream turned black without reconnecting
    finally:
        container.close()
        lab.set_fault(rtsp_lab.host, rtsp_lab.port, path, None)


def test_fleet_hooks_drive_faults_and_credentials_and_see_logins():
    """A fleet keeps device state elsewhere (lab/state.py): hooks read it live, hyphenated names included."""
    state = {"fault": None, "password": "first-pw", "logins": []}
    with RtspServerThread() as lab:
        s = lab.add_stream("127.0.1.23", 0, "/ch1/main", 160, 90, 10,
                           fault_source=lambda: state["fault"],
                           credentials_source=lambda: ("admin", state["password"]),
                           on_login=state["logins"].append)
        c = Client(s.host, s.port)
        chal = c.request("DESCRIBE", s.url)[1]["www-authenticate"]
        h = {"Authorization": digest_header(chal, "DESCRIBE", s.url, "admin", "first-pw")}
        code, _, body = c.request("DESCRIBE", s.url, h)
        assert code == 200 and b"x-dimensions:160,90" in body
        state["fault"] = "low-res"  # the fleet's spelling
        assert s.current_fault() == "low_resolution" and s.geometry() == (80, 44)
        code, _, body = c.request("DESCRIBE", s.url, h)
        assert code == 200 and b"x-dimensions:80,44" in body  # what it advertises is what it will stream
        state["password"] = "changed"  # the device was re-keyed ("wrong-password" fault)
        h = {"Authorization": digest_header(chal, "DESCRIBE", s.url, "admin", "first-pw", 3)}
        assert c.request("DESCRIBE", s.url, h)[0] == 401
        assert state["logins"] == [True, True, False]
        c.close()
        with pytest.raises(ValueError):
            lab.set_fault(s.host, s.port, s.path, "smudge")
        lab.set_fault(s.host, s.port, s.path, "colour-cast")
        assert s.fault == "colour_cast"


def test_hostile_requests_cost_only_their_own_connection(rtsp_lab):
    def raw(data: bytes) -> bytes:
        s = socket.create_connection((rtsp_lab.host, rtsp_lab.port), timeout=3)
        try:
            s.sendall(data)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk
        except (ConnectionResetError, socket.timeout):
            return out
        finally:
            s.close()

    assert raw(b"HELLO\r\n\r\n").startswith(b"RTSP/1.0 400")
    assert raw(b"DESCRIBE rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n").startswith(
        b"RTSP/1.0 400")
    assert raw(b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 100_000 + b"\r\n\r\n") == b""  # oversized head: closed
    assert raw(b"\xff\xfe\x00garbage\r\n\r\n").startswith(b"RTSP/1.0 400")
    c = Client(rtsp_lab.host, rtsp_lab.port)  # the server is unharmed
    assert c.request("OPTIONS", rtsp_lab.url())[0] == 200
    c.close()
