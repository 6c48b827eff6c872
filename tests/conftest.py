"""Shared fixtures: an isolated environment per test and a CLI runner that captures output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.datasette_fixtures", "tests.rtsp_lab_fixtures", "tests.lab_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "inventory.example.yaml"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test touches the real user data directory or picks up the developer's environment."""
    monkeypatch.setenv("CANTEEN_OPS_DB", str(tmp_path / "log.db"))
    monkeypatch.setenv("CANTEEN_OPS_OPERATOR", "tester")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CANTEEN_OPS_INVENTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    from canteen_ops.drivers.base import auth_guard

    auth_guard.reset()  # each test is a fresh run: no device is remembered as having refused our login
    yield
    auth_guard.reset()


class CLIResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CLIResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def cli(capsys):
    """Run canteen-ops in-process: cli('inventory', 'list') → CLIResult(code, out, err)."""
    from canteen_ops.cli.app import run

    from canteen_ops.drivers.base import auth_guard

    def invoke(*args: str) -> CLIResult:
        capsys.readouterr()
        os.environ["COLUMNS"] = "200"
        auth_guard.reset()  # each invocation is its own run, as each command is its own process in real use
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return CLIResult(code, out, err)

    return invoke

