"""Full-text search over the log's free text (`log list --grep`), set up with sqlite-utils' `enable_fts`.

FTS5 with the `trigram` tokenizer: it indexes every three-character window, so a Chinese substring (硬盘故障 inside
"2号硬盘故障，已更换") is found without a word segmenter. Trigram cannot match fewer than three characters, so a
shorter query (硬盘, 01) falls back to LIKE over the same columns. Triggers made by `enable_fts` keep each index in
step with its table (insert, update, delete), so records written by any version of this code are found.

Check results are indexed only when not ok and not n/a: ok findings are boilerplate ("port 80 open in 12 ms"), n/a
ones ("not offered by this firmware") too, and together they make up ~99% of a healthy fleet's results, and indexing every one tripled the cost of recording results (a 1,000-device check
records ~5,400 in the parent process; see bench/bench_log.py). Their triggers are ours, written like sqlite-utils'
with the condition added; the LIKE fallback applies the same condition, so both paths find the same records.
"""

from __future__ import annotations

import sqlite3

# table → its free-text columns
FTS_COLUMNS: dict[str, tuple[str, ...]] = {
    "results": ("summary",),
    "notes": ("text",),
    "incidents": ("title", "description", "resolution", "cancel_reason"),
    "incident_events": ("note",),
    "changes": ("title", "description"),
    "firmware_findings": ("summary",),
    "playbook_steps": ("step_name", "summary"),
    "backups": ("reason",),
}
# table → the rows it indexes, when not all of them
INDEXED_ROWS: dict[str, str] = {"results": "status NOT IN ('ok', 'n/a')"}
MIN_TRIGRAM = 3


def enable(conn: sqlite3.Connection) -> None:
    """Migration step: create the indexes, fill them from existing records, add the triggers. Runs inside the
    migration's transaction (the statements are executed one by one: executescript would commit it)."""
    import sqlite_utils

    class _InTransaction(sqlite_utils.Database):
        def executescript(self, sql: str) -> sqlite3.Cursor:
            return self._executescript(sql)

        def _executescript(self, sql: str) -> sqlite3.Cursor:
            cur, stmt = self.conn.cursor(), ""
            for line in sql.splitlines(keepends=True):
                stmt += line
                if sqlite3.complete_statement(stmt):
                    cur.execute(stmt)
                    stmt = ""
            if stmt.strip():
                cur.execute(stmt)
            return cur

    db = _InTransaction(conn, recursive_triggers=False, execute_plugins=False)
    for table, columns in FTS_COLUMNS.items():
        only = INDEXED_ROWS.get(table)
        db[table].enable_fts(columns, fts_version="FTS5", create_triggers=only is None, tokenize="trigram")
        if only:
            _index_only(conn, table, columns, only)


def _index_only(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], condition: str) -> None:
    """Keep only the rows matching `condition` in `table`'s index (enable_fts filled it with all of them), with
    sqlite-utils' three triggers each made conditional."""
    fts, cols = f"{table}_fts", ", ".join(columns)

    def values(row: str) -> str:
        return ", ".join(f"{row}.{c}" for c in columns)

    def when(row: str) -> str:
        return f"{row}.{condition}"

    conn.execute(f"INSERT INTO {fts} ({fts}) VALUES ('delete-all')")
    conn.execute(f"INSERT INTO {fts} (rowid, {cols}) SELECT rowid, {cols} FROM {table} WHERE {condition}")
    delete = f"INSERT INTO {fts} ({fts}, rowid, {cols}) SELECT 'delete', old.rowid, {values('old')} WHERE {when('old')};"
    insert = f"INSERT INTO {fts} (rowid, {cols}) SELECT new.rowid, {values('new')} WHERE {when('new')};"
    conn.execute(f"CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN {insert} END")
    conn.execute(f"CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN {delete} END")
    conn.execute(f"CREATE TRIGGER {table}_au AFTER UPDATE ON {table} BEGIN {delete} {insert} END")


def phrase(text: str) -> str:
    """`text` as one literal FTS5 phrase: no query syntax (AND, NEAR, column filters, *) from the user."""
    return '"' + text.replace('"', '""') + '"'


def match(table: str, alias: str, text: str) -> tuple[str, list[str]]:
    """A condition on `alias` (a row of `table`) that its indexed text contains `text`, and its parameters."""
    columns = FTS_COLUMNS[table]
    if len(text) >= MIN_TRIGRAM:
        return f"{alias}.rowid IN (SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ?)", [phrase(text)]
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    like = "(" + " OR ".join(f"{alias}.{c} LIKE ? ESCAPE '\\'" for c in columns) + ")"
    if table in INDEXED_ROWS:
        like = f"({alias}.{INDEXED_ROWS[table]} AND {like})"
    return like, [pattern] * len(columns)
