"""Where things live by default: the user's data directory (platformdirs), overridable by env/flags."""

from __future__ import annotations

import os
from pathlib import Path

APP = "canteen-ops"


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP, appauthor=False))


def default_db() -> Path:
    env = os.environ.get("CANTEEN_OPS_DB")
    return Path(env) if env else data_dir() / "maintenance-log.db"


def default_inventory() -> Path:
    return Path(os.environ.get("CANTEEN_OPS_INVENTORY", "inventory.yaml"))


def default_backup_dir() -> Path:
    return data_dir() / "backups"


def default_operator() -> str:
    env = os.environ.get("CANTEEN_OPS_OPERATOR")
    if env:
        return env
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still log something meaningful
        return "unknown"
