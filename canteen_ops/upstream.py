"""Push the maintenance log to the district's Datasette (1.0 JSON write API), offline-first and resumable.

Every synced table carries a log-wide `seq` that is bumped on every insert and update. For each table,
`sync_state.last_seq` is the highest seq the upstream has confirmed; a sync sends the rows above it in seq order,
in batches, with `POST /<db>/<table>/-/upsert` (keyed by the UUID `id`, so a resent row never duplicates), and
advances `last_seq` only after the server answered ok for that batch. A failure — network gone, server killed,
token refused — leaves every unconfirmed row pending, and the next sync resumes there.

Tables missing upstream are created with `POST /<db>/-/create` (pk `id`, column types from the local schema).
Columns added locally by later migrations are added upstream by retrying the upsert with `"alter": true` (needs
the `alter-table` permission) — only when the server reports unknown columns, so a token without alter-table
works until the schema changes.

Rows were redacted when they were written; columns whose names look secret (password, token, …) are dropped here
as well, whatever they hold.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from canteen_ops.errors import CanteenOpsError, PermissionRefused, Unavailable, UsageError
from canteen_ops.redact import SECRET_KEYS
from canteen_ops.store.schema import SYNCED_TABLES
from canteen_ops.timeutil import iso

if TYPE_CHECKING:
    import httpx

    from canteen_ops.inventory.model import Settings
    from canteen_ops.store.log import MaintenanceLog

# Rows per request. Datasette's default max_insert_rows is 100: a server with that limit rejects the first big
# batch with "maximum allowed is 100", and sync continues at the server's limit for the rest of the run.
DEFAULT_BATCH = 1000
TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
_SQLITE_TO_DATASETTE = {"TEXT": "text", "INTEGER": "integer", "REAL": "float", "BLOB": "blob"}


@dataclass
class TableSync:
    pending: int = 0  # rows waiting before this sync
    sent: int = 0
    batches: int = 0
    last_seq: int = 0
    created: bool = False
    altered: bool = False


@dataclass
class SyncReport:
    upstream: str
    dry_run: bool = False
    tables: dict[str, TableSync] = field(default_factory=dict)
    error: str | None = None

    @property
    def sent(self) -> int:
        return sum(t.sent for t in self.tables.values())


class SyncFailed(CanteenOpsError):
    """A sync stopped early; carries the partial report (what was confirmed) and the exit code of the cause."""

    def __init__(self, cause: CanteenOpsError, report: SyncReport):
        super().__init__(cause.template, **cause.values)  # the cause's message, English and shown translated
        self.exit_code = cause.exit_code
        self.report = report


# --- configuration -------------------------------------------------------------------------------------------
def resolve_upstream(flag: str | None, settings: "Settings | None") -> str:
    """--upstream, else $CANTEEN_OPS_UPSTREAM, else the inventory's settings.upstream_url."""
    url = flag or os.environ.get("CANTEEN_OPS_UPSTREAM") or (settings.upstream_url if settings else None)
    if not url:
        raise UsageError("no upstream: pass --upstream URL, set CANTEEN_OPS_UPSTREAM, or set settings.upstream_url "
                         "in the inventory (the URL of the Datasette database, e.g. http://district:8001/canteen)")
    url = url.rstrip("/")
    # The URL is printed (errors, sync status) and stored in sync_state, so it must hold no secret: credentials
    # in it (user:pass@, ?_token=) are refused, and the refusal shows the URL without them.
    shown = _public_url(url)
    if re.match(r"^[a-z][a-z0-9+.\-]*://[^/?#]*@", url, re.I) or "?" in url or "#" in url:
        raise UsageError("upstream {shown!r}: the URL takes no user, password, query or fragment; give the API token "
                         "in $CANTEEN_OPS_UPSTREAM_TOKEN or settings.upstream_token_file", shown=shown)
    if not re.match(r"^https?://[^/@?#\s]+/[^/?#\s]+$", url):
        raise UsageError("upstream {shown!r}: expected the Datasette database URL, http(s)://HOST[:PORT]/DATABASE",
                         shown=shown)
    try:
        urllib.parse.urlsplit(url).port  # noqa: B018 (raises on a bad port or IPv6 literal)
    except ValueError as exc:
        raise UsageError("upstream {shown!r}: {exc}", shown=shown, exc=exc) from None
    return url


def _public_url(url: str) -> str:
    """The URL without userinfo, query or fragment (where a credential could hide)."""
    return re.sub(r"(://)[^/?#]*@", r"\1", url).split("?", 1)[0].split("#", 1)[0]


