"""The request/response shapes every lab protocol handler speaks.

A protocol module exposes `handle(state: DeviceState, req: Request) -> Response`; the lab's HTTP core
(canteen_ops.lab.http) parses sockets into Request and writes Response back, so handlers stay pure functions
that tests can call directly, without a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict  # str -> str (first value)
    headers: dict  # lower-case keys
    body: bytes
    client_ip: str


@dataclass
class Response:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
