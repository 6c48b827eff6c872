"""Build a lab fleet: N schools × (1 NVR + M cameras), each device on its own loopback address.

Vendors rotate per school (a Hikvision school, then a Dahua school, then an ONVIF one…); when `onvif` is in
the vendor list, Hikvision and Dahua schools also get one ONVIF camera, as real estates do. Cameras cover the
canteen areas in order (加工区, 烹饪区, 专间, 洗消间, 备餐区, 留样区, 仓库), so seven or more cameras per school
give complete coverage. Each vendor has one credential set with a random per-lab password; the inventory
references it through `password_file` (files chmod 600), never in plaintext.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canteen_ops.lab.state import ChannelState, DeviceState, Disk, parse_fault

AREAS = ("加工区", "烹饪区", "专间", "洗消间", "备餐区", "留样区", "仓库")
CAMERA_NAMES = {
    "加工区": ("粗加工间", "切配间"), "烹饪区": ("烹饪间", "炒菜区"), "专间": ("凉菜专间", "面点专间"),
    "洗消间": ("餐具洗消间", "洗消间"), "备餐区": ("备餐间", "售饭窗口"), "留样区": ("留样柜", "留样间"),
    "仓库": ("主副食仓库", "调料库"),
}
SCHOOLS = (
    ("第一实验小学", "diyi-shiyan-xx"), ("育才中学", "yucai-zx"), ("实验中学", "shiyan-zx"),
    ("阳光小学", "yangguang-xx"), ("第二中学", "dier-zx"), ("红星小学", "hongxing-xx"),
    ("朝阳中学", "chaoyang-zx"), ("光明小学", "guangming-xx"), ("新华中学", "xinhua-zx"),
    ("向阳小学", "xiangyang-xx"), ("外国语学校", "waiguoyu"), ("师范附属小学", "shifan-fx"),
    ("第三中学", "disan-zx"), ("城南小学", "chengnan-xx"), ("育英学校", "yuying"), ("东风小学", "dongfeng-xx"),
)
DISTRICTS = ("城关区", "西城区", "东城区", "高新区", "经开区", "南湖区", "北塘区", "滨江区")
ROADS = ("育才路", "学院路", "人民路", "解放路", "建设路", "文化路", "中山路", "新华路")
SURNAMES = "王李张刘陈杨赵黄周吴"
GIVEN = ("建国", "梅", "伟", "芳", "军", "丽", "强", "敏", "磊", "静")

# vendor → (camera model, NVR model, camera firmware, NVR firmware, username, RTSP path for (kind, channel))
MODELS = {
    "hikvision": ("DS-2CD2386G2-IU", "DS-7608NXI-I2", "V5.7.18 build 240826", "V4.62.210 build 230619", "admin"),
    "dahua": ("DH-IPC-HFW2431S-S-S2", "DHI-NVR4208-8P-4KS2", "2.840.0000000.7.R,build:2023-05-11",
              "4.001.0000000.3.R,build:2023-03-14", "admin"),
    "onvif": ("IPC-G2-ONVIF", "NVR-G2-ONVIF", "2.4.1", "2.4.1", "operator"),
}
HTTP_PORT, RTSP_PORT = 8080, 8554
FIRST_ADDRESS = "127.0.1.1"


def rtsp_path(vendor: str, kind: str, channel: int) -> str:
    if vendor == "hikvision":
        return f"/Streaming/Channels/{channel}01"
    if vendor == "dahua":
        return f"/cam/realmonitor?channel={channel}&subtype=0"
    return f"/onvif/media/ch{channel}" if kind == "nvr" else "/onvif/media/main"


class FleetError(ValueError):
    pass


@dataclass
class SchoolPlan:
    id: str
    name: str
    district: str
    address: str
    contact: tuple[str, str]
    devices: list[DeviceState] = field(default_factory=list)
    areas: dict[str, str] = field(default_factory=dict)  # device id → canteen area
    nvr_channel: dict[str, tuple[str, int]] = field(default_factory=dict)  # camera id → (nvr id, channel)


@dataclass
class Fleet:
    schools: list[SchoolPlan]
    credentials: dict[str, tuple[str, str]]  # name → (username, password); vendor name → its credential set

    @property
    def devices(self) -> list[DeviceState]:
        return [d for s in self.schools for d in s.devices]

    def device(self, device_id: str) -> DeviceState:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def match(self, pattern: str) -> list[DeviceState]:
        """Devices whose id matches a glob (or equals it)."""
        return [d for d in self.devices if fnmatch.fnmatchcase(d.id, pattern)]


def _addresses(first: str):
    try:
        ip = ipaddress.IPv4Address(first)
    except ValueError:
        raise FleetError(f"first address {first!r} is not an IPv4 address") from None
    if not ip.is_loopback:
        raise FleetError(f"first address {first} is not a loopback address: the lab only listens on 127.0.0.0/8")
    while True:
        if not ip.is_loopback:
            raise FleetError("ran out of loopback addresses (127.0.0.0/8)")
        if ip.packed[3] not in (0, 255):
            yield str(ip)
        ip += 1


def _serial(vendor: str, model: str, rng: random.Random) -> str:
    if vendor == "hikvision":
        return f"{model}20230619CCRR{rng.randrange(10**8, 10**9)}"
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    if vendor == "dahua":
        return "".join(rng.choice(alphabet) for _ in range(15))
    return "GV" + "".join(rng.choice(alphabet) for _ in range(12))


def _mac(rng: random.Random, vendor: str) -> str:
    oui = {"hikvision": "a4:14:37", "dahua": "3c:ef:8c"}.get(vendor, "00:12:41")
    return oui + ":" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


def build_fleet(schools: int = 2, cameras_per_school: int = 7, vendors: tuple[str, ...] = ("hikvision", "dahua"),
                first_address: str = FIRST_ADDRESS, http_port: int = HTTP_PORT, rtsp_port: int = RTSP_PORT,
                seed: int | None = None, passwords: dict[str, str] | None = None) -> Fleet:
    """Plan a fleet. `passwords` (vendor → password) fixes the passwords; otherwise they are random."""
    if schools < 1 or cameras_per_school < 1:
        raise FleetError("need at least one school and one camera per school")
    if cameras_per_school > 64:
        raise FleetError("at most 64 cameras per school (NVR channels)")
    vendors = tuple(vendors)
    bad = [v for v in vendors if v not in MODELS]
    if not vendors or bad:
        raise FleetError(f"unknown vendor(s) {', '.join(bad) or '(none)'}; choose from {', '.join(MODELS)}")
    rng = random.Random(seed)
    creds = {}
    for v in dict.fromkeys(vendors):
        pw = (passwords or {}).get(v) or "Lab-" + secrets.token_urlsafe(12)
        creds[f"lab-{v}"] = (MODELS[v][4], pw)
    addr = _addresses(first_address)
    plans = []
    for si in range(schools):
        base, slug = SCHOOLS[si % len(SCHOOLS)]
        district = DISTRICTS[(si // len(SCHOOLS)) % len(DISTRICTS)]
        name = base if si < len(SCHOOLS) else f"{district}{base}"
        if si >= len(SCHOOLS) * len(DISTRICTS):
            name = f"{name}{si // (len(SCHOOLS) * len(DISTRICTS)) + 1}校区"
        sid = f"s{si + 1:03d}"
        contact = (SURNAMES[si % len(SURNAMES)] + GIVEN[(si * 3) % len(GIVEN)], f"138{si:04d}{rng.randrange(10**4):04d}")
        plan = SchoolPlan(f"{sid}-{slug}", name, district,
                          f"{district}{ROADS[si % len(ROADS)]} {rng.randrange(1, 200)} 号", contact)
        vendor = vendors[si % len(vendors)]
        cam_model, nvr_model, cam_fw, nvr_fw, user = MODELS[vendor]
        nvr_id = f"{sid}-nvr"
        nvr = DeviceState(
            id=nvr_id, kind="nvr", vendor=vendor, host=next(addr), http_port=http_port, rtsp_port=rtsp_port,
            username=user, password=creds[f"lab-{vendor}"][1], model=nvr_model,
            serial=_serial(vendor, nvr_model, rng), firmware=nvr_fw, mac=_mac(rng, vendor), name=f"{name}NVR",
            disks=[Disk(1)], supports_system_backup=vendor == "onvif")
        plan.devices.append(nvr)
        plan.areas[nvr_id] = "监控室"
        for ci in range(cameras_per_school):
            cvendor = vendor
            if "onvif" in vendors and vendor != "onvif" and ci == cameras_per_school - 1 and cameras_per_school > 1:
                cvendor = "onvif"  # mixed estates: one third-party ONVIF camera per school
            c_model, _, c_fw, _, c_user = MODELS[cvendor]
            area = AREAS[ci % len(AREAS)]
            cname = CAMERA_NAMES[area][(ci // len(AREAS)) % 2]
            if ci >= 2 * len(AREAS):
                cname += str(ci // len(AREAS) + 1)
            cam_id = f"{sid}-cam{ci + 1:02d}"
            host = next(addr)
            cam = DeviceState(
                id=cam_id, kind="camera", vendor=cvendor, host=host, http_port=http_port, rtsp_port=rtsp_port,
                username=c_user, password=creds[f"lab-{cvendor}"][1], model=c_model,
                serial=_serial(cvendor, c_model, rng), firmware=c_fw, mac=_mac(rng, cvendor), name=cname,
                channels=[ChannelState(1, cname, ip=host, rtsp_path=rtsp_path(cvendor, "camera", 1))])
            plan.devices.append(cam)
            plan.areas[cam_id] = area
            plan.nvr_channel[cam_id] = (nvr_id, ci + 1)
            nvr.channels.append(ChannelState(ci + 1, cname, ip=host, rtsp_path=rtsp_path(vendor, "nvr", ci + 1)))
        plans.append(plan)
    return Fleet(plans, creds)


# --- faults at start ------------------------------------------------------------------------------------------
def parse_fault_specs(spec: str) -> list[tuple[str, str, str | None]]:
    """'s001-cam01:offline,s002-*:clock-drift=+300' → [(glob, fault, value)]. Raises FleetError."""
    out = []
    for item in filter(None, (x.strip() for x in (spec or "").split(","))):
        device, sep, fault = item.partition(":")
        if not sep or not device or not fault:
            raise FleetError(f"bad fault spec {item!r}: expected DEVICE:FAULT[=VALUE]")
        try:
            name, value = parse_fault(fault)
        except ValueError as exc:
            raise FleetError(str(exc)) from None
        out.append((device, name, value))
    return out


def apply_fault_specs(fleet: Fleet, spec: str) -> list[tuple[str, str, str | None]]:
    """Set the faults of a spec string on the fleet; every device pattern must match something."""
    applied = []
    for pattern, name, value in parse_fault_specs(spec):
        devices = fleet.match(pattern)
        if not devices:
            raise FleetError(f"fault spec: no device matches {pattern!r}")
        for d in devices:
            d.set_fault(name, value)
            applied.append((d.id, name, value))
    return applied


# --- files: secrets and inventory -------------------------------------------------------------------------------
def write_secrets(fleet: Fleet, directory: Path) -> dict[str, Path]:
    """One password file per credential set, mode 600 inside a mode-700 directory."""
    sdir = directory / "secrets"
    sdir.mkdir(parents=True, exist_ok=True)
    os.chmod(sdir, 0o700)
    paths = {}
    for name, (_user, password) in fleet.credentials.items():
        p = sdir / f"{name}.password"
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        os.chmod(p, 0o600)
        paths[name] = p.resolve()
    return paths


def firmware_catalog_dict() -> dict[str, Any]:
    """A catalog for the lab's models: today's lab firmware is the latest, the `old-firmware` fault's version is
    below the minimum and the `vulnerable-firmware` fault's version falls under an advisory (example data)."""
    entries = []
    for vendor, (cam_model, nvr_model, cam_fw, nvr_fw, _user) in MODELS.items():
        old, vulnerable = (("V5.6.3 build 200308", "V5.5.0 build 170725") if vendor == "hikvision"
                           else ("2.800.0000000.8.R,build:2019-03-04", "2.400.0000000.16.R,build:2016-11-01"))
        minimum = "V5.7.0 build 220101" if vendor == "hikvision" else "2.820.0000000.1.R,build:2021-01-01"
        for model, fw in ((cam_model, cam_fw), (nvr_model, nvr_fw)):
            entries.append({"vendor": vendor, "models": [model], "latest": fw,
                            "minimum": fw if vendor == "onvif" or model == nvr_model else minimum,
                            "vulnerable": [{"advisory": "LAB-2016-0001", "versions": [vulnerable],
                                            "note": "lab example advisory for the vulnerable-firmware fault"}]})
    return {"version": 1, "entries": entries}


