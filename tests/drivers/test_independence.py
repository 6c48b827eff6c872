"""The lab and the drivers are two independent implementations of each protocol: neither imports the other."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "canteen_ops"


def imports(folder: Path) -> set[str]:
    names = set()
    for py in folder.rglob("*.py"):  # subpackages too (drivers/onvif/)
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_drivers_never_import_the_lab():
    assert not [m for m in imports(PKG / "drivers") if m.startswith("canteen_ops.lab")]


def test_lab_never_imports_the_drivers():
    assert not [m for m in imports(PKG / "lab") if m.startswith("canteen_ops.drivers")]
