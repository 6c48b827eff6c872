"""Reading a secret from a file named in the inventory (password_file, upstream_token_file).

The path is foreign input: it may name a FIFO (an open for reading blocks until a writer comes), a device
(/dev/zero never ends), a directory or a huge file. Only a regular file of at most MAX_BYTES is read; it is
opened non-blocking and checked with fstat before a byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_BYTES = 4096


class SecretFileError(Exception):
    """The file cannot be used as a secret (the message says why, without the content)."""


def read_secret_file(path: str | os.PathLike) -> str:
    p = Path(path).expanduser()
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise SecretFileError(exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"not a regular file ({_kind(st.st_mode)})")
        if st.st_size > MAX_BYTES:
            raise SecretFileError(f"larger than {MAX_BYTES} bytes ({st.st_size}); a password file holds one line")
        chunks, size = [], 0
        while size <= MAX_BYTES:  # the file may grow after fstat: never read more than the limit
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise SecretFileError(f"larger than {MAX_BYTES} bytes")
    except OSError as exc:
        raise SecretFileError(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError("not UTF-8 text") from None


def open_to_others(path: str | os.PathLike) -> bool:
    """True if a regular file at path grants its group or everyone any access (POSIX modes: it should be 600).
    Never on Windows, where permissions are ACLs that the mode bits do not describe."""
    if os.name == "nt":
        return False
    try:
        st = Path(path).expanduser().stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o077)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"
