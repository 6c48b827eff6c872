"""Diagnostics: each check is a small function (ctx) → list[Result]; see checks/run.py for the order and runner.

The names are the `check_name` stored in the maintenance log; reports and the ledger read them.
"""

DEVICE_CHECK_NAMES = ("reachable", "login", "facts", "clock", "ntp", "storage", "channels", "retention", "gaps",
                      "stream", "picture")
SCHOOL_CHECK_NAMES = ("coverage",)
CHECK_NAMES = DEVICE_CHECK_NAMES + SCHOOL_CHECK_NAMES
