"""Work permits: the flow, every refusal, the backup hook, and the guard for device-altering commands."""

import datetime as dt
import json

import pytest

from canteen_ops import changes
from canteen_ops.changes import (
    BackupsUnavailable,
    approve,
    complete,
    notify,
    request,
    require_started_change,
    rollback,
    start,
)
from canteen_ops.errors import NotFound, PermissionRefused, UsageError
from canteen_ops.inventory.loader import load_inventory
from canteen_ops.status import Result, Status
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import utcnow
from tests.conftest import EXAMPLE

H = dt.timedelta(hours=1)


@pytest.fixture
def inv():
    return load_inventory(EXAMPLE)


@pytest.fixture
def log(tmp_path):
    lg = MaintenanceLog.open(tmp_path / "chg.db")
    yield lg
    lg.close()


class FakeBackups:
    """Stands in for canteen_ops.tasks.backup in unit tests: records calls, fails chosen devices."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], set(fail)

    def __call__(self, devices, change_id):
        self.calls.append(([d.id for d in devices], change_id))
        return [Result(d.id, "backup", Status.CRIT if d.id in self.fail else Status.OK,
                       "HTTP 500 during export" if d.id in self.fail else "stored", data={})
                for d in devices]


def _notified(log, inv, devices=("xc-cam-01", "xc-nvr-01"), start_in=-H, end_in=2 * H):
    ch = request(log, inv, title="升级固件 V5.7.18", device_ids=list(devices), actor="li",
                 description="firmware upgrade; fallback: restore backup")
    approve(log, ch["id"], "wang")
    now = utcnow()
    return notify(log, ch["id"], "li", notice_to=["王建国 后勤主任", "李梅 食堂经理"],
                  window_start=now + start_in, window_end=now + end_in)


def test_full_flow_records_notice_and_backups(log, inv):
    ch = _notified(log, inv)
    assert ch["state"] == "notified" and ch["notice_to"] == ["王建国 后勤主任", "李梅 食堂经理"]
    assert ch["school_id"] == "xc-shiyan-xx" and ch["notified_by"] == "li"
    fake = FakeBackups()
    ch = start(log, inv, ch["id"], "li", backup_devices=fake)
    assert fake.calls == [(["xc-cam-01", "xc-nvr-01"], ch["id"])]
    assert ch["state"] == "started" and set(ch["data"]["backups"]) == {"xc-cam-01", "xc-nvr-01"}
    assert require_started_change(log, ["xc-nvr-01"])["id"] == ch["id"]
    assert require_started_change(log, ["xc-cam-01", "xc-nvr-01"], change_id=ch["id"][:8])["id"] == ch["id"]
    ch = complete(log, ch["id"], "li", note="升级成功")
    assert ch["state"] == "completed" and ch["completed_by"] == "li"
    evs = changes.events(log, ch["id"])
    assert [e["action"] for e in evs] == ["request", "approve", "notify", "start", "complete"]
    assert evs[2]["data"]["device_ids"] == ["xc-cam-01", "xc-nvr-01"] and evs[2]["data"]["window_end"]
    with pytest.raises(PermissionRefused, match="needs a started change"):
        require_started_change(log, ["xc-nvr-01"])


def test_rollback(log, inv):
    ch = start(log, inv, _notified(log, inv)["id"], "li", backup_devices=FakeBackups())
    with pytest.raises(UsageError, match="why"):
        rollback(log, ch["id"], "li", reason=" ")
    ch = rollback(log, ch["id"], "li", reason="新固件录像异常，已恢复备份")
    assert ch["state"] == "rolled_back" and ch["rolled_back_by"] == "li"
    with pytest.raises(PermissionRefused, match="it is rolled_back"):
        complete(log, ch["id"], "li")


def test_every_out_of_order_transition_is_refused(log, inv):
    ch = request(log, inv, title="t", device_ids=["xc-cam-02"], actor="li")
    fake = FakeBackups()
    for verb, call in [("record the notice", lambda: notify(log, ch["id"], "li", notice_to=["x"],
                                                 window_start=utcnow(), window_end=utcnow() + H)),
                       ("start", lambda: start(log, inv, ch["id"], "li", backup_devices=fake)),
                       ("complete", lambda: complete(log, ch["id"], "li")),
                       ("roll back", lambda: rollback(log, ch["id"], "li", reason="r"))]:
        with pytest.raises(PermissionRefused, match=f"cannot {verb}.*it is requested.*next step: approve"):
            call()
    with pytest.raises(PermissionRefused, match="li requested it"):
        approve(log, ch["id"], "li")
    approve(log, ch["id"], "wang")
    with pytest.raises(PermissionRefused, match="it is approved"):
        approve(log, ch["id"], "zhao")
    with pytest.raises(PermissionRefused, match="it is approved.*next step: notify"):
        start(log, inv, ch["id"], "li", backup_devices=fake)
    assert fake.calls == []  # nothing was backed up by a refused start
    assert log.get("changes", ch["id"])["state"] == "approved"


def test_notice_requires_recipients_and_window(log, inv):
    ch = request(log, inv, title="t", device_ids=["xc-cam-02"], actor="li")
    approve(log, ch["id"], "wang")
    with pytest.raises(UsageError, match="who was told"):
        notify(log, ch["id"], "li", notice_to=[" "], window_start=utcnow(), window_end=utcnow() + H)
    with pytest.raises(UsageError, match="window"):
        notify(log, ch["id"], "li", notice_to=["王建国"])
    with pytest.raises(UsageError, match="ends .* before it starts"):
        notify(log, ch["id"], "li", notice_to=["王建国"], window_start=utcnow() + H, window_end=utcnow())
    with pytest.raises(UsageError, match="already ended"):
        notify(log, ch["id"], "li", notice_to=["王建国"], window_start=utcnow() - 2 * H,
               window_end=utcnow() - H)
    assert log.get("changes", ch["id"])["state"] == "approved"


def test_start_refused_outside_window(log, inv):
    ch = _notified(log, inv, start_in=H, end_in=2 * H)  # window opens in an hour
    fake = FakeBackups()
    with pytest.raises(PermissionRefused, match="outside the announced window"):
        start(log, inv, ch["id"], "li", backup_devices=fake)
    assert fake.calls == []
    ch2 = start(log, inv, ch["id"], "li", backup_devices=fake, now=utcnow() + 1.5 * H)
    assert ch2["state"] == "started"
    # once the window has ended the permit no longer covers the devices
    with pytest.raises(PermissionRefused, match="window ended"):
        require_started_change(log, ["xc-cam-01"], now=utcnow() + 3 * H)


def test_start_refused_when_a_backup_fails(log, inv):
    ch = _notified(log, inv)
    with pytest.raises(PermissionRefused, match="xc-nvr-01: HTTP 500 during export"):
        start(log, inv, ch["id"], "li", backup_devices=FakeBackups(fail={"xc-nvr-01"}))
    assert log.get("changes", ch["id"])["state"] == "notified"
    assert changes.events(log, ch["id"])[-1]["action"] == "start-refused"
    # a hook that forgets a device is a failure too
    with pytest.raises(PermissionRefused, match="xc-cam-01: no backup outcome reported"):
        start(log, inv, ch["id"], "li", backup_devices=lambda devs, cid: [
            {"device_id": "xc-nvr-01", "status": "ok", "id": "b-1"}])
    with pytest.raises(PermissionRefused, match="needs a started change"):
        require_started_change(log, ["xc-nvr-01"])
    ch = start(log, inv, ch["id"], "li", backup_devices=FakeBackups())  # retry after fixing it
    assert ch["state"] == "started"


def test_default_hook_without_backup_module(log, inv, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "canteen_ops.tasks.backup", None)  # import fails like a missing module
    ch = _notified(log, inv)
    with pytest.raises(BackupsUnavailable, match="backups not available"):
        start(log, inv, ch["id"], "li")
    assert log.get("changes", ch["id"])["state"] == "notified"


def test_two_started_changes_cannot_share_a_device(log, inv):
    a = start(log, inv, _notified(log, inv, devices=["xc-cam-01"])["id"], "li", backup_devices=FakeBackups())
    b = _notified(log, inv, devices=["xc-cam-01", "xc-cam-02"])
    with pytest.raises(PermissionRefused, match=f"xc-cam-01 is under started change {a['id'][:8]}"):
        start(log, inv, b["id"], "li", backup_devices=FakeBackups())
    # the guard names what is missing
    with pytest.raises(PermissionRefused, match="does not cover xc-cam-02"):
        require_started_change(log, ["xc-cam-01", "xc-cam-02"])
    with pytest.raises(PermissionRefused, match="is notified, not started"):
        require_started_change(log, ["xc-cam-02"], change_id=b["id"])


def test_request_validation(log, inv):
    with pytest.raises(NotFound, match="ghost"):
        request(log, inv, title="t", device_ids=["ghost"], actor="li")
    with pytest.raises(UsageError, match="device"):
        request(log, inv, title="t", device_ids=[], actor="li")
    with pytest.raises(UsageError, match="title"):
        request(log, inv, title="", device_ids=["xc-cam-01"], actor="li")
    multi = request(log, inv, title="district-wide NTP", device_ids=["xc-cam-01", "hd-cam-01"], actor="li")
    assert multi["school_id"] is None


# --- CLI -----------------------------------------------------------------------------------------------------
def test_cli_flow_until_start_refuses_without_backups(cli, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "canteen_ops.tasks.backup", None)
    r = cli("-i", EXAMPLE, "change", "request", "-t", "更换硬盘", "-d", "hd-nvr-01", "--json")
    assert r.code == 0, r
    cid = json.loads(r.out)["id"]
    r = cli("-i", EXAMPLE, "change", "approve", cid)
    assert r.code == 77 and "another person" in r.err
    r = cli("-i", EXAMPLE, "--operator", "boss", "change", "approve", cid[:8])
    assert r.code == 0 and "approved" in r.out
    r = cli("-i", EXAMPLE, "change", "start", cid)
    assert r.code == 77 and "next step: notify" in r.err
    now = dt.datetime.now().astimezone()
    r = cli("-i", EXAMPLE, "change", "notify", cid, "--to", "张伟 总务处",
            "--window-start", (now - H).isoformat(), "--window-end", (now + H).isoformat())
    assert r.code == 0, r
    r = cli("-i", EXAMPLE, "change", "start", cid)
    assert r.code == 77 and "backups not available" in r.err
    r = cli("-i", EXAMPLE, "change", "show", cid)
    assert r.code == 0 and "张伟 总务处" in r.out and "start-refused" in r.out and "boss" in r.out
    r = cli("-i", EXAMPLE, "change", "list", "--json")
    assert [c["state"] for c in json.loads(r.out)] == ["notified"]
    r = cli("-i", EXAMPLE, "change", "complete", cid)
    assert r.code == 77
    r = cli("-i", EXAMPLE, "change", "list", "--state", "bogus")
    assert r.code == 64
    r = cli("-i", EXAMPLE, "change", "notify", cid, "--to", "x", "--window-start", "soon")
    assert r.code == 64 and "--window-start" in r.err
