"""Operations report (运行分析报告): reliability per school and overall, from the maintenance log.

Definitions (also printed in the report's notes, so a reader can check every figure):

- **Availability (在线率)**: every `reachable` result in the period is one sample of one device: `ok` / `warn`
  (answering, maybe slowly) = up, `crit` (refused, timeout, unreachable) = down, `unknown` (the check could not
  tell: run cut short, checker offline) = not counted. Availability = up / (up + down). "Online at end" is the
  share of checked devices whose latest sample in the period was up.
- **Failing checks by kind**: per check name, the results in the period with `warn` / `crit`, and how many devices.
- **Incidents by level**: incidents opened in the period; time to arrive / resolve from opening; on-site SLA
  met / breached / pending (sla.arrive_sla), compliance = met / (met + breached); restore within
  `incident_resolve_h`.
- **Backups**: a device is covered if it has a good backup (`ok`, or `pruned` later) taken in the period;
  `stale` if at the period's end its newest good backup is older than the policy's `backup_stale_hours`, or it
  never had one. Devices whose every attempt said `unsupported` (no export; the config snapshot stands in) are
  listed apart and left out of the coverage denominator.
- **Firmware compliance**: the newest finding per device up to the period's end: current / outdated /
  vulnerable / unknown; compliance = current / (current + outdated + vulnerable).
- **Retention compliance (存储达标率)**: newest `retention` result per device in the period; ok = compliant.
- **Picture clarity (清晰度达标率)**: `picture` results in the period; pass = ok, over ok + warn + crit.
- **Coverage (重点点位覆盖率)**: newest `coverage` result per school in the period: covered required areas over
  required areas; overall sums the schools.
Devices no longer in the inventory are left out; percentages with nothing to count show as "—".
"""

from __future__ import annotations

import datetime as dt
import html
import statistics
from collections import Counter, defaultdict
from typing import Any, Iterable

from canteen_ops.i18n import _, check_word, language, status_word, word
from canteen_ops.inventory.model import Device, Inventory, School
from canteen_ops.sla import LEVELS, arrive_sla, resolve_sla
from canteen_ops.store.log import MaintenanceLog
from canteen_ops.timeutil import iso, parse_iso, utcnow

AVAILABILITY_CHECK = "reachable"
RETENTION_CHECK = "retention"
PICTURE_CHECK = "picture"
COVERAGE_CHECK = "coverage"
GOOD_BACKUP = ("ok", "pruned")  # pruned: was good, file removed later by retention
FIRMWARE_STATES = ("current", "outdated", "vulnerable", "unknown")


def pct(num: int | float, den: int | float) -> float | None:
    return round(100.0 * num / den, 1) if den else None


def _minutes(a: str, b: str) -> float:
    return (parse_iso(b) - parse_iso(a)).total_seconds() / 60.0


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "max": None}
    return {"mean": round(statistics.fmean(values), 1), "median": round(statistics.median(values), 1),
            "max": round(max(values), 1)}


# --- building the figures ------------------------------------------------------------------------------------
class _Data:
    """Every log row the report needs, read once for the period."""

    def __init__(self, log: MaintenanceLog, start: dt.datetime, end: dt.datetime):
        s, e = iso(start), iso(end)
        # n/a (the check does not apply) is no result to rate, count or take as a device's latest: left out here
        self.results = log.query("SELECT device_id, school_id, check_name, status, data, observed_at, seq "
                                 "FROM results WHERE observed_at >= ? AND observed_at < ? AND status != 'n/a' "
                                 "ORDER BY seq", [s, e])
        self.incidents = log.query("SELECT * FROM incidents WHERE opened_at >= ? AND opened_at < ? "
                                   "ORDER BY opened_at", [s, e])
        # backups and firmware: everything up to the end (staleness and "newest finding" look further back)
        self.backups = log.query("SELECT device_id, status, created_at FROM backups WHERE created_at < ? "
                                 "ORDER BY seq", [e])
        self.firmware = log.query("SELECT device_id, status, version, latest, created_at FROM firmware_findings "
                                  "WHERE created_at < ? ORDER BY seq", [e])
        self.start, self.end = start, end


