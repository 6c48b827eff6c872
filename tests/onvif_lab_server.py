"""A minimal loopback HTTP adapter that serves canteen_ops.lab.onvif.handle for tests.

It plays the part of the lab's HTTP core for the transport-level faults (offline, blackhole, slow) and counts
the requests each device receives, so tests can assert what went over the wire.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from canteen_ops.lab import onvif as lab_onvif
from canteen_ops.lab.state import ChannelState, DeviceState, Disk
from canteen_ops.lab.wire import Request


def make_state(device_id: str = "cam1", kind: str = "camera", channels: int = 1, **kw) -> DeviceState:
    chans = [ChannelState(id=i, name=f"后厨{i}号", rtsp_path=f"/ch{i}/main") for i in range(1, channels + 1)]
    defaults = dict(
        id=device_id, kind=kind, vendor="onvif", host="127.0.0.1", http_port=0, rtsp_port=8554,
        username="admin", password="s3cret-Pass", model="LAB-IPC-2142" if kind == "camera" else "LAB-NVR-7608",
        serial=f"SN-{device_id}", firmware="V5.7.18 build 240826", mac="00:11:22:33:44:55", name=f"食堂 {device_id}",
        channels=chans, disks=[Disk(1)] if kind == "nvr" else [],
    )
    defaults.update(kw)
    return DeviceState(**defaults)


class LabServer:
    """Serves one DeviceState on 127.0.0.1:<ephemeral port>; `with LabServer(state) as srv: srv.port`."""

    def __init__(self, state: DeviceState):
        self.state = state
        self.requests: list[str] = []  # the SOAP action of every request received
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 64 * 1024  # head and body in one send: no Nagle/delayed-ACK stall per answer
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def _serve(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append(_action(body))
                st = outer.state
                if st.has("blackhole"):
                    outer._stop.wait(30)
                    self.close_connection = True
                    return
                if st.has("slow"):
                    time.sleep(st.fault_value("slow", 2000) / 1000)
                url = urlsplit(self.path)
                req = Request(method, url.path, dict(parse_qsl(url.query)),
                              {k.lower(): v for k, v in self.headers.items()}, body, self.client_address[0])
                resp = lab_onvif.handle(st, req)
                self.send_response(resp.status)
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                try:
                    self.wfile.write(resp.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        state.http_port = self.port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "LabServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/onvif/device_service"


def _action(body: bytes) -> str:
    """The local name of the first Body child, found cheaply (for request counting only)."""
    i = body.find(b"Body")
    if i < 0:
        return ""
    j = body.find(b"<", i + 4)
    end = min((k for k in (body.find(b" ", j), body.find(b">", j), body.find(b"/", j)) if k > 0), default=-1)
    tag = body[j + 1:end].decode(errors="replace")
    return tag.rsplit(":", 1)[-1]


def closed_port() -> int:
    """A loopback port that refuses connections (bound, then closed)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
