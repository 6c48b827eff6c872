"""pytest plugin: an in-process RTSP lab (one server thread per test session) with a stream per fault."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

LAB_USER = "admin"
LAB_PASSWORD = "Lab-Secret-7321"  # distinctive, so tests can assert it never shows up in output
LAB_HOST = "127.0.1.7"
FAULTS = ("black", "frozen", "blurred", "covered", "colour_cast", "low_resolution", "no_stream")


@dataclass
class RtspLab:
    thread: object  # canteen_ops.lab.rtsp.RtspServerThread
    host: str
    port: int
    paths: dict = field(default_factory=dict)  # fault (None = healthy) -> path

    def url(self, fault: str | None = None, path: str | None = None) -> str:
        return f"rtsp://{self.host}:{self.port}{path or self.paths[fault]}"

    def stream(self, fault: str | None = None):
        return self.thread.stream(self.host, self.port, self.paths[fault])


@pytest.fixture(scope="session")
def rtsp_lab(tmp_path_factory):
    """320x180 @ 25 fps streams behind Digest auth: the healthy one at /Streaming/Channels/101, one per fault."""
    from canteen_ops.lab.rtsp import RtspServerThread

    with RtspServerThread(cache_dir=tmp_path_factory.mktemp("rtsp-loops")) as thread:
        creds = (LAB_USER, LAB_PASSWORD)
        first = thread.add_stream(LAB_HOST, 0, "/Streaming/Channels/101", 320, 180, 25, credentials=creds)
        lab = RtspLab(thread, LAB_HOST, first.port, {None: "/Streaming/Channels/101"})
        for i, fault in enumerate(FAULTS, start=2):
            path = f"/Streaming/Channels/{i}01"
            thread.add_stream(LAB_HOST, lab.port, path, 320, 180, 25, credentials=creds, fault=fault)
            lab.paths[fault] = path
        yield lab
