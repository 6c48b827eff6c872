"""The knowledge base (知识库): symptom → likely causes → steps → when to escalate.

Entries ship with the package (entries.yaml, one per failure class the checks report and per common site
fault); technicians add their own with `kb add`, stored in the maintenance log (table kb_entries) and synced
upstream with the rest of it, so a district's knowledge grows. Search is full text over both, with SQLite FTS5's
trigram tokenizer, which finds Chinese substrings without a word segmenter; a term shorter than three characters
(花屏, 黑屏) cannot be a trigram, so such queries use a LIKE scan instead (a few dozen entries: instant).
Which check result points at which entry lives in classify.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canteen_ops.store.search import MIN_TRIGRAM, phrase

if TYPE_CHECKING:
    from canteen_ops.store.log import MaintenanceLog

ENTRIES_FILE = Path(__file__).with_name("entries.yaml")
FIELDS = ("id", "title", "keywords", "symptom", "causes", "steps", "escalate")
# Search weights per column (FTS5 bm25 and the LIKE fallback alike): a hit in the id, title or keywords says
# more than one in a step.
WEIGHTS = {"id": 10.0, "title": 8.0, "keywords": 6.0, "symptom": 3.0, "causes": 1.0, "steps": 1.0,
           "escalate": 1.0, "extends": 4.0}


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    symptom: str = ""
    causes: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    escalate: str = ""
    keywords: tuple[str, ...] = ()
    source: str = "shipped"  # or "technician"
    author: str | None = None
    created_at: str | None = None
    extends: str | None = None  # a technician's entry may add to a shipped one
    school_id: str | None = None
    device_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("id", "title", "symptom", "causes", "steps", "escalate", "keywords",
                                           "source", "author", "created_at", "extends", "school_id", "device_id")}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@functools.lru_cache(maxsize=1)
def shipped() -> tuple[Entry, ...]:
    """The entries shipped with canteen-ops (validated by tests/test_kb.py)."""
    import yaml

    doc = yaml.safe_load(ENTRIES_FILE.read_text(encoding="utf-8"))
    return tuple(Entry(id=e["id"], title=e["title"], symptom=e["symptom"], causes=tuple(e["causes"]),
                       steps=tuple(e["steps"]), escalate=e["escalate"], keywords=tuple(e["keywords"]))
                 for e in doc["entries"])


def technician(log: "MaintenanceLog") -> list[Entry]:
    rows = log.query("SELECT * FROM kb_entries ORDER BY seq")
    return [Entry(id=r["kb_id"], title=r["title"], symptom=r["symptom"] or "", causes=_lines(r["causes"]),
                  steps=_lines(r["steps"]), escalate=r["escalate"] or "", keywords=_lines(r["keywords"]),
                  source="technician", author=r["author"], created_at=r["created_at"], extends=r["extends"],
                  school_id=r["school_id"], device_id=r["device_id"]) for r in rows]


def _lines(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").splitlines() if x.strip())


def all_entries(log: "MaintenanceLog | None") -> list[Entry]:
    return [*shipped(), *(technician(log) if log is not None else [])]


def find(entries: list[Entry], ident: str) -> Entry | None:
    want = ident.strip().upper()
    return next((e for e in entries if e.id.upper() == want), None)


def add(log: "MaintenanceLog", *, title: str, symptom: str = "", causes: list[str] = (), steps: list[str] = (),
        escalate: str = "", keywords: list[str] = (), author: str | None = None, extends: str | None = None,
        school_id: str | None = None, device_id: str | None = None) -> Entry:
    """Store a technician's entry in the log (synced upstream like every log table); its id is KB-T-<8 hex>."""
    from canteen_ops.store.log import new_id

    row_id = new_id()
    kb_id = f"KB-T-{row_id.replace('-', '')[:8].upper()}"
    log.insert("kb_entries", {"id": row_id, "kb_id": kb_id, "title": title, "symptom": symptom,
                              "causes": "\n".join(causes), "steps": "\n".join(steps), "escalate": escalate,
                              "keywords": "\n".join(keywords), "author": author, "extends": extends,
                              "school_id": school_id, "device_id": device_id})
    return next(e for e in technician(log) if e.id == kb_id)


def search(entries: list[Entry], query: str, limit: int = 20) -> list[Entry]:
    """Entries matching every term of the query, best first."""
    terms = [t for t in query.split() if t]
    if not terms:
        return []
    rows = [{"rowid": i, **_searchable(e)} for i, e in enumerate(entries)]
    if all(len(t) >= MIN_TRIGRAM for t in terms):
        hits = _fts(rows, terms, limit)
    else:
        hits = _like(rows, terms, limit)
    return [entries[i] for i in hits]


def _searchable(e: Entry) -> dict[str, str]:
    return {"id": e.id, "title": e.title, "keywords": " ".join(e.keywords), "symptom": e.symptom,
            "causes": "\n".join(e.causes), "steps": "\n".join(e.steps), "escalate": e.escalate,
            "extends": e.extends or ""}


def _fts(rows: list[dict[str, Any]], terms: list[str], limit: int) -> list[int]:
    import sqlite_utils

    db = sqlite_utils.Database(memory=True)
    db["kb"].insert_all(rows, pk="rowid")
    cols = list(WEIGHTS)
    db["kb"].enable_fts(cols, tokenize="trigram")
    match = " AND ".join(phrase(t) for t in terms)
    weights = ", ".join(str(WEIGHTS[c]) for c in cols)
    sql = (f"SELECT kb.rowid FROM kb JOIN kb_fts ON kb.rowid = kb_fts.rowid WHERE kb_fts MATCH ? "
           f"ORDER BY bm25(kb_fts, {weights}) LIMIT ?")
    return [r["rowid"] for r in db.query(sql, [match, limit])]


def _like(rows: list[dict[str, Any]], terms: list[str], limit: int) -> list[int]:
    """Every term a case-insensitive substring somewhere; scored by the weights of the columns it is in."""
    scored = []
    for r in rows:
        score = 0.0
        for t in terms:
            t = t.casefold()
            s = sum(w for c, w in WEIGHTS.items() if t in r[c].casefold())
            if not s:
                break
            score += s
        else:
            scored.append((-score, r["rowid"]))
    return [i for _, i in sorted(scored)[:limit]]
