"""The text of alerts, in Chinese (the language of the district's DingTalk/WeCom/Feishu groups).

Every incident message names the school, device, area, level, on-site deadline and the person on duty; the
`kb` field is where the knowledge-base entry for the fault goes (`kb_for`), shown as a 知识库 line when set.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Mapping

from canteen_ops.summaries import translate

EVENT_LABELS = {"opened": "故障告警", "reopened": "故障复发", "escalated": "故障升级", "resolved": "故障恢复",
                "drill": "演练结果", "job-failed": "任务失败"}
LEVEL_LABELS = {"major": "重大", "general": "一般"}
STEP_LABELS = {1: "到场时限已过半仍未到场", 2: "到场时限已过仍未到场"}


@dataclass
class Message:
    event: str
    title: str
    body: str
    level: str | None = None  # major / general: quiet hours hold general ones
    incident_id: str | None = None
    to_person: str | None = None  # a roster person's name: their personal notify target gets it too
    kb: str | None = None  # a knowledge-base id (KB-…) for the fault, when the knowledge base knows one
    data: dict[str, Any] = field(default_factory=dict)


def kb_for(incident: Mapping[str, Any]) -> str | None:
    """The knowledge-base entry for an incident's fault (set when a check result opened it): the one place the kb
    id enters alerts."""
    return (incident.get("data") or {}).get("kb")


def _local(s: str | None, tz: str) -> str:
    if not s:
        return "—"
    from zoneinfo import ZoneInfo

    from canteen_ops.timeutil import parse_iso

    return parse_iso(s).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _as_dict(person) -> Mapping[str, Any] | None:
    """A roster Person, or the dict stored in an incident's `data.assignee`, as that dict (None stays None)."""
    return person.to_dict() if hasattr(person, "to_dict") else person


def _person(d: Mapping[str, Any] | None) -> str:
    if d is None:
        return "（无人值班，请按值班表联系）"
    from canteen_ops.roster import ROLE_LABELS

    return f"{d.get('name')}（{ROLE_LABELS.get(d.get('role'), d.get('role'))}）" + (
        f" {d['phone']}" if d.get("phone") else "")


def incident_message(event: str, inc: Mapping[str, Any], inventory, *, assignee=None, step: int | None = None,
                     escalated_to=None, now: dt.datetime | None = None) -> Message:
    tz = inventory.settings.timezone if inventory is not None else "Asia/Shanghai"
    school_id = inc.get("school_id")
    school_name = school_id or "—"
    devices = list(inc.get("device_ids") or [])
    device_text, area = "—", "—"
    if inventory is not None:
        try:
            school_name = f"{inventory.school(school_id).name}（{school_id}）" if school_id else "—"
        except KeyError:
            pass
        shown = []
        for did in devices:
            try:
                d = inventory.device(did)
                shown.append(f"{d.id}（{d.name}）" if d.name else d.id)
                area = d.area or area
            except KeyError:
                shown.append(did)
        device_text = "、".join(shown) or "—"
    elif devices:
        device_text = "、".join(devices)
    level = inc.get("level")
    data = inc.get("data") or {}
    duty = _as_dict(assignee if assignee is not None else data.get("assignee"))
    kb = kb_for(inc)
    label = EVENT_LABELS[event]
    lines = [f"学校：{school_name}", f"设备：{device_text}", f"区域：{area}",
             f"级别：{LEVEL_LABELS.get(level, level or '—')}", f"故障：{translate(inc.get('description') or inc.get('title'), 'zh')}",
             f"到场时限：{_local(inc.get('arrive_deadline'), tz)}",
             f"值班人员：{_person(duty)}"]
    if event == "escalated":
        lines.insert(0, f"升级原因：{STEP_LABELS.get(step or 0, '到场时限未到场')}")
        lines.append(f"升级至：{_person(_as_dict(escalated_to))}")
    if event == "resolved":
        lines.append(f"恢复时间：{_local(inc.get('resolved_at'), tz)}"
                     + ("（自动恢复）" if data.get("auto_resolved") else ""))
    if event == "reopened":
        lines.append(f"复发次数：{data.get('reopen_count', 1)}（防抖期内不再重复告警）")
    if kb:
        lines.append(f"知识库：{kb}")
    lines.append(f"事件编号：{str(inc.get('id', ''))[:8]}")
    title = f"【{label}·{LEVEL_LABELS.get(level, '')}】{school_name} {device_text}"
    return Message(event=event, title=title, body="\n".join(lines), level=level, incident_id=inc.get("id"),
                   to_person=getattr(escalated_to, "name", None) or (duty or {}).get("name"), kb=kb,
                   data={"step": step} if step else {})


def playbook_message(event: str, name: str, status: str, summary: str, run_id: str, *,
                     details: list[str] = ()) -> Message:
    verdict = {"ok": "通过", "warn": "警告", "crit": "失败", "unknown": "未知"}.get(status, status)
    what = "演练" if event == "drill" else "任务"
    lines = [f"{what}：{name}", f"结果：{verdict}（{status}）", f"摘要：{summary}", *details,
             f"运行编号：{run_id[:8]}"]
    return Message(event=event, title=f"【{EVENT_LABELS[event]}】{name}：{verdict}", body="\n".join(lines),
                   level="general" if event == "drill" or status != "crit" else "major", data={"run_id": run_id})
