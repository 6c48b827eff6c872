"""Dahua CGI front-end of a simulated camera or NVR (protocols.md §B).

Bodies are `key=value` lines with CRLF, `text/plain;charset=utf-8`; getConfig keys carry the `table.` prefix,
setConfig takes them without it; write actions answer `OK`; errors are `Error\\r\\nBad Request!` (400) and
unknown CGIs 404. Times are device-local without a zone. Lab conventions where the reference is silent
(documented in docs/lab.md): mediaFileFind `condition.Channel` is 1-based while result `items[].Channel` is
0-based (as in the sample); VideoLoss indexes are 0-based; an unformatted disk reports `State=Unformatted`;
a locked device answers an unauthenticated request with a plain 401 challenge and a request with credentials 403 with
`{"ErrorCode":268632081,"Result":false,"RmLock":<seconds>,"RmLogin":0}`, refused credentials 401
`Error\r\nInvalid Authority!` (both as a real DH-NVR608H answered: tests/fixtures/devices/dahua/DH-NVR608H-128-4KS3-I).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import time
from typing import Any

from canteen_ops.lab import digest
from canteen_ops.lab.firmware import parse_firmware_image
from canteen_ops.lab.state import RECORD_MODES, DeviceState
from canteen_ops.lab.wire import Request, Response

TEXT = {"Content-Type": "text/plain;charset=utf-8"}
TIME_FMT = "%Y-%m-%d %H:%M:%S"
FIND_PAGE_MAX = 100
MAX_FINDERS = 16  # a device has few finder slots; leaked finders eventually make new searches fail
_finder_ids = itertools.count(3208584)

# RecordMode.Mode: 0 = auto (follow the schedule), 1 = manual (always record), 2 = stop
MODE_OF = {"continuous": 1, "motion": 0, "off": 2}
RECORD_OF = {v: k for k, v in MODE_OF.items()}


def text(lines: list[str] | str, status: int = 200) -> Response:
    body = lines if isinstance(lines, str) else "".join(f"{line}\r\n" for line in lines)
    return Response(status, dict(TEXT), body.encode("utf-8"))


def bad_request() -> Response:
    return text("Error\r\nBad Request!\r\n", 400)


def ok() -> Response:
    return text("OK\r\n")


def unauthorized(state: DeviceState, outcome: str, with_credentials: bool = True) -> Response:
    if outcome == digest.REUSED and state.faults.get("nonce-once") == "403":
        return text("Error\r\nForbidden!\r\n", 403)  # as one NVR answered a reused nonce (rroller/dahua#647)
    if outcome == digest.LOCKED and with_credentials:
        # Credentials while locked: HTTP 403 with the login-error JSON of the newer web stack (issue 15): the
        # HasBeenLocked code, RmLock = seconds left, RmLogin = logins left.
        body = json.dumps({"ErrorCode": 268632081, "Result": False, "RmLock": state.unlock_in_s(), "RmLogin": 0},
                          separators=(",", ":"))
        return Response(403, {"Content-Type": "application/json"}, body.encode())
    # Refused credentials: 401 "Invalid Authority!", as a DH-NVR608H answered a wrong password (corpus
    # dahua/DH-NVR608H-128-4KS3-I). Locked or not, a request without credentials gets a plain challenge.
    body = "Error\r\nInvalid Authority!\r\n" if outcome == digest.FAILED and with_credentials else ""
    resp = text(body, 401)
    resp.headers.update(digest.challenge(state, stale=outcome == digest.STALE))
    return resp


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def flatten(prefix: str, value: Any, out: list[str]) -> list[str]:
    """{'NTP': {'Enable': True}} → ['table.NTP.Enable=true'] (lists become [i] indexes)."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            flatten(f"{prefix}[{i}]", v, out)
    else:
        out.append(f"{prefix}={_fmt(value)}")
    return out


