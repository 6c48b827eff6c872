"""A raw HTTP server on 127.0.0.1 for transport tests: sends fixed bytes as the answer to each request, so a test
can play any framing, a cut head, a device that closes kept-alive connections or one that never answers."""

from __future__ import annotations

import socket
import threading


class RawServer:
    """Answers `answers` requests per connection with `answer` (bytes, sent as is), then closes the connection;
    answers=0 reads a request and closes without answering, answers=-1 closes as soon as it accepts. `pause`:
    seconds to wait before each answer; `drip`: send the answer a byte at a time, this many seconds apart. Counts
    connections and keeps the heads of the requests it read."""

    def __init__(self, answer: bytes, *, answers: int = 1, pause: float = 0.0, drip: float = 0.0):
        self.answer, self.answers, self.pause, self.drip = answer, answers, pause, drip
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    for _ in range(max(self.answers, 0)):
                        self.requests.append(self._read_request(conn))
                        if self.pause:
                            self._stop.wait(self.pause)
                        if not self.drip:
                            conn.sendall(self.answer)
                        for i in range(len(self.answer)) if self.drip else ():
                            if self._stop.wait(self.drip):
                                break
                            conn.sendall(self.answer[i:i + 1])
                    if self.answers == 0:
                        conn.recv(65536)
                except OSError:
                    pass

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            got = conn.recv(65536)
            if not got:
                raise ConnectionError("closed by the client")
            data += got
        head, _, body = data.partition(b"\r\n\r\n")
        lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
        while lengths and len(body) < int(lengths[0]):
            body += conn.recv(65536)
        return head
