"""`pip install .` (not editable) ships the playbooks: after a real install, from a directory that is not the
checkout (as cron runs it), `playbook list` shows them and `playbook run NAME --check` finds them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.stem for p in (ROOT / "playbooks").glob("*.yaml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed with pip into a fresh target directory (no deps: they come from this venv; no build
    isolation: offline), built from a copy of the source so the checkout gets no build/ or egg-info."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "canteen_ops", src / "canteen_ops", ignore=ignore)
    shutil.copytree(ROOT / "playbooks", src / "playbooks")
    target = base / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def _run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "COLUMNS": "200"}
    env.pop("CANTEEN_OPS_PLAYBOOKS", None)
    return subprocess.run([sys.executable, "-m", "canteen_ops", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_installed_package_is_the_one_run(installed, tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import canteen_ops; print(canteen_ops.__file__)"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True)
    assert Path(proc.stdout.strip()).is_relative_to(installed)
    assert sorted(p.stem for p in (installed / "canteen_ops/playbooks/shipped").glob("*.yaml")) == SHIPPED


def test_playbook_list_from_any_directory(installed, tmp_path):
    proc = _run(installed, tmp_path, "playbook", "list")
    assert proc.returncode == 0, proc.stderr
    for name in ("nightly-backup", "daily-inspection", "drill-nvr-offline", "drill-camera-obscured",
                 "drill-clock-reset"):
        assert name in proc.stdout
    assert "INVALID" not in proc.stdout


def test_cron_line_finds_the_playbook_from_any_directory(installed, tmp_path):
    # The README's cron lines name playbooks; --check shows the plan without touching anything. Before, exit 66.
    (tmp_path / "inventory.yaml").write_text(
        "version: 1\nschools:\n  - id: s1\n    name: 一小\n    devices:\n"
        "      - {id: s1-nvr, kind: nvr, vendor: onvif, host: 127.0.0.1}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("nightly-backup", "daily-inspection"):
        proc = _run(installed, elsewhere, "--inventory", str(tmp_path / "inventory.yaml"), "--db",
                    str(tmp_path / "log.db"), "playbook", "run", name, "--check", "--non-interactive")
        assert proc.returncode != 66, proc.stderr
        assert "not found" not in proc.stderr
        assert name in proc.stdout


def test_the_installed_package_speaks_chinese(installed, tmp_path):
    """The compiled catalog ships with the package: messages, Click's usage errors and --help in Chinese."""
    assert (installed / "canteen_ops/locale/zh_CN/LC_MESSAGES/canteen_ops.mo").is_file()
    env = {**os.environ, "PYTHONPATH": str(installed), "LANG": "zh_CN.UTF-8", "COLUMNS": "80"}
    env.pop("LC_ALL", None), env.pop("LC_MESSAGES", None)
    run = [sys.executable, "-m", "canteen_ops"]
    proc = subprocess.run([*run, "playbook", "list"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "个预案" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([*run, "log", "list", "--nope"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 64 and "错误：没有选项 '--nope'" in proc.stderr, proc.stderr
    proc = subprocess.run([*run, "log", "list", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "选项：" in proc.stdout, proc.stdout