def resolve_token(settings: "Settings | None") -> str:
    """The bearer token: from the environment variable (default CANTEEN_OPS_UPSTREAM_TOKEN), else the token file."""
    env_name = settings.upstream_token_env if settings else "CANTEEN_OPS_UPSTREAM_TOKEN"
    token = os.environ.get(env_name) or os.environ.get("CANTEEN_OPS_UPSTREAM_TOKEN")
    if token:
        return token.strip()
    path = settings.upstream_token_file if settings else None
    if path:
        from canteen_ops.secretfile import SecretFileError, read_secret_file

        try:
            token = read_secret_file(path).strip()
        except SecretFileError as exc:
            raise UsageError("cannot read upstream token file {where}: {exc}", where=path, exc=exc) from None
        if token:
            return token
        raise UsageError("upstream token file {where} is empty", where=path)
    raise UsageError("no upstream token: set {env_name} or settings.upstream_token_file (create one with `datasette "
                     "create-token ACTOR --secret …`)", env_name=env_name)


def token_file_warning(settings: "Settings | None") -> str | None:
    """A warning when the token file can be read by other users (it is a bearer secret)."""
    path = settings.upstream_token_file if settings else None
    if not path:
        return None
    from canteen_ops.secretfile import open_to_others

    if open_to_others(path):
        from canteen_ops.i18n import _

        return _("upstream token file {file} is readable by other users; chmod 600 it").format(file=path)
    return None


# --- local state ---------------------------------------------------------------------------------------------
def sync_state(log: "MaintenanceLog") -> dict[str, dict[str, Any]]:
    return {r["table_name"]: r for r in log.query("SELECT * FROM sync_state")}


def _start_seq(state: dict[str, dict[str, Any]], table: str, upstream: str) -> int:
    st = state.get(table)
    # A different upstream has none of our rows: start that one from the beginning.
    return st["last_seq"] if st and st.get("upstream") == upstream else 0


def pending_counts(log: "MaintenanceLog", upstream: str | None = None) -> dict[str, int]:
    """Rows per table not yet confirmed by `upstream` (by the last used upstream if None)."""
    state = sync_state(log)
    out = {}
    for table in SYNCED_TABLES:
        st = state.get(table)
        since = (st["last_seq"] if st else 0) if upstream is None else _start_seq(state, table, upstream)
        out[table] = log.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE seq > ?", [since]).fetchone()[0]
    return out


def _mark_synced(log: "MaintenanceLog", table: str, seq: int, upstream: str) -> None:
    with log.transaction():
        log.conn.execute(
            "INSERT INTO sync_state (table_name, last_seq, synced_at, upstream) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(table_name) DO UPDATE SET last_seq = excluded.last_seq, synced_at = excluded.synced_at, "
            "upstream = excluded.upstream", [table, seq, iso(), upstream])


def _local_columns(log: "MaintenanceLog", table: str) -> list[tuple[str, str]]:
    cols = [(r["name"], (r["type"] or "TEXT").upper()) for r in log.conn.execute(f"PRAGMA table_info({table})")]
    return [(n, _SQLITE_TO_DATASETTE.get(t, "text")) for n, t in cols if not SECRET_KEYS.search(n)]


def _batch(log: "MaintenanceLog", table: str, after: int, size: int) -> list[dict[str, Any]]:
    cur = log.conn.execute(f"SELECT * FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?", [after, size])
    names = [d[0] for d in cur.description]
    keep = [i for i, n in enumerate(names) if not SECRET_KEYS.search(n)]  # defence in depth
    return [{names[i]: _json_cell(row[i]) for i in keep} for row in cur.fetchall()]


def _json_cell(value: Any) -> Any:
    if isinstance(value, bytes):  # the write API's encoding for binary values
        import base64

        return {"$base64": True, "encoded": base64.b64encode(value).decode("ascii")}
    return value


