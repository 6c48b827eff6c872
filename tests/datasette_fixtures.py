"""Pytest fixture: a real Datasette upstream per test (canteen_ops.lab.district)."""

from __future__ import annotations

import pytest

from canteen_ops.lab.district import DatasetteServer


@pytest.fixture
def datasette_server(tmp_path):
    server = DatasetteServer(tmp_path / "upstream").start()
    try:
        yield server
    finally:
        server.stop()