def _availability(d: _Data, devices: set[str]) -> dict[str, Any]:
    up = down = unknown = 0
    latest: dict[str, str] = {}
    for r in d.results:
        if r["check_name"] != AVAILABILITY_CHECK or r["device_id"] not in devices:
            continue
        if r["status"] in ("ok", "warn"):
            up += 1
            latest[r["device_id"]] = "up"
        elif r["status"] == "crit":
            down += 1
            latest[r["device_id"]] = "down"
        else:
            unknown += 1
    online = sum(1 for v in latest.values() if v == "up")
    return {"samples": up + down, "up": up, "down": down, "unknown": unknown, "pct": pct(up, up + down),
            "devices": len(devices), "devices_checked": len(latest), "online_at_end": online,
            "online_pct": pct(online, len(latest)), "unchecked": sorted(devices - set(latest))}


def _failing(d: _Data, devices: set[str], schools: set[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, Any]] = {}
    for r in d.results:
        in_scope = r["device_id"] in devices if r["device_id"] else r["school_id"] in schools
        if not in_scope:
            continue
        k = out.setdefault(r["check_name"], {"results": 0, "warn": 0, "crit": 0, "_devices": set()})
        k["results"] += 1
        if r["status"] in ("warn", "crit"):
            k[r["status"]] += 1
            k["_devices"].add(r["device_id"] or f"school:{r['school_id']}")
    return {name: {"results": v["results"], "warn": v["warn"], "crit": v["crit"], "devices": len(v["_devices"]),
                   "fail_pct": pct(v["warn"] + v["crit"], v["results"])}
            for name, v in sorted(out.items(), key=lambda kv: (-(kv[1]["crit"] + kv[1]["warn"]), kv[0]))}


def _incidents(d: _Data, schools: set[str], now: dt.datetime) -> dict[str, dict[str, Any]]:
    out = {}
    for level in LEVELS:
        # a cancelled incident was a false alarm: no fault, no SLA
        rows = [i for i in d.incidents if i["level"] == level and i["school_id"] in schools
                and i["state"] != "cancelled"]
        sla = Counter(arrive_sla(i, now) for i in rows)
        restore = Counter(resolve_sla(i, now) for i in rows)
        arrive = [_minutes(i["opened_at"], i["arrived_at"]) for i in rows if i.get("arrived_at")]
        resolve = [_minutes(i["opened_at"], i["resolved_at"]) / 60.0 for i in rows if i.get("resolved_at")]
        out[level] = {
            "opened": len(rows), "resolved": sum(1 for i in rows if i["state"] == "resolved"),
            "open": sum(1 for i in rows if i["state"] != "resolved"),
            "escalated": sum(1 for i in rows if i.get("escalated_at")),
            "arrive_met": sla["met"], "arrive_breached": sla["breached"], "arrive_pending": sla["pending"],
            "sla_pct": pct(sla["met"], sla["met"] + sla["breached"]),
            "restore_met": restore["met"], "restore_breached": restore["breached"],
            "restore_pct": pct(restore["met"], restore["met"] + restore["breached"]),
            "arrive_min": _stats(arrive), "resolve_h": _stats(resolve),
        }
    return out


def _backups(d: _Data, devices: dict[str, Device]) -> dict[str, Any]:
    s, e = iso(d.start), iso(d.end)
    good_in_period: set[str] = set()
    newest_good: dict[str, str] = {}
    statuses: dict[str, set[str]] = defaultdict(set)
    attempts = failed = 0
    for b in d.backups:
        did = b["device_id"]
        if did not in devices:
            continue
        in_period = s <= b["created_at"] < e
        if in_period:
            attempts += 1
            failed += b["status"] == "failed"
            statuses[did].add(b["status"])
        if b["status"] in GOOD_BACKUP:
            newest_good[did] = max(newest_good.get(did, ""), b["created_at"])
            if in_period:
                good_in_period.add(did)
    no_export = sorted(did for did, st in statuses.items() if st == {"unsupported"} and did not in newest_good)
    scope = [did for did in devices if did not in no_export]
    stale, never = [], []
    for did in sorted(scope):
        last = newest_good.get(did)
        limit = dt.timedelta(hours=devices[did].policy.backup_stale_hours)
        if last is None:
            never.append(did)
        elif d.end - parse_iso(last) > limit:
            stale.append(did)
    covered = len(good_in_period & set(scope))
    return {"devices": len(scope), "covered": covered, "coverage_pct": pct(covered, len(scope)),
            "stale": stale, "never": never, "no_export": no_export, "attempts": attempts, "failed": failed}


