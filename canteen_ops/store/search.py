"""Full-text search over the log's free text (`log list --grep`), set up with sqlite-utils' `enable_fts`.

FTS5 with the `trigram` tokenizer: it indexes every three-character window, so a Chinese substring (硬盘故障 inside
"2号硬盘故障，已更换") is found without a word segmenter. Trigram cannot match fewer than three characters, so a
shorter query (硬盘, 01) falls back to LIKE over the same columns. Triggers made by `enable_fts` keep each index in
step with its table (insert, update, delete), so records written by any version of this code are found.
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
        db[table].enable_fts(columns, fts_version="FTS5", create_triggers=True, tokenize="trigram")


def match(table: str, alias: str, text: str) -> tuple[str, list[str]]:
    """A condition on `alias` (a row of `table`) that its indexed text contains `text`, and its parameters."""
    columns = FTS_COLUMNS[table]
    if len(text) >= MIN_TRIGRAM:
        phrase = '"' + text.replace('"', '""') + '"'  # one literal phrase: no FTS query syntax from the user
        return f"{alias}.rowid IN (SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH ?)", [phrase]
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return "(" + " OR ".join(f"{alias}.{c} LIKE ? ESCAPE '\\'" for c in columns) + ")", [pattern] * len(columns)
