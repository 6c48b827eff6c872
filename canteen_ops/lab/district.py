"""The district's upstream, in the lab: a real Datasette 1.0a41 server on loopback.

Used by the sync tests, the sync benchmark and `make demo`.

The server runs as a subprocess (`python -m datasette serve`) on 127.0.0.1 with a free port, a writable database
file, a signing secret, and a config that grants the write actions to one actor; the client authenticates with a
signed token from `datasette create-token`, exactly as a district would set it up (docs/upstream.md).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ACTOR = "canteen-sync"
DB = "canteen"
WRITE_ACTIONS = ("create-table", "insert-row", "update-row", "alter-table")
_TOKENS: dict[str, str] = {}


def _die_with_parent() -> None:
    """Linux: the server gets SIGKILL if the test process dies (killed run, crash), so none is left behind."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DatasetteServer:
    def __init__(self, workdir: Path, *, max_insert_rows: int = 100, secret: str = "test-signing-secret-4f1c"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / f"{DB}.db"
        self.config = self.dir / "datasette.yaml"
        self.config.write_text("permissions:\n" + "".join(f"  {a}:\n    id: {ACTOR}\n" for a in WRITE_ACTIONS),
                               encoding="utf-8")
        self.secret = secret
        self.max_insert_rows = max_insert_rows
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._token: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The database URL canteen-ops syncs to."""
        return f"{self.base}/{DB}"

    def start(self, timeout: float = 30.0) -> "DatasetteServer":
        assert self.proc is None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "datasette", "serve", str(self.db_path), "--create", "-h", "127.0.0.1",
             "-p", str(self.port), "--secret", self.secret, "-c", str(self.config),
             "--setting", "max_insert_rows", str(self.max_insert_rows)],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "server.log", "ab"), cwd=self.dir,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"datasette exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("datasette did not start in time")

    def kill(self) -> None:
        """Die abruptly, as a crashed or unplugged server would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def token(self) -> str:
        """A signed API token for ACTOR, restricted to the write actions on this database."""
        if self._token is None and self.secret in _TOKENS:
            self._token = _TOKENS[self.secret]  # same secret, same valid token: spare a second CLI start
        if self._token is None:
            args = [sys.executable, "-m", "datasette", "create-token", ACTOR, "--secret", self.secret]
            for action in WRITE_ACTIONS:
                args += ["-d", DB, action]
            out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60,
                                 env={**os.environ, "DATASETTE_SECRET": ""})
            self._token = _TOKENS[self.secret] = out.stdout.strip()
        return self._token

    def rows(self, table: str) -> list[dict]:
        """Read the upstream database file directly."""
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", [table]).fetchone()
            return [dict(r) for r in conn.execute(f"SELECT * FROM [{table}]")] if exists else []
        finally:
            conn.close()