def _firmware(d: _Data, devices: set[str]) -> dict[str, Any]:
    newest: dict[str, dict] = {}
    for f in d.firmware:
        if f["device_id"] in devices:
            newest[f["device_id"]] = f
    c = Counter(f["status"] if f["status"] in FIRMWARE_STATES else "unknown" for f in newest.values())
    judged = c["current"] + c["outdated"] + c["vulnerable"]
    return {"checked": len(newest), **{k: c[k] for k in FIRMWARE_STATES}, "compliance_pct": pct(c["current"], judged),
            "vulnerable_devices": sorted(did for did, f in newest.items() if f["status"] == "vulnerable"),
            "unchecked": len(devices - set(newest))}


def _latest_status(d: _Data, check: str, devices: set[str]) -> dict[str, str]:
    latest: dict[str, str] = {}
    for r in d.results:
        if r["check_name"] == check and r["device_id"] in devices:
            latest[r["device_id"]] = r["status"]
    return latest


def _retention(d: _Data, devices: set[str]) -> dict[str, Any]:
    latest = {k: v for k, v in _latest_status(d, RETENTION_CHECK, devices).items() if v != "unknown"}
    ok = sum(1 for v in latest.values() if v == "ok")
    return {"devices": len(latest), "compliant": ok, "pct": pct(ok, len(latest)),
            "failing": sorted(k for k, v in latest.items() if v != "ok")}


def _picture(d: _Data, devices: set[str]) -> dict[str, Any]:
    rows = [r for r in d.results if r["check_name"] == PICTURE_CHECK and r["device_id"] in devices
            and r["status"] != "unknown"]
    passed = sum(1 for r in rows if r["status"] == "ok")
    return {"samples": len(rows), "passed": passed, "pct": pct(passed, len(rows)),
            "devices": len({r["device_id"] for r in rows})}


def _coverage(d: _Data, schools: Iterable[School]) -> dict[str, Any]:
    required = covered = 0
    uncovered: dict[str, list[str]] = {}
    reported = 0
    for school in schools:
        latest = None
        for r in d.results:
            if r["check_name"] == COVERAGE_CHECK and r["school_id"] == school.id and r["device_id"] is None:
                latest = r
        data = (latest or {}).get("data")
        if not isinstance(data, dict) or "required" not in data:
            continue
        reported += 1
        # areas not checked yet (unknown) are neither covered nor uncovered: left out of the rate
        req = [a for a in data.get("required") or [] if a not in (data.get("unchecked") or [])]
        unc = [a for a in (data.get("uncovered") or []) if a in req]
        required += len(req)
        covered += len(req) - len(unc)
        if unc:
            uncovered[school.id] = unc
    return {"schools_reported": reported, "required": required, "covered": covered, "pct": pct(covered, required),
            "uncovered": uncovered}


def _metrics(d: _Data, schools: list[School], now: dt.datetime) -> dict[str, Any]:
    devs = {dev.id: dev for s in schools for dev in s.devices}
    ids = set(devs)
    sids = {s.id for s in schools}
    return {
        "devices": len(ids), "cameras": sum(1 for x in devs.values() if x.kind == "camera"),
        "nvrs": sum(1 for x in devs.values() if x.kind == "nvr"),
        "availability": _availability(d, ids), "failing_checks": _failing(d, ids, sids),
        "incidents": _incidents(d, sids, now), "backups": _backups(d, devs), "firmware": _firmware(d, ids),
        "retention": _retention(d, ids), "picture": _picture(d, ids), "coverage": _coverage(d, schools),
    }


