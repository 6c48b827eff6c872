"""Out-of-range arguments are usage errors (64) naming the option; an unexpected exception is one line and exit 70,
with the traceback only under the global --debug."""

from __future__ import annotations

import pytest

from canteen_ops import context
from tests.conftest import EXAMPLE


@pytest.mark.parametrize("args, option", [
    (["log", "list", "--since", "99999999d"], "--since"),
    (["log", "list", "--since", "9999-12-31T23:59:59-01:00"], "--since"),
    (["log", "list", "--since", "0001-01-01"], "--since"),
    (["log", "list", "--limit", "99999999999999999999"], "--limit"),
    (["log", "export", "--since", "1e400d"], "--since"),
    (["-i", EXAMPLE, "incident", "open", "-l", "general", "-t", "x", "-s", "xc", "--at", "0001-01-01T00:00"], "--at"),
    (["-i", EXAMPLE, "incident", "open", "-l", "general", "-t", "x", "-s", "xc", "--at", "9999-12-31T23:00"], "--at"),
    (["-i", EXAMPLE, "change", "request", "-t", "x", "-d", "xc-cam-01", "--window-start", "0001-01-01T00:00"],
     "--window-start"),
    (["-i", EXAMPLE, "report", "--from", "99999999d"], "--from"),
    (["-i", EXAMPLE, "report", "--to", "0001-01-01"], "--to"),
    (["-i", EXAMPLE, "backup", "list", "--stale", "99999999999d"], "--stale"),
    (["-i", EXAMPLE, "backup", "list", "--history", "--limit", "99999999999999999999"], "--limit"),
    (["-i", EXAMPLE, "backup", "prune", "--keep-days", "1e308"], "--keep-days"),
    (["-i", EXAMPLE, "backup", "prune", "--keep-last", "99999999999999999999"], "--keep-last"),
    (["-i", EXAMPLE, "check", "--deadline", "1e400"], "--deadline"),
    (["-i", EXAMPLE, "check", "--workers", "99999999999999999999"], "--workers"),
    (["-i", EXAMPLE, "check", "--processes", "100000"], "--processes"),
    (["sync", "--batch-size", "99999999999999999999"], "--batch-size"),
    (["lab", "up", "--schools", "99999999999999999999"], "--schools"),
])
def test_out_of_range_arguments_are_usage_errors_naming_the_option(cli, args, option):
    r = cli(*args)
    assert r.code == 64, r
    assert option in r.err and "Traceback" not in r.err and "OverflowError" not in r.err, r.err


def test_an_unexpected_exception_is_one_line_and_exit_70(cli, monkeypatch):
    from canteen_ops.store import entries

    def broken(*a, **k):
        raise RuntimeError("the log fell over\nsecond line")

    monkeypatch.setattr(entries, "list_entries", broken)
    r = cli("log", "list")
    assert r.code == 70
    assert r.err == "internal error: RuntimeError: the log fell over (run with --debug for the traceback)\n"
    r = cli("--debug", "log", "list")
    assert r.code == 70
    assert "Traceback (most recent call last)" in r.err and 'raise RuntimeError("the log fell over' in r.err
    assert r.err.rstrip().endswith("(run with --debug for the traceback)")
    assert context.debug() is True
    cli("log", "list")
    assert context.debug() is False  # each run sets it


@pytest.mark.parametrize("setting, message", [
    ("timeout: .inf", "defaults.timeout: out of range: inf (at most 86400)"),
    ("timeout: 99999999999999999999", "defaults.timeout: out of range: 99999999999999999999 (at most 86400)"),
    ("policy: {retention_warn_days: 1.0e+999}", "defaults.policy.retention_warn_days: out of range: inf"),
    ("policy: {clock_warn_s: .nan}", "defaults.policy.clock_warn_s: out of range: nan"),
    ("policy: {incident_major_inside_h: 1.0e+7}", "defaults.policy.incident_major_inside_h: out of range: "
                                                  "10000000.0 (at most 876600)"),
    ("policy: {frozen_frames: 99999999999999999999}", "defaults.policy.frozen_frames: out of range"),
])
def test_out_of_range_numbers_in_the_inventory_name_file_line_and_field(cli, tmp_path, setting, message):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"version: 1\ndefaults:\n  {setting}\nschools:\n  - id: s1\n    name: x\n    devices: []\n",
                   encoding="utf-8")
    r = cli("-i", inv, "inventory", "validate")
    assert r.code == 65
    assert f"{inv}:3:" in r.err and message in r.err, r.err
