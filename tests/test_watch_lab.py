"""watch against the lab over real sockets: a fault opens an incident, clearing it resolves it, and both
notifications reach a webhook receiver on loopback in Chinese."""

from __future__ import annotations

import pytest

from canteen_ops.context import Env
from canteen_ops.lab.webhook import WebhookReceiver
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.watch import Watch
from tests.watch_fixtures import inventory_with


@pytest.fixture
def receiver():
    with WebhookReceiver() as r:
        yield r


def _env(inv, tmp_path):
    return Env(inventory_path=inv, db_path=tmp_path / "log.db", operator="tester", argv=["watch"])


def test_fault_opens_then_clearing_resolves_and_both_are_sent(lab, lab_faults, tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("TEST_HOOK_URL", receiver.url)
    inv = inventory_with(lab.inventory, tmp_path / "inv.yaml", schools=("s001",),
                         notify=[{"name": "district-group", "url_env": "TEST_HOOK_URL"}])
    cam = next(d for d in lab.fleet.devices if d.id.startswith("s001-") and d.kind == "camera")
    lab_faults.set(cam.id, "offline")
    env = _env(inv, tmp_path)
    lines = []

    def after_round(line):
        lines.append(line)
        if len(lines) == 1:
            lab_faults.clear(cam.id, "offline")

    w = Watch(env, env.inventory().devices, interval_s=0, iterations=2, skip=("stream", "picture", "coverage"),
              out=after_round, metrics=tmp_path / "canteen.prom")
    code = w.run()
    env.close()
    assert code in (0, 1, 3), lines
    # the camera's reachable check and the NVR's channel for that camera: two incidents, both clear again
    assert "2 opened" in lines[0] and "2 resolved" in lines[1], lines

    log = MaintenanceLog.open(tmp_path / "log.db")
    incs = log.query("SELECT * FROM incidents ORDER BY dedup_key")
    assert sorted(i["dedup_key"] for i in incs) == sorted([f"{cam.id}:reachable", "s001-nvr:channels"])
    assert all(i["state"] == "resolved" for i in incs)
    inc = next(i for i in incs if i["dedup_key"] == f"{cam.id}:reachable")
    assert inc["state"] == "resolved" and inc["resolved_by"] == "canteen-ops" and inc["resolved_at"]
    assert inc["data"]["auto_resolved"] is True and inc["resolution"].startswith("自动恢复")
    assert [e["action"] for e in log.query("SELECT action FROM incident_events WHERE incident_id = ? ORDER BY seq",
                                           [inc["id"]])][:2] == ["open", "assign"]
    run = log.query("SELECT * FROM runs WHERE command = 'watch'")[0]
    assert run["status"] in ("ok", "warn", "unknown") and run["ended_at"]
    log.close()

    got = receiver.wait_for(4)
    assert len(got) == 4, got
    opened, resolved = (g["body"] for g in got if f"设备：{cam.id}" in g["body"]["message"])
    assert opened["title"].startswith("【故障告警") and cam.id in opened["title"]
    for field in ("学校：", "设备：", "区域：", "级别：", "到场时限：", "值班人员："):
        assert field in opened["message"], opened["message"]
    assert "第一" in opened["message"] or "s001" in opened["message"]
    assert ("张伟" in opened["message"]) or ("王芳" in opened["message"])  # whoever is on duty now
    assert "知识库：KB-OFFLINE" in opened["message"], opened["message"]  # the entry a technician opens on site
    assert resolved["title"].startswith("【故障恢复") and "恢复时间：" in resolved["message"]
    assert "自动恢复" in resolved["message"]

    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families((tmp_path / "canteen.prom").read_text())}
    checks = {(s.labels["device"], s.labels["check"]): s.value for s in families["canteen_ops_check_status"].samples}
    assert checks[(cam.id, "reachable")] == 0 and checks[("s001-nvr", "channels")] == 0
    up = {s.labels["device"]: s.value for s in families["canteen_ops_device_up"].samples}
    assert up[cam.id] == 1 and len(up) == 4
    opened = {s.labels["level"]: s.value for s in families["canteen_ops_incidents_open"].samples}
    assert opened == {"major": 0, "general": 0}
    assert families["canteen_ops_watch_rounds"].samples[0].value == 2
    assert families["canteen_ops_watch_last_round_timestamp_seconds"].samples[0].value > 1.7e9