# --- the push ------------------------------------------------------------------------------------------------
class _Upstream:
    """The Datasette write API for one database, with the error mapping the CLI documents."""

    def __init__(self, url: str, token: str, client: "httpx.Client"):
        self.url, self.client = url, client
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        import httpx

        try:
            resp = self.client.post(f"{self.url}{path}", json=body, headers=self.headers)
        except httpx.TimeoutException:
            raise Unavailable("upstream {url} did not answer in time", url=self.url) from None
        except httpx.TransportError as exc:
            raise Unavailable("upstream {url} unreachable: {kind}: {exc}", url=self.url, kind=type(exc).__name__,
                              exc=exc) from None
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if resp.status_code in (401, 403):
            errs = "; ".join(map(str, data.get("errors") or [])) or resp.reason_phrase
            raise PermissionRefused(
                "upstream {url} refused the token ({status_code}: {errs}); check the token and that its actor has "
                "create-table, insert-row, update-row (and alter-table) on this database — nothing was marked synced",
                                    url=self.url, status_code=resp.status_code, errs=errs)
        if resp.status_code >= 500:
            raise Unavailable("upstream {url} failed: HTTP {status_code}", url=self.url, status_code=resp.status_code)
        if 300 <= resp.status_code < 400:
            raise self._redirected(path, resp)
        return resp.status_code, data

    def _redirected(self, path: str, resp: "httpx.Response") -> Unavailable:
        """A redirect (typically http → https) is never followed: it could carry the bearer token elsewhere. Say
        where it points and which upstream URL to use instead."""
        target = urllib.parse.urljoin(f"{self.url}{path}", resp.headers.get("location", ""))
        target = re.sub(r"[\x00-\x1f\x7f-\x9f\s]", "", _public_url(target))[:300]  # outside text: printed
        values = dict(url=self.url, status=resp.status_code, target=target or "-")
        if target.endswith(path) and len(target) > len(path):
            return Unavailable("upstream {url} redirects (HTTP {status}) to {target}; redirects are not followed, "
                               "nothing was sent; use --upstream {use} (or settings.upstream_url)",
                               use=target[:-len(path)], **values)
        return Unavailable("upstream {url} redirects (HTTP {status}) to {target}; redirects are not followed, nothing "
                           "was sent", **values)


def _errors(data: dict[str, Any]) -> str:
    return "; ".join(map(str, data.get("errors") or [data.get("error") or "unknown error"]))


def sync(log: "MaintenanceLog", upstream: str, token: str, *, batch_size: int = DEFAULT_BATCH,
         dry_run: bool = False, client: "httpx.Client | None" = None,
         on_batch: Callable[[str, int, int], None] | None = None) -> SyncReport:
    """Push every unconfirmed row. Raises SyncFailed (with the partial report) when it cannot finish."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    report = SyncReport(upstream=upstream, dry_run=dry_run)
    state = sync_state(log)
    for table, n in pending_counts(log, upstream).items():
        report.tables[table] = TableSync(pending=n, last_seq=_start_seq(state, table, upstream))
    if dry_run or not any(t.pending for t in report.tables.values()):
        return report

    import httpx

    own = client is None
    client = client or httpx.Client(timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
    api = _Upstream(upstream, token, client)
    try:
        for table in SYNCED_TABLES:
            ts = report.tables[table]
            alter = False
            while True:
                rows = _batch(log, table, ts.last_seq, batch_size)
                if not rows:
                    break
                status, data = api.post(f"/{table}/-/upsert", {"rows": rows, **({"alter": True} if alter else {})})
                if status == 404 and "table" in _errors(data).lower() and not ts.created:
                    _create(api, log, table)
                    ts.created = True
                    continue
                if status == 400 and "invalid columns" in _errors(data).lower() and not alter:
                    alter = ts.altered = True  # a migration added columns: let the server add them too
                    continue
                m = re.search(r"maximum allowed is (\d+)", _errors(data))
                if status == 400 and m and int(m.group(1)) < len(rows):
                    batch_size = max(1, int(m.group(1)))
                    continue
                if not 200 <= status < 300 or not data.get("ok"):
                    raise CanteenOpsError("upstream rejected {table} rows (HTTP {status}): {errors}", table=table,
                                          status=status, errors=_errors(data))
                last = max(r["seq"] for r in rows)
                _mark_synced(log, table, last, upstream)  # only now: the server confirmed this batch
                ts.last_seq, ts.sent, ts.batches = last, ts.sent + len(rows), ts.batches + 1
                if on_batch:
                    on_batch(table, len(rows), last)
    except CanteenOpsError as exc:
        report.error = str(exc)
        raise SyncFailed(exc, report) from None
    finally:
        if own:
            client.close()
    return report


def _create(api: _Upstream, log: "MaintenanceLog", table: str) -> None:
    columns = [{"name": n, "type": t} for n, t in _local_columns(log, table)]
    status, data = api.post("/-/create", {"table": table, "columns": columns, "pk": "id"})
    if 200 <= status < 300 and data.get("ok"):
        return
    msg = _errors(data)
    if "already exists" in msg:  # created meanwhile by another client: fine
        return
    if status == 404:
        raise CanteenOpsError("upstream database not found at {url} ({msg}); create it on the server (datasette "
                              "serve canteen.db --create) or fix the URL", url=api.url, msg=msg)
    raise CanteenOpsError("upstream could not create table {table} (HTTP {status}): {msg}", table=table,
                          status=status, msg=msg)