def build_report(log: MaintenanceLog, inventory: Inventory, start: dt.datetime, end: dt.datetime, *,
                 schools: Iterable[str] = (), now: dt.datetime | None = None) -> dict[str, Any]:
    """All figures as plain data (the renderers and tests use this)."""
    from canteen_ops.errors import NotFound, UsageError

    if end <= start:
        raise UsageError("the period is empty: --to ({end}) is not after --from ({start})", end=iso(end),
                         start=iso(start))
    wanted = list(schools)
    chosen = [s for s in inventory.schools if not wanted or s.id in wanted or s.name in wanted]
    unknown = [w for w in wanted if not any(w in (s.id, s.name) for s in inventory.schools)]
    if unknown:
        raise NotFound("school(s) not in the inventory: {unknown}", unknown=', '.join(unknown))
    now = now or utcnow()
    d = _Data(log, start, end)
    return {
        "title": "运行分析报告 · Operations report",
        "period": {"from": iso(start), "to": iso(end), "timezone": inventory.settings.timezone},
        "generated_at": iso(now),
        "schools": [{"id": s.id, "name": s.name, "district": s.district, **_metrics(d, [s], now)} for s in chosen],
        "overall": _metrics(d, chosen, now),
    }


# --- rendering -----------------------------------------------------------------------------------------------
def _p(v: float | None) -> str:
    return "—" if v is None else f"{v:g}%"


def _n(v: float | None, unit: str = "") -> str:
    return "—" if v is None else f"{v:g}{unit}"


KPI_ROWS = (
    ("Availability 在线率 (samples)", lambda m: _p(m["availability"]["pct"])),
    ("Online at end", lambda m: f"{m['availability']['online_at_end']}/{m['availability']['devices_checked']}"),
    ("Picture clarity 清晰度达标率", lambda m: _p(m["picture"]["pct"])),
    ("Coverage 重点点位覆盖率", lambda m: _p(m["coverage"]["pct"])),
    ("Retention 存储达标率", lambda m: _p(m["retention"]["pct"])),
    ("Backup coverage", lambda m: _p(m["backups"]["coverage_pct"])),
    ("Firmware compliance", lambda m: _p(m["firmware"]["compliance_pct"])),
    ("On-site SLA (major)", lambda m: _p(m["incidents"]["major"]["sla_pct"])),
    ("On-site SLA (general)", lambda m: _p(m["incidents"]["general"]["sla_pct"])),
)


def _local(ts: str, tz: str) -> str:
    from canteen_ops.timeutil import local

    return local(ts, tz)[:16]


def render_markdown(rep: dict[str, Any]) -> str:
    tz = rep["period"]["timezone"]
    out = [f"# {_(rep['title'])}", "",
           _("Period: {start} – {end} ({tz}); generated {at}.").format(
               start=_local(rep['period']['from'], tz), end=_local(rep['period']['to'], tz), tz=tz,
               at=_local(rep['generated_at'], tz)), ""]
    scopes = [(_("Overall"), rep["overall"])] + [(f"{s['name']} ({s['id']})", s) for s in rep["schools"]]
    out += [f"## {_('Key figures')}", "", "| | " + " | ".join(n for n, _m in scopes) + " |",
            "|---|" + "---|" * len(scopes)]
    out.append(f"| {_('Devices')} | " + " | ".join(str(m["devices"]) for _n, m in scopes) + " |")
    for label, fn in KPI_ROWS:
        out.append(f"| {_(label)} | " + " | ".join(fn(m) for _n, m in scopes) + " |")
    for name, m in scopes:
        out += ["", f"## {name}", ""]
        out += _md_sections(m)
    out += ["", f"## {_('Notes')}", "", _notes()]
    return "\n".join(out) + "\n"


