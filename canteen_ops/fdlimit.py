"""The open-files limit: every device in flight holds a socket, and the lab holds two listening sockets per device."""

from __future__ import annotations


def raise_open_files(wanted: int) -> int | None:
    """Raise the soft limit on open files to `wanted` if it is lower (never above the hard limit, never lowering
    it) and return the soft limit now; None where there is no such limit (Windows has no `resource` module, and
    its sockets are not counted against a per-process file limit)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted if soft == resource.RLIM_INFINITY else soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # macOS refuses more than OPEN_MAX, some containers any change
        return soft
    return target