# --- configuration tables -------------------------------------------------------------------------------------
def _resolution(w: int, h: int) -> str:
    return {(1920, 1080): "1080P", (1280, 720): "720P", (2560, 1440): "2560x1440", (3840, 2160): "3840x2160",
            (704, 576): "D1", (640, 360): "640x360"}.get((w, h), f"{w}x{h}")


def tables(state: DeviceState) -> dict[str, Any]:
    """The device's configuration as Dahua tables; getConfig flattens them, Config.backup dumps them."""
    encode = []
    for c in state.channels:
        w, h = state.stream_size(c)
        encode.append({
            "MainFormat": [{"AudioEnable": False, "Video": {
                "BitRate": c.bitrate_kbps, "BitRateControl": "VBR", "Compression": c.codec, "FPS": c.fps,
                "GOP": c.fps * 2, "Height": h, "Quality": 4, "Width": w, "resolution": _resolution(w, h)}}],
            "ExtraFormat": [{"AudioEnable": False, "Video": {
                "BitRate": 512, "BitRateControl": "VBR", "Compression": "H.264", "FPS": c.fps, "GOP": c.fps * 2,
                "Height": 360, "Quality": 4, "Width": 640, "resolution": "640x360"}}],
        })
    mask = {"continuous": 1, "motion": 2, "off": 0}[state.record_mode]
    return {
        "General": {"LocalNo": 8, "LockLoginEnable": True, "LockLoginTimes": int(state.fault_value("lock-after", 5)),
                    "LoginFailLockTime": 1800, "MachineName": state.name, "MaxOnlineTime": 1800},
        "Locales": {"DSTEnable": False, "TimeFormat": "yyyy-MM-dd HH:mm:ss", "VideoStandard": "PAL"},
        "NTP": {"Address": state.ntp_server or "", "Enable": state.ntp_enabled, "Port": 123, "TimeZone": 13,
                "TimeZoneDesc": "Beijing", "UpdatePeriod": 10},
        "Encode": encode,
        "RecordMode": [{"Mode": MODE_OF[state.record_mode], "ModeExtra1": 2, "ModeExtra2": 2}
                       for _ in state.channels],
        "Record": [{"PreRecord": 4, "TimeSection": [[f"{mask} 00:00:00-24:00:00"] + ["0 00:00:00-24:00:00"] * 5
                                                    for _wd in range(7)]} for _ in state.channels],
        "ChannelTitle": [{"Name": c.name} for c in state.channels],
        "Network": {"DefaultInterface": "eth0", "Domain": "dauha", "Hostname": state.model,
                    "eth0": {"DefaultGateway": _gateway(state.host), "DhcpEnable": False, "IPAddress": state.host,
                             "MTU": 1500, "PhysicalAddress": state.mac, "SubnetMask": "255.255.255.0"}},
        "RTSP": {"Enable": True, "Port": state.rtsp_port, "RTP": {"EndPort": 40000, "StartPort": 20000}},
    }


def _gateway(host: str) -> str:
    return host.rsplit(".", 1)[0] + ".254"


def get_config(state: DeviceState, req: Request) -> Response:
    name = req.query.get("name", "")
    t = tables(state)
    if name == "All":
        lines: list[str] = []
        for key, value in t.items():
            flatten(f"table.{key}", value, lines)
        return text(lines)
    if name not in t:
        return bad_request()
    return text(flatten(f"table.{name}", t[name], []))


def _index(part: str) -> tuple[str, int | None]:
    """'Encode[0]' → ('Encode', 0); 'NTP' → ('NTP', None)."""
    if part.endswith("]") and "[" in part:
        name, _, idx = part[:-1].partition("[")
        return name, int(idx)
    return part, None


def _channel(state: DeviceState, idx: int | None):
    if idx is None or not 0 <= idx < len(state.channels):
        raise ValueError("no such channel")
    return state.channels[idx]