def _md_sections(m: dict[str, Any]) -> list[str]:
    a = m["availability"]
    out = [_("**Availability**: {pct} over {samples} samples ({up} up, {down} down, {unknown} could not tell); "
             "{checked} of {devices} devices checked, {online} online at the end.").format(
        pct=_p(a['pct']), samples=a['samples'], up=a['up'], down=a['down'], unknown=a['unknown'],
        checked=a['devices_checked'], devices=a['devices'], online=a['online_at_end'])]
    if a["unchecked"]:
        out.append(_("Not checked in the period: {devices}.").format(devices=", ".join(a['unchecked'])))
    out += ["", f"**{_h('Failing checks by kind')}**", ""]
    if m["failing_checks"]:
        out += ["| " + " | ".join(_h(h) for h in ("check", "results", "warn", "crit", "devices", "failing")) + " |",
                "|---|---|---|---|---|---|"]
        for k, v in m["failing_checks"].items():
            out.append(f"| {check_word(k)} | {v['results']} | {v['warn']} | {v['crit']} | {v['devices']} | {_p(v['fail_pct'])} |")
    else:
        out.append(_("No check results in the period."))
    out += ["", f"**{_h('Incidents')}**", "", "| " + " | ".join(_h(h) for h in (
        "level", "opened", "resolved", "open", "escalated", "on-site SLA met/breached/pending", "SLA",
        "arrive median (min)", "resolve median (h)", "restore ≤ limit")) + " |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for level, v in m["incidents"].items():
        out.append(f"| {_level(level)} | {v['opened']} | {v['resolved']} | {v['open']} | {v['escalated']} | "
                   f"{v['arrive_met']}/{v['arrive_breached']}/{v['arrive_pending']} | {_p(v['sla_pct'])} | "
                   f"{_n(v['arrive_min']['median'])} | {_n(v['resolve_h']['median'])} | {_p(v['restore_pct'])} |")
    b = m["backups"]
    out += ["", _("**Backups**: {covered} of {devices} devices backed up in the period ({pct}); "
                  "{attempts} attempts, {failed} failed.").format(
        covered=b['covered'], devices=b['devices'], pct=_p(b['coverage_pct']), attempts=b['attempts'],
        failed=b['failed'])]
    if b["stale"] or b["never"]:
        out.append(_("Stale: {stale}; never backed up: {never}.").format(
            stale=", ".join(b['stale']) or _h("none"), never=", ".join(b['never']) or _h("none")))
    if b["no_export"]:
        out.append(_("No configuration export (snapshot only): {devices}.").format(devices=", ".join(b['no_export'])))
    f = m["firmware"]
    out += ["", _("**Firmware**: {current} current, {outdated} outdated, {vulnerable} vulnerable, "
                  "{unknown} unknown model, {unchecked} not checked — compliance {pct}.").format(
        current=f['current'], outdated=f['outdated'], vulnerable=f['vulnerable'], unknown=f['unknown'],
        unchecked=f['unchecked'], pct=_p(f['compliance_pct']))]
    if f["vulnerable_devices"]:
        out.append(_("Vulnerable: {devices}.").format(devices=", ".join(f['vulnerable_devices'])))
    r, p, c = m["retention"], m["picture"], m["coverage"]
    failing = _("; failing: {devices}").format(devices=", ".join(r['failing'])) if r["failing"] else ""
    uncovered = _("; uncovered: {areas}").format(areas="; ".join(
        f"{s}: {', '.join(a)}" for s, a in c["uncovered"].items())) if c["uncovered"] else ""
    out += ["", _("**Retention (存储达标率)**: {compliant} of {devices} recorders compliant ({pct}){failing}.").format(
                compliant=r['compliant'], devices=r['devices'], pct=_p(r['pct']), failing=failing),
            _("**Picture clarity (清晰度达标率)**: {passed} of {samples} checks passed ({pct}) on {devices} cameras.")
            .format(passed=p['passed'], samples=p['samples'], pct=_p(p['pct']), devices=p['devices']),
            _("**Coverage (重点点位覆盖率)**: {covered} of {required} required areas covered ({pct}){uncovered}.")
            .format(covered=c['covered'], required=c['required'], pct=_p(c['pct']), uncovered=uncovered)]
    return out


_NOTES = (__doc__ or "").split("check every figure):", 1)[-1].strip()  # the definitions above

# The same definitions for a Chinese reader (kept here, next to the English, so the two are edited together).
_NOTES_ZH = """\
- **在线率**：周期内每条 `reachable` 结果是一台设备的一次采样：`正常` / `警告`（有应答，可能较慢）= 在线，`严重`（拒绝连接、
  超时、不可达）= 离线，`未知`（无法判断：巡检中断、检测端离线）不计入。在线率 = 在线 / (在线 + 离线)。"期末在线"是已检查
  设备中，周期内最后一次采样为在线的比例。
- **按检查项统计的异常**：每个检查项在周期内 `警告` / `严重` 的结果数及涉及设备数。
- **按级别统计的事件**：周期内报告的事件；到场、修复用时从报告时算起；到场时限达标 / 超时 / 未到期（sla.arrive_sla），
  达标率 = 达标 / (达标 + 超时)；修复时限为 `incident_resolve_h`。
- **配置备份**：周期内有成功备份（`ok`，或之后被清理的 `pruned`）的设备视为已覆盖；周期结束时最新成功备份早于策略的
  `backup_stale_hours`，或从未备份，视为过期。每次尝试都为 `unsupported`（设备不提供配置导出，以配置快照代替）的设备单列，
  不计入覆盖率分母。
- **固件合规率**：截至周期结束每台设备最新的核对结果：最新 / 过旧 / 有漏洞 / 未知；合规率 = 最新 / (最新 + 过旧 + 有漏洞)。
- **存储达标率**：周期内每台设备最新的 `retention`（录像保存天数）结果；正常即达标。
- **清晰度达标率**：周期内的 `picture` 结果；正常为合格，分母为 正常 + 警告 + 严重。
- **重点点位覆盖率**：周期内每所学校最新的 `coverage` 结果：有摄像机覆盖的必需区域 / 必需区域；总体为各校之和。
已不在设备清单中的设备不计入；无可统计数据的百分比显示为"—"。"""


def _notes() -> str:
    return _NOTES_ZH if language() == "zh" else _NOTES


def _level(level: str) -> str:
    return level if language() == "en" else _(level)


def _h(text: str) -> str:
    """A short report word (table header, legend) in the reader's language: `report:` keeps it apart from the same
    English word elsewhere in the catalog (an `opened` count here, an `opened` time in `incident list`)."""
    return word("report:" + text)


# --- HTML with inline SVG ------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
th{background:#f4f4f4}.kpis{display:flex;flex-wrap:wrap;gap:.8em}.kpi{border:1px solid #ddd;border-radius:6px;
padding:.6em 1em;min-width:10em}.kpi b{display:block;font-size:1.5em}.bad{color:#b00020}.muted{color:#777}
svg text{font-size:12px;font-family:inherit}.notes{white-space:pre-wrap;font-size:.85em;color:#555}
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _svg_hbars(title: str, items: list[tuple[str, float | None]], *, maximum: float = 100.0, unit: str = "%",
               good_at: float | None = 95.0) -> str:
    """Horizontal bars, one per item; None draws an empty bar labelled —."""
    row, label_w, bar_w = 22, 220, 420
    h = row * len(items) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{h}" role="img" '
             f'aria-label="{_e(title)}"><text x="0" y="14" font-weight="bold">{_e(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 24 + i * row
        parts.append(f'<text x="0" y="{y + 13}">{_e(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="16" fill="#eee"/>')
        if value is not None:
            w = max(0.0, min(1.0, value / maximum if maximum else 0.0)) * bar_w
            colour = "#2e7d32" if good_at is None or value >= good_at else ("#f9a825" if value >= good_at - 15
                                                                             else "#c62828")
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="16" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 13}">'
                     f'{"—" if value is None else _e(f"{value:g}{unit}")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_stacked(title: str, items: list[tuple[str, list[tuple[str, int, str]]]]) -> str:
    """Stacked horizontal bars of counts: items = [(label, [(segment name, count, colour)])]."""
    row, label_w, bar_w = 22, 220, 420
    total_max = max([sum(c for _, c, _ in segs) for _, segs in items] + [1])
    legend = {}
    h = row * len(items) + 52
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{h}" role="img" '
             f'aria-label="{_e(title)}"><text x="0" y="14" font-weight="bold">{_e(title)}</text>']
    for i, (label, segs) in enumerate(items):
        y = 24 + i * row
        parts.append(f'<text x="0" y="{y + 13}">{_e(label)}</text>')
        x = float(label_w)
        for name, count, colour in segs:
            legend[name] = colour
            w = bar_w * count / total_max
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="16" fill="{colour}">'
                             f'<title>{_e(name)}: {count}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 13}">{sum(c for _, c, _ in segs)}</text>')
    ly = 24 + len(items) * row + 10
    lx = label_w
    for name, colour in legend.items():
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="{ly + 11}">{_e(name)}</text>')
        lx += 16 + 8 * len(name) + 20
    parts.append("</svg>")
    return "".join(parts)