def inventory_dict(fleet: Fleet, secret_paths: dict[str, Path]) -> dict[str, Any]:
    schools = []
    installed = dt.date(2024, 8, 20)
    for plan in fleet.schools:
        devices = []
        for d in plan.devices:
            entry: dict[str, Any] = {"id": d.id, "kind": d.kind, "vendor": d.vendor, "host": d.host,
                                     "credentials": f"lab-{d.vendor}", "name": d.name, "area": plan.areas[d.id]}
            if d.id in plan.nvr_channel:
                entry["nvr"], entry["nvr_channel"] = plan.nvr_channel[d.id]
            entry.update({"model": d.model, "serial": d.serial, "installed": installed})
            devices.append(entry)
        schools.append({
            "id": plan.id, "name": plan.name, "district": plan.district, "address": plan.address,
            "contacts": [{"name": plan.contact[0], "role": "食堂经理", "phone": plan.contact[1]}],
            "devices": devices,
        })
    return {
        "version": 1,
        "settings": {"timezone": "Asia/Shanghai"},
        "credentials": {name: {"username": user, "password_file": str(secret_paths[name])}
                        for name, (user, _pw) in fleet.credentials.items()},
        "defaults": {"port": fleet.devices[0].http_port, "rtsp_port": fleet.devices[0].rtsp_port, "timeout": 5,
                     "tags": ["lab"]},
        "schools": schools,
    }


