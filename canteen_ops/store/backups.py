"""The backup file store: content-addressed, written atomically, one lock file per device.

Layout under the backup directory:

    <school>/<device>/<sha256><ext>     one file per distinct export (identical content is stored once)
    .locks/<device>.lock                locks (canteen_ops/locks.py) so cron and a technician never back up one device at once

The log (backups table) records every attempt and holds the file's path *relative* to the backup directory,
so a backup directory can be moved or restored from tape without rewriting the log.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from canteen_ops.store.files import atomic_write, fsync_dir

# A backup larger than this is not a configuration file (a hostile or broken device streaming garbage).
MAX_BACKUP_BYTES = 32 * 1024 * 1024
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _component(value: str, what: str) -> str:
    # Inventory ids are already validated; refuse anything that could escape the store all the same.
    if not value or not _SAFE.match(value) or value in (".", ".."):
        raise ValueError(f"unsafe {what} for a backup path: {value!r}")
    return value


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the store root, e.g. "xc-shiyan-xx/xc-cam-01/<sha256>.bin"
    sha256: str
    size: int
    new: bool  # False when identical content was already stored (nothing was written)


class BackupStore:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"BackupStore({str(self.root)!r})"

    def relpath(self, school_id: str, device_id: str, sha256: str, extension: str) -> str:
        if not _HASH.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        ext = extension if extension and _EXT.match(extension) else ".bin"
        return f"{_component(school_id or '_', 'school id')}/{_component(device_id, 'device id')}/{sha256}{ext}"

    def abspath(self, relpath: str) -> Path:
        p = (self.root / relpath).resolve()
        root = self.root.resolve()
        if root not in p.parents:
            raise ValueError(f"backup path {relpath!r} points outside the backup directory")
        return p

    # --- writing ---------------------------------------------------------------------------------------
    def put(self, school_id: str, device_id: str, content: bytes, extension: str) -> StoredFile:
        """Store one export. The bytes are complete before this is called (never streamed to disk), and the
        file appears under its final name only after fsync + rename, so no reader ever sees a partial file."""
        if len(content) > MAX_BACKUP_BYTES:
            raise ValueError(f"export of {len(content)} bytes exceeds the {MAX_BACKUP_BYTES // 2**20} MiB limit")
        digest = sha256_hex(content)
        rel = self.relpath(school_id, device_id, digest, extension)
        path = self.abspath(rel)
        if path.exists() and self.check(rel, digest) == "ok":
            os.utime(path)  # "recently used": prune leaves it alone while its new record is being written
            return StoredFile(rel, digest, len(content), new=False)
        # Missing, or present but damaged (a disk error since): (re)write it. 0600: exports hold credentials.
        self._mkdirs(path.parent)
        atomic_write(path, content, mode=0o600)
        return StoredFile(rel, digest, len(content), new=True)

    def _mkdirs(self, directory: Path) -> None:
        created = []
        d = directory
        while not d.exists():
            created.append(d)
            d = d.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for c in reversed(created):  # make the new directory entries durable, not just the file
            fsync_dir(c.parent)

    # --- reading and checking -------------------------------------------------------------------------
    def read(self, relpath: str) -> bytes:
        return self.abspath(relpath).read_bytes()

    def check(self, relpath: str, sha256: str) -> str:
        """'ok', 'missing' or 'corrupt' (content no longer hashes to what the log recorded)."""
        try:
            path = self.abspath(relpath)
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError):
            return "corrupt"
        return "ok" if h.hexdigest() == sha256 else "corrupt"

    def files(self) -> Iterator[str]:
        """Every stored backup file (relative paths), excluding locks and temp files."""
        if not self.root.is_dir():
            return
        for school in sorted(self.root.iterdir()):
            if school.name.startswith(".") or not school.is_dir():
                continue
            for device in sorted(school.iterdir()):
                if not device.is_dir():
                    continue
                for f in sorted(device.iterdir()):
                    if f.is_file() and not f.name.startswith("."):
                        yield f"{school.name}/{device.name}/{f.name}"

    def stale_temp_files(self, older_than_s: float = 3600) -> list[Path]:
        """Temp files a killed process left behind (atomic_write removes its own on any exception)."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than_s
        out = []
        for p in self.root.glob("*/*/.*.tmp"):
            try:
                if p.stat().st_mtime < cutoff:
                    out.append(p)
            except FileNotFoundError:
                pass
        return sorted(out)

    # --- deleting --------------------------------------------------------------------------------------
    def delete(self, relpath: str) -> bool:
        path = self.abspath(relpath)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        for d in (path.parent, path.parent.parent):  # tidy empty device/school directories
            try:
                d.rmdir()
            except OSError:
                break
        return True

    # --- locking ---------------------------------------------------------------------------------------
    def lock(self, device_id: str):
        """Exclusive, non-blocking per-device lock shared by every process using this backup directory
        (canteen_ops/locks.py: dies with its process, portable to Windows): LockHeld when another backup of the
        device is running."""
        from canteen_ops.locks import exclusive

        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
        return exclusive(locks / f"{_component(device_id, 'device id')}.lock",
                         "{device}: another backup of this device is running{holder}; skipped", device=device_id)