def render_html(rep: dict[str, Any]) -> str:
    tz = rep["period"]["timezone"]
    o = rep["overall"]
    period = f"{_local(rep['period']['from'], tz)} – {_local(rep['period']['to'], tz)} ({tz})"
    from canteen_ops.cli.render import plural

    body = [f"<h1>{_e(_(rep['title']))}</h1>",
            f"<p>{_e(_('Period'))} {_e(period)} · {_e(_('generated'))} {_e(_local(rep['generated_at'], tz))} · "
            f"{_e(plural(len(rep['schools']), 'school'))}, {_e(plural(o['devices'], 'device'))}</p>",
            '<div class="kpis">']
    for label, fn in KPI_ROWS:
        body.append(f'<div class="kpi">{_e(_(label))}<b>{_e(fn(o))}</b></div>')
    body.append("</div>")
    schools = rep["schools"]
    body.append(_svg_hbars(_("Availability by school (在线率)"),
                           [(s["name"], s["availability"]["pct"]) for s in schools]))
    body.append(_svg_hbars(_("Picture clarity by school (清晰度达标率)"), [(s["name"], s["picture"]["pct"]) for s in schools]))
    body.append(_svg_hbars(_("Coverage of required areas (重点点位覆盖率)"),
                           [(s["name"], s["coverage"]["pct"]) for s in schools], good_at=100.0))
    fc = o["failing_checks"]
    if fc:
        body.append(_svg_stacked(_("Failing checks by kind (all schools)"),
                                 [(check_word(k), [(status_word("crit"), v["crit"], "#c62828"), (status_word("warn"), v["warn"], "#f9a825")])
                                  for k, v in fc.items()]))
    body.append(_svg_stacked(_("Incidents: on-site SLA"), [
        (f"{lvl} {'重大' if lvl == 'major' else '一般'}" if language() == "en" else _(lvl),
         [(_h("met"), v["arrive_met"], "#2e7d32"), (_h("breached"), v["arrive_breached"], "#c62828"),
          (_h("pending"), v["arrive_pending"], "#9e9e9e")]) for lvl, v in o["incidents"].items()]))
    body.append(f"<h2>{_e(_('Key figures per school'))}</h2><table><tr><th></th>" + "".join(
        f"<th>{_e(s['name'])}</th>" for s in schools) + f"<th>{_e(_('Overall'))}</th></tr>")
    body.append(f"<tr><td>{_e(_('Devices'))}</td>" + "".join(f"<td>{s['devices']}</td>" for s in schools)
                + f"<td>{o['devices']}</td></tr>")
    for label, fn in KPI_ROWS:
        body.append(f"<tr><td>{_e(_(label))}</td>" + "".join(f"<td>{_e(fn(s))}</td>" for s in schools)
                    + f"<td>{_e(fn(o))}</td></tr>")
    body.append("</table>")
    for name, m in [(_("Overall"), o)] + [(f"{s['name']} ({s['id']})", s) for s in schools]:
        body.append(f"<h2>{_e(name)}</h2>")
        body.append(_html_sections(m))
    body.append(f'<h2>{_e(_("Notes"))}</h2><div class="notes">{_e(_notes())}</div>')
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(_(rep['title']))} {_e(period)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _html_sections(m: dict[str, Any]) -> str:
    a = m["availability"]
    parts = ["<p>" + _("<b>Availability</b> {pct} over {samples} samples ({up} up, {down} down, {unknown} could not "
                       "tell); {checked} of {devices} devices checked, {online} online at the end.").format(
        pct=_e(_p(a['pct'])), samples=a['samples'], up=a['up'], down=a['down'], unknown=a['unknown'],
        checked=a['devices_checked'], devices=a['devices'], online=a['online_at_end'])
             + (' <span class="muted">' + _e(_("Not checked: {devices}").format(devices=", ".join(a["unchecked"])))
                + "</span>" if a["unchecked"] else "")
             + "</p>"]
    if m["failing_checks"]:
        parts.append("<table><tr>" + "".join(f"<th>{_e(_h(h))}</th>" for h in (
            "check", "results", "warn", "crit", "devices", "failing")) + "</tr>" + "".join(
                         f"<tr><td>{_e(check_word(k))}</td><td>{v['results']}</td><td>{v['warn']}</td>"
                         f"<td{' class=bad' if v['crit'] else ''}>{v['crit']}</td><td>{v['devices']}</td>"
                         f"<td>{_e(_p(v['fail_pct']))}</td></tr>" for k, v in m["failing_checks"].items())
                     + "</table>")
    parts.append("<table><tr>" + "".join(f"<th>{_e(_h(h))}</th>" for h in (
        "incidents", "opened", "resolved", "open", "escalated", "SLA met/breached/pending", "on-site SLA",
        "arrive median (min)", "resolve median (h)", "restore ≤ limit")) + "</tr>" + "".join(
                     f"<tr><td>{_e(_level(lvl))}</td><td>{v['opened']}</td><td>{v['resolved']}</td><td>{v['open']}</td>"
                     f"<td{' class=bad' if v['escalated'] else ''}>{v['escalated']}</td>"
                     f"<td>{v['arrive_met']}/{v['arrive_breached']}/{v['arrive_pending']}</td>"
                     f"<td>{_e(_p(v['sla_pct']))}</td><td>{_e(_n(v['arrive_min']['median']))}</td>"
                     f"<td>{_e(_n(v['resolve_h']['median']))}</td><td>{_e(_p(v['restore_pct']))}</td></tr>"
                     for lvl, v in m["incidents"].items()) + "</table>")
    b, f, r, p, c = m["backups"], m["firmware"], m["retention"], m["picture"], m["coverage"]

    def bad(template: str, values: list[str]) -> str:
        return '; <span class="bad">' + _e(_(template).format(devices=", ".join(values))) + "</span>"

    items = [
        _("<b>Backups</b>: {covered} of {devices} devices backed up ({pct}); {attempts} attempts, {failed} failed")
        .format(covered=b['covered'], devices=b['devices'], pct=_e(_p(b['coverage_pct'])), attempts=b['attempts'],
                failed=b['failed'])
        + (bad("stale: {devices}", b["stale"]) if b["stale"] else "")
        + (bad("never: {devices}", b["never"]) if b["never"] else "")
        + ("; " + _e(_("no export: {devices}").format(devices=", ".join(b['no_export']))) if b["no_export"] else ""),
        _("<b>Firmware</b>: {current} current, {outdated} outdated, {vulnerable} vulnerable, {unknown} unknown, "
          "{unchecked} not checked — compliance {pct}").format(
            current=f['current'], outdated=f['outdated'], vulnerable=f['vulnerable'], unknown=f['unknown'],
            unchecked=f['unchecked'], pct=_e(_p(f['compliance_pct'])))
        + (bad("vulnerable: {devices}", f["vulnerable_devices"]) if f["vulnerable_devices"] else ""),
        _("<b>Retention (存储达标率)</b>: {compliant} of {devices} compliant ({pct})").format(
            compliant=r['compliant'], devices=r['devices'], pct=_e(_p(r['pct'])))
        + (bad("failing: {devices}", r["failing"]) if r["failing"] else ""),
        _("<b>Picture clarity (清晰度达标率)</b>: {passed} of {samples} passed ({pct})").format(
            passed=p['passed'], samples=p['samples'], pct=_e(_p(p['pct']))),
        _("<b>Coverage (重点点位覆盖率)</b>: {covered} of {required} areas ({pct})").format(
            covered=c['covered'], required=c['required'], pct=_e(_p(c['pct'])))
        + ("; " + _e(_("uncovered: {areas}").format(areas="; ".join(
            f"{s}: {', '.join(a)}" for s, a in c["uncovered"].items()))) if c["uncovered"] else ""),
    ]
    parts.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
    return "\n".join(parts)