# A duty roster (定岗值班) for lab inventories (`make demo`, tests): day and night technicians, a supervisor and a
# manager always on call. Not written by `lab up`: add it to try `watch` escalation and `oncall`.
DUTY_ROSTER = [
    {"name": "张伟", "role": "technician", "phone": "13800000001",
     "shifts": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}]},
    {"name": "王芳", "role": "technician", "phone": "13800000002",
     "shifts": [{"start": "18:00", "end": "08:00"}, {"days": ["sat", "sun"]}]},
    {"name": "李主管", "role": "supervisor", "phone": "13900000001", "shifts": [{}]},
    {"name": "赵经理", "role": "manager", "phone": "13700000001", "shifts": [{}]},
]


def write_inventory(fleet: Fleet, directory: Path) -> Path:
    """Write DIR/secrets/*.password, DIR/firmware-catalog.yaml and DIR/inventory.yaml (atomically);
    returns the inventory path."""
    import yaml

    from canteen_ops.store.files import atomic_write

    directory.mkdir(parents=True, exist_ok=True)
    paths = write_secrets(fleet, directory)
    catalog = directory / "firmware-catalog.yaml"
    atomic_write(catalog, ("# Firmware catalog for the device lab's models (example data).\n" + yaml.safe_dump(
        firmware_catalog_dict(), allow_unicode=True, sort_keys=False, width=120)).encode("utf-8"))
    inventory = inventory_dict(fleet, paths)
    inventory["settings"]["firmware_catalog"] = str(catalog.resolve())
    text = ("# canteen-ops device lab: simulated devices on loopback. Generated by `canteen-ops lab up`.\n"
            "# Passwords are in the password_file of each credential set (mode 600), never here.\n"
            + yaml.safe_dump(inventory, allow_unicode=True, sort_keys=False, width=120))
    target = directory / "inventory.yaml"
    atomic_write(target, text.encode("utf-8"))
    return target.resolve()