def _truth(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError("boolean expected")
    return value.lower() == "true"


def _setter(state: DeviceState, key: str, value: str):
    """Validate one setConfig key and return a function that applies it (so a bad key changes nothing)."""
    parts = key.split(".")
    table, idx = _index(parts[0])
    rest = ".".join(parts[1:])
    if table == "General" and rest == "MachineName":
        return lambda: setattr(state, "name", value)
    if table == "NTP" and rest == "Address":
        return lambda: setattr(state, "ntp_server", value or None)
    if table == "NTP" and rest == "Enable":
        on = _truth(value)

        def apply_enable() -> None:
            if on:
                state.clear_fault("ntp-off")
                state.ntp_server = state.ntp_server or "127.0.0.1"
            else:
                state.ntp_server = None
        return apply_enable
    if table in ("NTP", "Locales", "General") and rest:
        return lambda: None  # accepted, not modelled (TimeZone index, DST, lock policy...)
    if table == "RecordMode" and rest == "Mode":
        _channel(state, idx)
        mode = RECORD_OF.get(int(value))
        if mode not in RECORD_MODES:
            raise ValueError("bad mode")
        return lambda: setattr(state, "record_mode", mode)
    if table == "ChannelTitle" and rest == "Name":
        ch = _channel(state, idx)
        return lambda: setattr(ch, "name", value)
    if table == "Encode" and parts[1] == "MainFormat[0]" and parts[2:3] == ["Video"] and len(parts) == 4:
        ch = _channel(state, idx)
        field = {"Width": "width", "Height": "height", "FPS": "fps", "BitRate": "bitrate_kbps",
                 "Compression": "codec"}.get(parts[3])
        if field is None:
            return lambda: None
        v: Any = value if field == "codec" else int(value)
        return lambda: setattr(ch, field, v)
    raise ValueError(f"unknown config key {key}")


def set_config(state: DeviceState, req: Request) -> Response:
    try:
        appliers = [_setter(state, k, v) for k, v in req.query.items() if k != "action"]
    except (ValueError, IndexError):
        return bad_request()
    if not appliers:
        return bad_request()
    for apply in appliers:
        apply()
    return ok()


def config_backup(state: DeviceState, req: Request) -> Response:
    """Config.backup?action=All: the whole configuration as plain, pretty-printed JSON (deterministic)."""
    if req.query.get("action") != "All":
        return bad_request()
    if state.has("export-refused"):  # a user without the backup right (the 403 body one NVR gave, rroller/dahua#647)
        return text("Error\r\nForbidden!\r\n", 403)
    body = json.dumps(tables(state), ensure_ascii=False, indent=4) + "\n"
    return Response(200, {"Content-Type": "application/json;charset=utf-8",
                          "Content-Disposition": f'attachment; filename="Config_{state.serial}.backup"'},
                    body.encode("utf-8"))


# --- identity, time ----------------------------------------------------------------------------------------------
def magic_box(state: DeviceState, req: Request) -> Response:
    action = req.query.get("action")
    if action == "getSystemInfo":
        # Recorders answer a class number, not their model (rroller/dahua#9: deviceType=31, the model in
        # updateSerial; recorded in tests/fixtures/devices/dahua/NVR2X-4KS3); cameras name the model.
        device_type = "31" if state.kind == "nvr" else state.model
        return text(["appAutoStart=true", f"deviceType={device_type}", "hardwareVersion=1.00", "processor=S3LM",
                     f"serialNumber={state.serial}", f"updateSerial={state.model}",
                     f"updateSerialCloudUpgrade={state.model}:01:02:03:04:05:06"])
    values = {
        "getSoftwareVersion": f"version={state.effective_firmware}",
        "getSerialNo": f"sn={state.serial}",
        "getDeviceType": f"type={state.model}",
        "getMachineName": f"name={state.name}",
        "getVendor": "vendor=Dahua",
        "getHardwareVersion": "version=1.00",
        "getDeviceClass": f"class={'NVR' if state.kind == 'nvr' else 'IPC'}",
    }
    if action in values:
        return text([values[action]])
    if action == "reboot":
        state.created = time.time()
        return ok()
    return bad_request()


def global_cgi(state: DeviceState, req: Request) -> Response:
    action = req.query.get("action")
    if action == "getCurrentTime":
        return text([f"result={state.now_local():{TIME_FMT}}"])
    if action == "setCurrentTime":
        try:
            local = dt.datetime.strptime(req.query.get("time", ""), TIME_FMT)
        except ValueError:
            return bad_request()
        state.set_clock(local.replace(tzinfo=dt.timezone(dt.timedelta(seconds=state.utc_offset_s)))
                        .astimezone(dt.timezone.utc))
        return ok()
    return bad_request()


def config_manager(state: DeviceState, req: Request) -> Response:
    action = req.query.get("action")
    if action == "getConfig":
        return get_config(state, req)
    if action == "setConfig":
        return set_config(state, req)
    return bad_request()


# --- storage, recordings, events ---------------------------------------------------------------------------------
def storage_device(state: DeviceState, req: Request) -> Response:
    if req.query.get("action") != "getDeviceAllInfo":
        return bad_request()
    lines = []
    for i, d in enumerate(state.effective_disks()):
        total = d.capacity_mb * 1024 * 1024
        used = total - d.free_mb * 1024 * 1024
        letter = chr(ord("a") + i)
        parts = [(total / 2, used / 2), (total / 2, used / 2)]
        if d.status == "unformatted":
            parts = [(0.0, 0.0)]
        for p, (tb, ub) in enumerate(parts):
            pre = f"list.info[{i}].Detail[{p}]"
            lines += [f"{pre}.IsError={'true' if d.status == 'error' and p == 0 else 'false'}",
                      f"{pre}.Path=/dev/sd{letter}{p}", f"{pre}.TotalBytes={tb:.6f}",
                      f"{pre}.Type=ReadWrite", f"{pre}.UsedBytes={ub:.6f}"]
        state_word = {"ok": "Success", "error": "Failure", "unformatted": "Unformatted"}.get(d.status, "Failure")
        lines += [f"list.info[{i}].HealthDataFlag=0", f"list.info[{i}].Name=/dev/sd{letter}",
                  f"list.info[{i}].State={state_word}"]
    return text(lines)


def _finders(state: DeviceState) -> dict[str, dict]:
    return state._sessions.setdefault("dahua_finders", {})


def media_file_find(state: DeviceState, req: Request) -> Response:
    action, q = req.query.get("action"), req.query
    finders = _finders(state)
    if action == "factory.create":
        if len(finders) >= MAX_FINDERS:
            return bad_request()
        oid = str(next(_finder_ids))
        finders[oid] = {"items": [], "pos": 0}
        return text([f"result={oid}"])
    finder = finders.get(q.get("object", ""))
    if finder is None:
        return bad_request()
    if action == "findFile":
        try:
            channel = int(q["condition.Channel"])
            start = dt.datetime.strptime(q["condition.StartTime"], TIME_FMT)
            end = dt.datetime.strptime(q["condition.EndTime"], TIME_FMT)
        except (KeyError, ValueError):
            return bad_request()
        finder["items"] = [(channel, s, t) for s, t in state.local_segments(channel, start, end)]
        finder["pos"] = 0
        return ok()
    if action == "findNextFile":
        try:
            count = max(1, min(FIND_PAGE_MAX, int(q.get("count", FIND_PAGE_MAX))))
        except ValueError:
            return bad_request()
        page = finder["items"][finder["pos"]:finder["pos"] + count]
        finder["pos"] += len(page)
        kbps = {c.id: c.bitrate_kbps for c in state.channels}
        lines = [f"found={len(page)}"]
        for i, (ch, s, t) in enumerate(page):
            dur = int((t - s).total_seconds())
            pre = f"items[{i}]"
            (s_text, s_day, s_hour, s_dotted), (t_text, _, _, t_dotted) = _item_times(s), _item_times(t)
            lines += [f"{pre}.Channel={ch - 1}", f"{pre}.StartTime={s_text}", f"{pre}.EndTime={t_text}",
                      f"{pre}.Duration={dur}",
                      f"{pre}.FilePath=/mnt/dvr/{s_day}/{ch - 1:03d}/dav/{s_hour}/{s_dotted}-{t_dotted}"
                      f"[R][0@0][0].dav",
                      f"{pre}.Flags[0]=Timing", f"{pre}.Length={dur * kbps.get(ch, 4096) * 125}", f"{pre}.Type=dav"]
        return text(lines)
    if action in ("close", "factory.close"):
        finder["items"], finder["pos"] = [], 0
        return ok()
    if action in ("destroy", "factory.destroy"):
        finders.pop(q["object"], None)
        return ok()
    return bad_request()


@functools.lru_cache(maxsize=16384)
def _item_times(t: dt.datetime) -> tuple[str, str, str, str]:
    """A found file's time as its fields and file path spell it; files start and end on the hour, so the same
    instants recur across devices and searches and are formatted once each."""
    return t.strftime(TIME_FMT), t.strftime("%Y-%m-%d"), t.strftime("%H"), t.strftime("%H.%M.%S")


def event_manager(state: DeviceState, req: Request) -> Response:
    if req.query.get("action") != "getEventIndexes" or not req.query.get("code"):
        return bad_request()
    lost = []
    if req.query["code"] == "VideoLoss":
        lost = [c.id - 1 for c in state.channels if not state.channel_online(c)]
    if not lost:
        return text("Error: No Events\r\n")
    return text([f"channels[{i}]={idx}" for i, idx in enumerate(lost)])


def user_manager(state: DeviceState, req: Request) -> Response:
    if req.query.get("action") != "getUserInfoAll":
        return bad_request()
    lines = []
    for i, (name, level) in enumerate(state.users):
        group = "admin" if level == "Administrator" else "user"
        lines += [f"users[{i}].Group={group}", f"users[{i}].Id={i + 1}", f"users[{i}].Memo={level}",
                  f"users[{i}].Name={name}", f"users[{i}].Reserved={'true' if i == 0 else 'false'}",
                  f"users[{i}].Sharable=true"]
    return text(lines)


def upgrader(state: DeviceState, req: Request) -> Response:
    action = req.query.get("action")
    if action == "getState":
        phase, pct = state.upgrade_progress()
        word = {"idle": "Idle", "upgrading": "Upgrading", "done": "Succeeded"}[phase]
        return text([f"State={word}", f"Progress={pct}"])
    if action == "uploadFirmware" and req.method == "POST":
        if state.upgrade_progress()[0] == "upgrading":
            return bad_request()
        meta = parse_firmware_image(req.body)
        if meta is None or meta["vendor"] != "dahua" or meta["model"] != state.model:
            return bad_request()
        state.start_upgrade(str(meta["version"]))
        return ok()
    if action == "cancel":
        return ok()
    return bad_request()


CGIS = {
    "/cgi-bin/magicbox.cgi": magic_box,
    "/cgi-bin/global.cgi": global_cgi,
    "/cgi-bin/configmanager.cgi": config_manager,
    "/cgi-bin/config.backup": config_backup,
    "/cgi-bin/storagedevice.cgi": storage_device,
    "/cgi-bin/mediafilefind.cgi": media_file_find,
    "/cgi-bin/eventmanager.cgi": event_manager,
    "/cgi-bin/upgrader.cgi": upgrader,
    "/cgi-bin/usermanager.cgi": user_manager,
}


def handle(state: DeviceState, req: Request) -> Response:
    authorization = req.headers.get("authorization")
    outcome = digest.check(state, req.method, req.path, authorization)
    if outcome != digest.OK:
        return unauthorized(state, outcome, with_credentials=bool(authorization))
    fn = CGIS.get(req.path.lower())
    if fn is None:
        return text("Error\r\nBad Request!\r\n", 404)
    return fn(state, req)
