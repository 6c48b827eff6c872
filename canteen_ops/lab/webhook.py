"""A webhook receiver on loopback: the lab's stand-in for a district chat server (DingTalk/WeCom/Feishu bot).

It accepts what apprise's `json://` plugin posts ({"title", "message", "type", ...}) and keeps every request, so
tests and `make demo` can show what arrived. `fail_next(n)` answers the next n requests with 500 (a chat server
that is down), to exercise retries.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        if not host.startswith("127."):
            raise ValueError("the webhook receiver listens on loopback only")
        self.received: list[dict] = []
        self.requests = 0
        self._fail = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests += 1
                    failing = receiver._fail > 0
                    if failing:
                        receiver._fail -= 1
                    else:
                        try:
                            body = json.loads(raw.decode("utf-8"))
                        except ValueError:
                            body = {"raw": raw.decode("utf-8", "replace")}
                        receiver.received.append({"path": self.path, "body": body})
                        receiver._arrived.notify_all()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet: no access log on stderr
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"json://{host}:{port}/hook"

    def start(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, n: int) -> None:
        with self._lock:
            self._fail = n

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= n, timeout)
            return list(self.received)

    def __enter__(self) -> "WebhookReceiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
