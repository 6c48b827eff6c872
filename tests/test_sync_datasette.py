"""Sync against a real Datasette 1.0a41: exactly once, resumable after a kill, offline-first, token refusals."""

import json

import httpx
import pytest

from canteen_ops import upstream as up
from canteen_ops.incidents import open_incident, resolve
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.store.schema import SYNCED_TABLES
from canteen_ops.timeutil import iso
from tests.conftest import EXAMPLE
from canteen_ops.lab.district import DatasetteServer, free_port


def seed(log: MaintenanceLog, n_results: int = 40) -> None:
    inv = load_inventory(EXAMPLE)
    with log.run("check", ["--all"], "tester") as run:
        for i in range(n_results):
            log.insert("results", {"run_id": run.id, "school_id": "xc-shiyan-xx", "device_id": f"xc-cam-0{i % 7 + 1}",
                                   "check_name": "reachable", "status": "ok" if i % 5 else "crit",
                                   "summary": f"latency {i} ms", "data": {"latency_ms": i, "password": "hunter2"},
                                   "observed_at": iso()})
    for d in ("xc-nvr-01", "hd-cam-03"):
        open_incident(log, inv, level="major" if "nvr" in d else "general", title=f"{d} down", actor="li",
                      device_ids=[d])
    log.insert("notes", {"at": iso(), "operator": "li", "school_id": "xc-shiyan-xx", "device_id": "xc-cam-04",
                         "kind": "cleaning", "text": "镜头已清洁 rtsp://admin:hunter2@10.12.1.24/"})


def local_ids(log, table):
    return {r["id"] for r in log.query(f"SELECT id FROM {table}")}


def assert_exactly_once(log, server):
    for table in SYNCED_TABLES:
        remote = server.rows(table)
        ids = [r["id"] for r in remote]
        assert len(ids) == len(set(ids)), table
        assert set(ids) == local_ids(log, table), table
    assert up.pending_counts(log, server.url) == {t: 0 for t in SYNCED_TABLES}


@pytest.fixture
def log(tmp_path):
    lg = MaintenanceLog.open(tmp_path / "local.db")
    yield lg
    lg.close()


def test_kill_mid_sync_then_resume_exactly_once(log, tmp_path):
    seed(log)
    server = DatasetteServer(tmp_path / "up").start()
    try:
        token = server.token()
        batches = []

        def kill_after_third(table, n, last_seq):
            batches.append((table, n, last_seq))
            if len(batches) == 3:
                server.kill()

        with pytest.raises(up.SyncFailed) as exc:
            up.sync(log, server.url, token, batch_size=7, on_batch=kill_after_third)
        assert exc.value.exit_code == 69 and "unreachable" in str(exc.value)
        # exactly the three confirmed batches are marked synced; the rest is pending
        state = up.sync_state(log)
        assert [(t, s["last_seq"]) for t, s in state.items()] == [("runs", batches[0][2]),
                                                                   ("results", batches[2][2])]
        assert exc.value.report.tables["results"].sent == 14
        pending = up.pending_counts(log, server.url)
        assert pending["results"] == 40 - 14 and pending["incidents"] == 2 and pending["runs"] == 0
        upstream_results = server.rows("results")
        assert len(upstream_results) == 14

        server.start()
        report = up.sync(log, server.url, token, batch_size=7)
        assert report.tables["results"].sent == 26 and report.tables["runs"].sent == 0
        assert_exactly_once(log, server)
        # nothing secret went upstream
        blob = json.dumps([server.rows(t) for t in SYNCED_TABLES], ensure_ascii=False)
        assert "hunter2" not in blob

        # an updated incident propagates (its seq moved), and only it is resent
        inc = log.query("SELECT id FROM incidents ORDER BY seq LIMIT 1")[0]["id"]
        resolve(log, inc, "zhang", resolution="更换电源")
        assert up.pending_counts(log, server.url) == {t: int(t in ("incidents", "incident_events"))
                                                      for t in SYNCED_TABLES}
        up.sync(log, server.url, token)
        remote = {r["id"]: r for r in server.rows("incidents")}
        assert remote[inc]["state"] == "resolved" and remote[inc]["resolution"] == "更换电源"
        assert_exactly_once(log, server)
        # a rerun sends nothing
        assert up.sync(log, server.url, token).sent == 0
    finally:
        server.stop()


