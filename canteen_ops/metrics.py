"""`watch --metrics FILE`: the fleet's latest state for Prometheus (node_exporter's textfile collector) or
anything else that reads the OpenMetrics/Prometheus text format (Zabbix, Grafana Agent).

Statuses are numbers so that alert rules can compare them: 0 ok, 1 warn, 2 crit, 3 unknown (the exit codes).
Written with prometheus-client's own registry and `write_to_textfile`, which writes a temporary file and renames
it: the collector never reads half a file.
"""

from __future__ import annotations

from typing import Any, Iterable

from canteen_ops.status import Status


def write_metrics(path: str, inventory, latest: Iterable[dict[str, Any]], open_incidents: Iterable[dict[str, Any]],
                  *, round_started: float, round_seconds: float, rounds: int, pending_notifications: int) -> None:
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    reg = CollectorRegistry()
    device_status = Gauge("canteen_ops_device_status", "Worst latest check status of a device "
                          "(0 ok, 1 warn, 2 crit, 3 unknown)", ["device", "school", "kind", "vendor"], registry=reg)
    device_up = Gauge("canteen_ops_device_up", "1 when the device answered and accepted our login in its latest "
                      "check, else 0", ["device", "school"], registry=reg)
    check_status = Gauge("canteen_ops_check_status", "Latest status of one check on one device or school "
                         "(0 ok, 1 warn, 2 crit, 3 unknown)", ["device", "school", "check"], registry=reg)
    incidents = Gauge("canteen_ops_incidents_open", "Incidents not resolved yet", ["level"], registry=reg)
    last = Gauge("canteen_ops_watch_last_round_timestamp_seconds", "When the last watch round started (Unix time)",
                 registry=reg)
    duration = Gauge("canteen_ops_watch_last_round_duration_seconds", "How long the last watch round took",
                     registry=reg)
    rounds_g = Gauge("canteen_ops_watch_rounds", "Rounds this watch has run", registry=reg)
    pending = Gauge("canteen_ops_notifications_pending", "Notifications waiting in the outbox (failed sends, "
                    "quiet hours, rate limit)", registry=reg)

    known = {d.id: d for d in inventory.devices}
    worst: dict[str, Status] = {}
    up: dict[str, int] = {}
    for r in latest:
        try:
            status = Status(r["status"])
        except ValueError:
            continue
        if not status.counted:  # n/a
            continue
        did = r.get("device_id")
        if did and did not in known:  # the device left the inventory
            continue
        check_status.labels(did or "", r.get("school_id") or "", r["check_name"]).set(status.exit_code)
        if did:
            if did not in worst or status.severity > worst[did].severity:
                worst[did] = status
            if r["check_name"] in ("reachable", "login"):
                up[did] = min(up.get(did, 1), 1 if status is Status.OK else 0)
    for did, status in worst.items():
        d = known[did]
        device_status.labels(did, d.school_id, d.kind, d.vendor).set(status.exit_code)
        device_up.labels(did, d.school_id).set(up.get(did, 0))
    counts = {"major": 0, "general": 0}
    for inc in open_incidents:
        counts[inc["level"]] = counts.get(inc["level"], 0) + 1
    for level, n in counts.items():
        incidents.labels(level).set(n)
    last.set(round_started)
    duration.set(round_seconds)
    rounds_g.set(rounds)
    pending.set(pending_notifications)
    write_to_textfile(path, reg)