class DropResponseAfter(httpx.HTTPTransport):
    """Forward requests; after the n-th successful upsert reached the server, lose its answer (a cut cable)."""

    def __init__(self, n):
        super().__init__()
        self.n, self.count = n, 0

    def handle_request(self, request):
        resp = super().handle_request(request)
        if request.url.path.endswith("/-/upsert") and resp.status_code == 200:
            self.count += 1
            if self.count == self.n:
                resp.close()
                raise httpx.ReadError("connection reset", request=request)
        return resp


def test_lost_confirmation_is_resent_without_duplicates(log, datasette_server):
    seed(log, n_results=20)
    token = datasette_server.token()
    with httpx.Client(transport=DropResponseAfter(3), timeout=10) as client:
        with pytest.raises(up.SyncFailed) as exc:
            up.sync(log, datasette_server.url, token, batch_size=5, client=client)
    assert exc.value.exit_code == 69
    # upserts 1 (runs) and 2 (results 1–5) confirmed; the server stored upsert 3 (results 6–10) but we never
    # heard, so those rows stay pending locally and are sent again
    assert len(datasette_server.rows("results")) == 10
    assert up.pending_counts(log, datasette_server.url)["results"] == 15
    up.sync(log, datasette_server.url, token, batch_size=5)
    assert_exactly_once(log, datasette_server)


def test_new_local_columns_reach_upstream(log, datasette_server):
    seed(log, n_results=3)
    token = datasette_server.token()
    up.sync(log, datasette_server.url, token)
    # a later migration adds a column; the next upsert carries it and the server adds it (alter)
    log.conn.execute("ALTER TABLE notes ADD COLUMN photo_sha256 TEXT")
    log.conn.execute("ALTER TABLE notes ADD COLUMN thumbnail BLOB")
    note = log.query("SELECT id FROM notes")[0]["id"]
    log.update("notes", note, {"photo_sha256": "ab" * 32, "thumbnail": b"\x89PNG\x00\xff"})
    report = up.sync(log, datasette_server.url, token)
    assert report.tables["notes"].altered
    row = datasette_server.rows("notes")[0]
    assert row["photo_sha256"] == "ab" * 32 and row["thumbnail"] == b"\x89PNG\x00\xff"


def test_server_batch_limit_is_honoured(log, tmp_path):
    seed(log, n_results=12)
    server = DatasetteServer(tmp_path / "small", max_insert_rows=5).start()
    try:
        report = up.sync(log, server.url, server.token(), batch_size=100)
        assert report.tables["results"].batches == 3
        assert_exactly_once(log, server)
    finally:
        server.stop()


# --- CLI ----------------------------------------------------------------------------------------------------
@pytest.fixture
def seeded_cli_log(tmp_path):
    lg = MaintenanceLog.open(tmp_path / "log.db")  # the CLI's CANTEEN_OPS_DB (conftest)
    seed(lg, n_results=10)
    lg.close()


def test_cli_wrong_token_is_refused_and_nothing_marked(cli, seeded_cli_log, datasette_server, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_UPSTREAM_TOKEN", "dstok_not-a-real-token")
    r = cli("sync", "--upstream", datasette_server.url)
    assert r.code == 77, r
    assert "refused the token" in r.err and "nothing was marked synced" in r.err
    assert "dstok_not-a-real-token" not in r.out + r.err
    r = cli("sync", "status", "--upstream", datasette_server.url, "--json")
    st = json.loads(r.out)
    assert all(t["last_seq"] == 0 for t in st["tables"]) and sum(t["pending"] for t in st["tables"]) > 10
    assert datasette_server.rows("results") == []


def test_cli_offline_reports_pending_and_exits_69(cli, seeded_cli_log, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_UPSTREAM_TOKEN", "dstok_x")
    monkeypatch.setenv("CANTEEN_OPS_UPSTREAM", f"http://127.0.0.1:{free_port()}/canteen")  # nobody listens
    r = cli("sync")
    assert r.code == 69, r
    assert "unreachable" in r.err and "still pending" in r.err and "results 10" in r.err
    r = cli("sync", "--dry-run", "--json")
    assert r.code == 0 and json.loads(r.out)["pending"]["results"] == 10


def test_cli_sync_with_token_file_and_status(cli, seeded_cli_log, datasette_server, tmp_path, monkeypatch):
    tok = tmp_path / "upstream.token"
    tok.write_text(datasette_server.token() + "\n")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        "  upstream_token_env: CANTEEN_OPS_UPSTREAM_TOKEN",
        f"  upstream_url: {datasette_server.url}\n  upstream_token_file: {tok}"), encoding="utf-8")
    monkeypatch.delenv("CANTEEN_OPS_UPSTREAM_TOKEN", raising=False)
    tok.chmod(0o644)
    r = cli("-i", inv, "sync", "--batch-size", "4")
    assert r.code == 0, r
    assert "synced" in r.out and "results 10" in r.out
    assert "readable by other users" in r.err
    tok.chmod(0o600)
    r = cli("-i", inv, "sync")
    assert r.code == 0 and "readable" not in r.err and "synced 0 records" in r.out
    r = cli("-i", inv, "sync", "status")
    assert r.code == 0 and "0 records pending" in r.out and datasette_server.url in r.out
    assert len(datasette_server.rows("results")) == 10
    r = cli("-i", inv, "sync", "--batch-size", "0")
    assert r.code == 64 and "--batch-size" in r.err


def test_cli_config_errors(cli, monkeypatch):
    monkeypatch.delenv("CANTEEN_OPS_UPSTREAM_TOKEN", raising=False)
    monkeypatch.delenv("CANTEEN_OPS_UPSTREAM", raising=False)
    r = cli("sync")
    assert r.code == 64 and "no upstream" in r.err
    r = cli("sync", "--upstream", "ftp://x/y")
    assert r.code == 64 and "expected the Datasette database URL" in r.err
    r = cli("sync", "--upstream", "http://127.0.0.1:9/canteen")
    assert r.code == 64 and "no upstream token" in r.err


def test_na_results_and_local_login_memory(log, datasette_server):
    """An n/a result syncs like any result; the local login memory (login_refusals) is not a synced table."""
    from canteen_ops.status import Result, Status

    with log.run("check", [], "tester") as run:
        (rid,) = run.record_all([Result("s003-nvr", "storage", Status.NA, "not applicable: this onvif device "
                                        "does not offer it (storage)", school_id="s003")])
    log.conn.execute("INSERT INTO login_refusals (device_id, refused_at, until, kind) "
                     "VALUES ('s001-cam01', '2026-01-01T00:00:00+00:00', '2026-01-01T00:30:00+00:00', 'refused')")
    up.sync(log, datasette_server.url, datasette_server.token())
    assert [r["status"] for r in datasette_server.rows("results") if r["id"] == rid] == ["n/a"]
    assert "login_refusals" not in SYNCED_TABLES


def test_cli_upstream_that_redirects_is_reported_with_its_target_exit_69(cli, seeded_cli_log, monkeypatch):
    import http.server
    import threading

    hits = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append((self.path, self.headers.get("Authorization")))
            self.send_response(301)
            self.send_header("Location", f"https://127.0.0.1:{self.server.server_port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_port
        monkeypatch.setenv("CANTEEN_OPS_UPSTREAM_TOKEN", "dstok_x")
        r = cli("sync", "--upstream", f"http://127.0.0.1:{port}/canteen")
    finally:
        server.shutdown()
        server.server_close()
    assert r.code == 69, r
    err = " ".join(r.err.split())  # the message may wrap at the terminal width
    assert f"redirects (HTTP 301) to https://127.0.0.1:{port}/canteen/" in err
    assert f"use --upstream https://127.0.0.1:{port}/canteen (" in err
    assert "still pending" in r.err
    assert len(hits) == 1  # asked once, never followed
