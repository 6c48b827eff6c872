"""What a technician reads in Chinese (LANG=zh_CN.UTF-8): check summaries, incidents, backups, snapshots,
firmware, watch, kb and the report, against the lab; the log keeps English; LANG=C stays English."""

from __future__ import annotations

import html
import json
import re
import time

import pytest

from canteen_ops.store.log import MaintenanceLog


@pytest.fixture
def zh(monkeypatch):
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")


def _lang(monkeypatch, value: str) -> None:
    monkeypatch.setenv("LANG", value)


# --- summaries.translate: our phrases rewritten, data kept --------------------------------------------------------
CASES = [
    ("clock 75 s ahead (> 60 s)", "时钟偏差：快 75 秒 (> 60 秒)"),
    ("clock 3 min behind (> 60 s)", "时钟偏差：慢 3 分钟 (> 60 秒)"),
    ("disk 1: error", "硬盘 1：故障"),
    ("disk 2: 3.5% free (< 10%)", "硬盘 2：剩余空间 3.5% (< 10%)"),
    ("retention channels 1–3: 3.0 days < 7", "录像保存天数 通道 1–3: 3.0 天 < 7 天"),
    ("channel 1 offline (networkAbnormal): s001-cam01 粗加工间", "通道 1 视频丢失 (networkAbnormal): s001-cam01 粗加工间"),
    ("offline (connection refused on port 80) — 6 other checks skipped", "离线 (端口 80 拒绝连接) — 另有 6 项检查跳过"),
    ("NTP disabled (time set manually; it will drift)", "未启用 NTP (手动设置时间，时钟会逐渐偏差)"),
    ("blurred (grease or steam on the lens? clean it): sharpness 3 < 100",
     "画面模糊 (镜头有油污或水汽？请清洁)：清晰度 3 < 100"),
    ("2 of 6 required areas not covered: 加工区 (no working camera: s001-cam01); 洗消间 (no camera in the inventory)"
     " — 重点点位覆盖率 66.7%",
     "6 个必需区域中 2 个未覆盖：加工区 (没有正常工作的摄像机：s001-cam01)；洗消间 (设备清单中没有摄像机) — 重点点位覆盖率 66.7%"),
    ("s001-nvr: clock critical", "s001-nvr：时钟偏差 严重故障"),
    ("major; outside working hours; on site within 2 h", "重大；工作时间外；2 小时内到场"),
    ("V5.7.18 build 240826 (latest)", "V5.7.18 build 240826 (最新)"),
]


def test_summaries_are_translated_when_shown_and_data_is_kept(zh):
    from canteen_ops.summaries import translate

    for english, chinese in CASES:
        assert translate(english) == chinese
    assert translate("the device said: Hello World") == "the device said: Hello World"  # not ours: as it is
    assert translate(None) is None and translate("") == ""


def test_summaries_stay_english_by_default(monkeypatch):
    from canteen_ops.summaries import translate

    _lang(monkeypatch, "C")
    for english, _chinese in CASES:
        assert translate(english) == english


def test_every_phrase_has_a_chinese_form_with_the_same_placeholders(zh):
    from canteen_ops.i18n import _
    from canteen_ops.summaries import PHRASES

    for template in PHRASES:
        target = _(template)
        assert target != template, template
        assert set(re.findall(r"\{(\w+)\}", target)) == set(re.findall(r"\{(\w+)\}", template)), template


def test_hostile_summaries_cost_linear_time(zh):
    from canteen_ops.summaries import MAX_LEN, translate

    for text in ("clock " + "1" * (MAX_LEN - 10), "disk " + "a" * (MAX_LEN - 10), "(> " * (MAX_LEN // 3)):
        t0 = time.perf_counter()
        translate(text)
        assert time.perf_counter() - t0 < 1.0
    huge = "clock 1 s ahead " * 1000
    assert translate(huge) == huge  # over the bound: shown as stored


# --- commands against the lab -------------------------------------------------------------------------------------
@pytest.fixture
def faulty(lab, lab_env, lab_faults, tmp_path, monkeypatch):
    monkeypatch.setenv("CANTEEN_OPS_DB", str(tmp_path / "log.db"))
    lab_faults.set("s001-nvr", "clock-drift", "75")
    lab_faults.set("s001-nvr", "hdd-error")
    lab_faults.set("s001-nvr", "retention", "3")
    lab_faults.set("s001-cam01", "offline")
    return tmp_path / "log.db"


def test_check_status_and_incidents_speak_chinese_while_the_log_keeps_english(faulty, cli, zh, monkeypatch):
    r = cli("check", "-d", "s001-*", "--open-incidents")
    assert r.code == 2, r
    assert re.search(r"时钟偏差：快 7\d 秒 \(> 60 秒\)", r.out), r  # 75 s, give or take the second of the run
    for phrase in ("硬盘 1：故障", "录像保存天数 通道", "天 < 7 天", "离线 (端口", "项检查跳过",
                   "通道 1 视频丢失"):
        assert phrase in r.out, phrase
    assert "s001-cam01" in r.out  # data as it is
    for english in ("s ahead", "disk 1: error", "connection refused", "other checks skipped"):
        assert english not in r.out, english
    rows = MaintenanceLog.open(faulty).query("SELECT summary FROM results WHERE check_name = 'clock' "
                                        "AND device_id = 's001-nvr'")
    assert rows and re.match(r"clock 7\d s ahead", rows[-1]["summary"])  # the log stays English (sync, --grep)

    r = cli("status")
    assert r.code == 2 and "时钟偏差：快" in r.out and "硬盘 1：故障" in r.out, r
    r = cli("incident", "list")
    assert r.code == 0 and "s001-nvr：时钟偏差 严重故障" in r.out and "未到期" in r.out and "待同步" not in r.out, r
    ident = next(i["id"] for i in json.loads(cli("incident", "list", "--json").out)
                 if i["title"] == "s001-nvr: clock critical")
    r = cli("incident", "show", ident[:8])
    assert r.code == 0 and "时钟偏差：快 7" in r.out and "工作时间" in r.out and "小时内到场" in r.out, r
    r = cli("log", "list", "--grep", "s ahead")  # searching the stored English still works
    assert r.code == 0 and "时钟偏差：快 7" in r.out, r

    _lang(monkeypatch, "C")
    r = cli("status")
    assert re.search(r"clock 7\d s ahead \(> 60 s\)", r.out) and "disk 1: error" in r.out and "时钟偏差" not in r.out, r


def test_backup_snapshot_firmware_watch_and_kb_speak_chinese(faulty, cli, zh, monkeypatch, tmp_path):
    monkeypatch.setenv("CANTEEN_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    r = cli("backup", "run", "-d", "s001-*")
    assert "字节，sha256" in r.out and "bytes" not in r.out, r
    r = cli("backup", "list", "-d", "s001-*")
    assert "尚无成功备份；上次尝试失败" in r.out, r
    r = cli("snapshot", "take", "-d", "s001-*")
    assert "配置快照" in r.out and "无法读取设置" in r.err, r
    r = cli("snapshot", "diff", "--since", "24h", "-d", "s001-*")
    assert "的配置快照有变化" in r.out and "首次配置快照" in r.out and "first snapshot" not in r.out, r
    r = cli("snapshot", "drift", "-d", "s001-*")
    assert "没有可比对的基线" in r.out or "尚未采集配置快照" in r.out, r
    r = cli("firmware", "check", "-d", "s001-*")
    assert "(最新)" in r.out and "无法读取固件版本" in r.out and "(latest)" not in r.out, r
    r = cli("watch", "--iterations", "1", "-d", "s001-*")
    assert re.search(r"第 1 轮 .*：\d+ 台设备.*严重.*用时 [\d.]+ 秒", r.out) and "round 1" not in r.out, r
    r = cli("kb", "search", "时钟")
    assert r.code == 0 and "条结果" in r.out and "内置" in r.out and "matches for" not in r.out, r

    _lang(monkeypatch, "C")
    r = cli("firmware", "check", "-d", "s001-*")
    assert "(latest)" in r.out and "最新" not in r.out, r
    r = cli("kb", "search", "时钟")
    assert "2 matches for 时钟" in r.out and "shipped" in r.out, r


# --- the report in Chinese has no English sentences ------------------------------------------------------------
# Words that may stay: units, protocol and file-format names, and our ids (KB entries, commands).
ALLOWED = {"sha256", "NTP", "OSD", "UTC", "SLA", "ok", "warn", "crit", "unknown", "pruned", "unsupported",
           "reachable", "retention", "picture", "coverage", "backup_stale_hours", "incident_resolve_h",
           "arrive_sla", "sla", "Asia", "Shanghai"}


def _english_words(text: str, data: set[str]) -> set[str]:
    words = set(re.findall(r"[A-Za-z][A-Za-z_]{2,}", text))
    return {w for w in words if w not in ALLOWED and w.lower() not in data}


def test_report_in_chinese_has_no_english_body_sentences(faulty, lab, cli, zh, tmp_path):
    assert cli("check", "-d", "s001-*", "--open-incidents").code == 2
    from canteen_ops.inventory import load_inventory

    inv = load_inventory(lab.inventory)
    data = set()
    for s in inv.schools:
        for value in [s.id, s.name, s.district or ""] + [x for d in s.devices for x in (d.id, d.model or "", d.area or "")]:
            data.update(w.lower() for w in re.findall(r"[A-Za-z][A-Za-z_]{2,}", value))
    md = cli("report", "--to", "2099-01-01", "--from", "2000-01-01")
    assert md.code == 0, md
    assert "**在线率**" in md.out and "**存储达标率**" in md.out and "| 时钟偏差 |" in md.out
    assert _english_words(md.out, data) == set(), md.out
    out = tmp_path / "r.html"
    assert cli("report", "-f", "html", "-o", out, "--to", "2099-01-01", "--from", "2000-01-01").code == 0
    page = out.read_text(encoding="utf-8")
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "各校在线率" in text and "配置备份" in text
    assert _english_words(text, data) == set(), text


def test_report_in_english_is_unchanged_by_the_catalog(faulty, cli, monkeypatch):
    _lang(monkeypatch, "C")
    assert cli("check", "-d", "s001-nvr", "--only", "clock").code == 2
    r = cli("report", "--to", "2099-01-01", "--from", "2000-01-01")
    assert r.code == 0 and "**Availability**:" in r.out and "| check | results | warn |" in r.out, r
    assert "| clock | 1 | 0 | 1 |" in r.out and "在线率：" not in r.out and "时钟偏差" not in r.out


def test_drill_report_in_chinese(cli, zh, tmp_path):
    from tests.conftest import EXAMPLE
    from tests.test_playbooks import write

    p = write(tmp_path, """\
        {name: drill-manual, kind: drill, steps: [
          {name: report fault, incident: {action: open, level: major, title: 录像机离线演练, device: xc-nvr-01}},
          {name: on site, incident: {action: arrive, device: xc-nvr-01}}]}
        """)
    r = cli("-i", EXAMPLE, "playbook", "run", p)
    assert r.code == 0, r
    assert "演练报告：drill-manual" in r.out and "录像机离线演练" in r.out  # data as it is
    assert re.search(r"事件 \w{8} \[重大\] xc-nvr-01：录像机离线演练 — 演练开始 \d+ 秒后发现，\d+ 秒后到场，到场时限", r.out), r
    assert re.search(r"事件 [\w-]+ 已报告：重大，xc-shiyan-xx，工作时间[内外]", r.out), r
    assert "事件 " in r.out and "已到场" in r.out
    for english in ("detected", "drill report", "opened:", "working hours"):
        assert english not in r.out, english


def test_alerts_carry_the_finding_in_chinese_whatever_the_locale(monkeypatch):
    from canteen_ops.summaries import translate

    _lang(monkeypatch, "C")
    assert translate("clock 75 s ahead (> 60 s)", "zh") == "时钟偏差：快 75 秒 (> 60 秒)"
    assert translate("s001-nvr: clock critical", "zh") == "s001-nvr：时钟偏差 严重故障"
    assert translate("clock 75 s ahead (> 60 s)") == "clock 75 s ahead (> 60 s)"


# --- every message in the code has its Chinese form --------------------------------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent / "canteen_ops"


def _error_classes(trees) -> set[str]:
    """CanteenOpsError and every class derived from it anywhere in the code (their first argument is a template)."""
    import ast

    names = {"CanteenOpsError"}
    while True:
        more = {node.name for tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                and any(getattr(b, "id", getattr(b, "attr", None)) in names for b in node.bases)} - names
        if not more:
            return names
        names |= more


def _messages_in_the_code():
    """(file:line, msgid or None, why) for every message our code shows: `_()`, `ngettext()`, `word()`, `zh()`,
    error templates, input-file problems, lock messages, table headers, plural words. The lab (a simulator for
    developers and demos) and the catalog tooling are not messages a technician reads."""
    import ast

    files = [f for f in sorted(ROOT.rglob("*.py")) if "lab" not in f.relative_to(ROOT).parts[:1]
             and "locale" not in f.parts]
    trees = {f: ast.parse(f.read_text(encoding="utf-8")) for f in files}
    errors = _error_classes(trees.values()) | {"YamlSyntaxError"}
    # name → (index of the message argument, whether an f-string there is a mistake)
    calls = {"_": 0, "zh": 0, "word": 0, "problem": 1, "Problem": 4, "exclusive": 1, "typed": 3, "Column": 0,
             **{e: 0 for e in errors}}
    for f, tree in trees.items():
        where = f.relative_to(ROOT.parent)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            args = node.args
            if name == "ngettext" and len(args) >= 2 and all(isinstance(a, ast.Constant) for a in args[:2]):
                yield f"{where}:{node.lineno}", f"{args[0].value}\0{args[1].value}", name
            elif name == "plural" and len(args) >= 2 and isinstance(args[1], ast.Constant):
                many = args[2].value if len(args) > 2 and isinstance(args[2], ast.Constant) else args[1].value + "s"
                yield f"{where}:{node.lineno}", f"{{n}} {args[1].value}\0{{n}} {many}", name
            elif name in calls and len(args) > calls[name]:
                arg = args[calls[name]]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                    yield f"{where}:{node.lineno}", arg.value, name
                elif isinstance(arg, ast.JoinedStr) and name not in ("_", "word"):
                    yield f"{where}:{node.lineno}", None, f"{name}: an f-string (give a template and its values)"
                elif isinstance(arg, ast.JoinedStr) and not any(
                        isinstance(v, ast.Constant) and v.value.endswith(":") for v in arg.values):
                    yield f"{where}:{node.lineno}", None, f"{name}: an f-string (only `context:` keys may be built)"


def test_every_message_in_the_code_is_in_the_catalog_with_a_chinese_form():
    from canteen_ops.locale.msgfmt import parse_po

    catalog = parse_po((ROOT / "locale/zh_CN/LC_MESSAGES/canteen_ops.po").read_text(encoding="utf-8"))
    found = list(_messages_in_the_code())
    assert len(found) > 500  # the scan sees the code (not an empty walk that passes by finding nothing)
    problems = [f"{where}: {why}" if msgid is None else f"{where}: {why}({msgid!r}) has no Chinese form"
                for where, msgid, why in found if msgid is None or not catalog.get(msgid, "").strip("\0")]
    assert problems == []
    # and each Chinese form takes the same values as its English template
    for _where, msgid, _why in found:
        if msgid and "\0" not in msgid:
            english, chinese = set(re.findall(r"\{(\w+)", msgid)), set(re.findall(r"\{(\w+)", catalog[msgid]))
            assert chinese == english, (msgid, catalog[msgid])


def test_errors_are_english_for_the_log_and_chinese_for_the_reader(zh):
    from canteen_ops.errors import UsageError, Word, Words
    from canteen_ops.incidents import IncidentStateError

    exc = UsageError("{flag} {value!r}: expected one of {allowed}", flag="--kind", value="foo", allowed="camera, nvr")
    assert str(exc) == "--kind 'foo': expected one of camera, nvr"  # what a log or a change's refusal keeps
    assert exc.localized() == "--kind 'foo'：应为 camera, nvr 之一"
    exc = IncidentStateError("cannot {verb} incident {id}: it is {state} (allowed when {states})", verb=Word("acknowledge", "verb"),
               id="8a7d0611", state=Word("cancelled"), states=Words(("open", "acked")))
    assert str(exc) == "cannot acknowledge incident 8a7d0611: it is cancelled (allowed when open or acked)"
    assert exc.localized() == "无法对事件 8a7d0611 执行 受理：当前状态为 已取消 (仅在 待处理 或 已受理 时允许)"


# --- check findings under every lab fault ------------------------------------------------------------------------
# Words a Chinese finding may keep: protocol and format names, units, and what devices themselves write (NVR
# channel details such as networkAbnormal, an ONVIF recording's status).
KEEP = {"NTP", "UTC", "OSD", "RTSP", "HTTP", "TLS", "SHA", "XML", "GET", "ISAPI", "MiB", "fps", "Mbit", "Digest",
        "Basic", "auth", "basic", "networkAbnormal", "Stopped", "VIDEO", "LAB", "cgi", "bin", "onvif", "sha", "NAS"}


def _device_words(lab) -> set[str]:
    """Data: school and device ids, names, models, firmware strings, serials and user names of the lab's devices
    (never translated), and check names (ids: `--only` takes them, tables show them as they are)."""
    from canteen_ops.checks import CHECK_NAMES
    from canteen_ops.inventory import load_inventory

    values = [s.id for s in load_inventory(lab.inventory).schools]
    for d in lab.fleet.devices:
        values += [d.id, d.name, d.model, d.firmware, d.serial, d.mac, d.username]
    return {w for v in values for w in re.findall(r"[A-Za-z][A-Za-z_]{2,}", str(v or ""))} | set(CHECK_NAMES)


def _english(text: str, data: set[str]) -> set[str]:
    text = re.sub(r"XML 格式错误 \([^\n]*", "XML 格式错误", text)  # the XML parser's own words follow
    text = re.sub(r"/[\w./-]+", " ", text)  # request paths (/ISAPI/System/time, /cgi-bin/magicBox.cgi)
    text = re.sub(r"\b[0-9a-f]{8}\b", " ", text)  # record ids (incidents)
    return {w for w in re.findall(r"[A-Za-z][A-Za-z_]{2,}", text) if w not in KEEP and w not in data}


def test_check_findings_under_every_lab_fault_read_in_chinese(lab, lab_env, lab_faults, cli, zh, tmp_path):
    from canteen_ops.summaries import translate

    faults = [("s001-nvr", "clock-drift", "75"), ("s001-nvr", "hdd-error", None), ("s001-nvr", "retention", "3"),
              ("s001-cam01", "offline", None), ("s001-cam02", "wrong-password", None), ("s001-cam03", "black", None),
              ("s002-nvr", "ntp-off", None), ("s002-nvr", "gaps", "2"), ("s002-nvr", "channel-offline", "2"),
              ("s002-cam01", "locked", None), ("s002-cam02", "oversized-body", None), ("s002-cam03", "frozen", None),
              ("s003-nvr", "no-hdd", None), ("s003-cam01", "low-res", None), ("s003-cam02", "colour-cast", None),
              ("s003-cam03", "blurred", None)]
    for device, fault, value in faults:
        lab_faults.set(device, fault, value)
    assert cli("check", "--open-incidents").code == 2
    for device in ("s001-*", "s002-*", "s003-*"):
        lab_faults.clear(device)
    lab_faults.setting("s001-cam01", "auth", "basic")  # asks for Basic over plain HTTP: refused, nothing sent
    lab_faults.set("s001-cam02", "malformed-xml")
    lab_faults.set("s002-cam01", "cut-head")
    lab_faults.set("s002-cam02", "clock-reset")
    lab_faults.set("s003-nvr", "channel-offline", "1")
    lab_faults.set("s003-cam01", "no-stream")
    lab_faults.set("s001-nvr", "hdd-unformatted")
    assert cli("--force-login", "check", "-d", "s001-*", "-d", "s002-cam0[12]", "-d", "s003-nvr",
               "-d", "s003-cam01").code == 2

    log = MaintenanceLog.open(tmp_path / "log.db")
    summaries = {r["summary"] for r in log.query("SELECT summary FROM results")} | \
        {r["title"] for r in log.query("SELECT title FROM incidents")}
    data = _device_words(lab)
    left = {s: _english(translate(s), data) for s in summaries if s}
    assert {s: w for s, w in left.items() if w} == {}
    shown = "\n".join(translate(s) for s in summaries)
    for chinese in ("认证失败：用户名或密码错误 — 不再重试", "已锁定：设备拒绝我们登录", "设备要求通过明文 HTTP 进行 Basic 认证",
                    "应答 67108864 字节，超过 8 MiB 上限", "XML 格式错误", "分辨率 1280x720 低于要求的 1920x1080",
                    "无视频流：设备应答 RTSP", "通道 2 视频丢失 (视频丢失)", "：通道 严重故障", "硬盘 1：未格式化",
                    "录像保存天数", "时钟复位"):
        assert chinese in shown, chinese
    assert any(s.startswith("auth failed: wrong username or password") for s in summaries)  # the log keeps English
    r = cli("status")
    assert r.code == 2 and _english(r.out, data | {"all"}) == set(), r.out  # (--all)


# --- inventory errors, usage errors, locks, sync -----------------------------------------------------------------
def _inventory() -> str:
    from tests.test_inventory_validation import HEAD

    return HEAD + "      - id: s1-nvr\n        kind: nvr\n        vendor: hikvision\n        host: 127.0.9.1\n" \
        "        credentials: hik\n"


def _no_sentence(text: str) -> None:
    """No English sentence is left: names (files, flags, quoted values, commands in backquotes) may stay, but not
    three English words in a row."""
    prose = re.sub(r"[\w.:-]*[/\\][\w./\\:-]*|--[\w-]+|`[^`]*`|'[^']*'|\"[^\"]*\"", " ", text)
    runs = re.findall(r"[A-Za-z]{2,}(?: +[A-Za-z]{2,}){2,}", prose)  # (a list "a, b, c" is names)
    assert runs == [], (runs, text)


@pytest.mark.parametrize("case, chinese", [
    ("tab", "这一行用制表符 (Tab) 缩进：YAML 只能用空格缩进"),
    ("gbk", "设备清单文件以 GBK/GB18030 (中文 Windows 的 ANSI 编码) 保存，不是 UTF-8：请另存为 UTF-8"),
    ("utf16", "设备清单文件以 UTF-16 (\"Unicode\") 编码保存：请另存为 UTF-8"),
    ("scheme", "含有网址：host 只写地址；端口请用 `port:` (host: 127.0.9.1, port: 8080)"),
    ("port", "含有端口：host 只写地址；端口请用 `port:` (host: 127.0.9.1, port: 8000)"),
    ("password", "host 中含有用户名或密码 (user:password@…；不予显示)"),
    ("typo", "未知的键 'hots' (是否应为 'host'？)"),
])
def test_inventory_errors_speak_chinese(cli, zh, tmp_path, case, chinese):
    inventory = _inventory()
    text = {"tab": inventory.replace("        host: 127.0.9.1", "\thost: 127.0.9.1"),
            "scheme": inventory.replace("host: 127.0.9.1", "host: 'http://127.0.9.1:8080'"),
            "port": inventory.replace("host: 127.0.9.1", "host: '127.0.9.1:8000'"),
            "password": inventory.replace("host: 127.0.9.1", "host: 'admin:Sekr1t-77@127.0.9.1'"),
            "typo": inventory.replace("host: 127.0.9.1", "hots: 127.0.9.1")}.get(case, inventory)
    path = tmp_path / "inventory.yaml"
    path.write_bytes(text.encode({"gbk": "gbk", "utf16": "utf-16"}.get(case, "utf-8")))
    r = cli("-i", path, "inventory", "validate")
    assert r.code == 65 and chinese in r.err and "个问题；未执行任何操作" in r.err, r
    assert "Sekr1t" not in r.out + r.err
    _no_sentence(r.err)


def test_usage_lock_and_sync_errors_speak_chinese(cli, zh, tmp_path, monkeypatch):
    from canteen_ops.locks import exclusive
    from tests.test_playbooks import write

    path = tmp_path / "inventory.yaml"
    path.write_text(_inventory(), encoding="utf-8")
    for args, code, chinese in [
        (("check", "--kind", "dvr"), 64, "错误: --kind 'dvr'：应为 camera, nvr 之一"),
        (("log", "list", "--since", "yesterday"), 64, "错误: --since：时间 'yesterday' 无效：请用时长"),
        (("check", "--only", "clok"), 64, "未知的检查项 clok；可用："),
        (("backup", "prune", "--keep-last", "0"), 64, "--keep-last 至少为 1 (最新的成功备份总会保留)"),
        (("inventory", "set", "s1-nvr", "password=x"), 64, "拒绝把 'password' 写入设备清单"),
        (("incident", "ack", "deadbeef"), 66, "没有编号为"),
        (("sync",), 64, "没有上级服务器：请使用 --upstream 地址"),
        (("sync", "--upstream", "http://127.0.0.1:9/canteen"), 64, "没有上级服务器令牌：请设置 CANTEEN_OPS_UPSTREAM_TOKEN"),
    ]:
        r = cli("-i", path, *args)
        assert r.code == code and chinese in r.err, (args, r)
        _no_sentence(r.err)
    monkeypatch.setenv("CANTEEN_OPS_UPSTREAM_TOKEN", "t0ken")
    assert cli("-i", path, "log", "add", "镜头已清洁", "--device", "s1-nvr").code == 0  # something to send
    r = cli("-i", path, "sync", "--upstream", "http://127.0.0.1:9/canteen")  # nothing listens on loopback port 9
    assert r.code == 69 and "无法连接上级服务器 http://127.0.0.1:9/canteen" in r.err, r
    assert "仍待同步（保存在本地，下次同步时发送）" in r.err

    book = write(tmp_path, "{name: held, steps: [{name: 记录, note: 测试}]}")
    with exclusive(tmp_path / "locks" / "playbook-held.lock", "busy{holder}"):
        r = cli("-i", path, "playbook", "run", book)
    assert r.code == 75 and "剧本 'held' 已在运行 (pid " in r.err and "请在其结束后重试" in r.err, r

    _lang(monkeypatch, "C")  # English stays the default, word for word
    r = cli("-i", path, "check", "--kind", "dvr")
    assert r.code == 64 and "error: --kind 'dvr': expected one of camera, nvr" in r.err
    with exclusive(tmp_path / "locks" / "playbook-held.lock", "busy{holder}"):
        r = cli("-i", path, "playbook", "run", book)
    assert r.code == 75 and "playbook 'held' is already running (pid " in r.err, r


def test_click_usage_errors_speak_the_technicians_language(cli, zh, tmp_path, monkeypatch):
    """Click's own usage errors (an unknown option or command, a missing argument, a value of the wrong type)
    come from the catalog: Chinese under LANG=zh_CN or --lang zh, English under LANG=C or --lang en; LANGUAGE,
    which the command sets for them, is as it was afterwards."""
    import os

    monkeypatch.setenv("LANGUAGE", "fr")
    path = tmp_path / "inventory.yaml"
    path.write_text(_inventory(), encoding="utf-8")
    for args, chinese in [
        (("log", "list", "--nope"), "错误：没有选项 '--nope'。"),
        (("nocmd",), "错误：没有命令 'nocmd'。"),
        (("log", "list", "--limit", "abc"), "错误：'--limit' 的取值无效：'abc' 不是有效的数字"),
        (("incident", "note"), "错误：缺少参数 'ID'"),
    ]:
        r = cli("-i", path, *args)
        assert r.code == 64 and chinese in r.err and "用法：" in r.err and "查看帮助" in r.err, (args, r)
    r = cli("-i", path, "--lang", "en", "incident", "note")
    assert r.code == 64 and "Error: Missing argument 'ID'." in r.err and "Usage:" in r.err, r
    _lang(monkeypatch, "C")
    r = cli("-i", path, "log", "list", "--nope")
    assert r.code == 64 and "Error: No such option '--nope'." in r.err, r
    r = cli("-i", path, "--lang", "zh", "incident", "note")
    assert r.code == 64 and "错误：缺少参数 'ID'" in r.err, r
    assert os.environ["LANGUAGE"] == "fr"


# --- confirmations and result lines ------------------------------------------------------------------------------
def test_incident_backup_snapshot_and_playbook_lines_speak_chinese(lab, lab_env, lab_faults, cli, zh, tmp_path,
                                                                     monkeypatch):
    from tests.test_playbooks import rows, write

    monkeypatch.setenv("CANTEEN_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    r = cli("incident", "open", "-t", "录像机离线", "-l", "major", "-d", "s001-nvr")
    assert r.code == 0 and "已报告：重大，s001-" in r.out, r
    ident = json.loads(cli("incident", "list", "--json").out)[0]["id"][:8]
    for args, chinese in [(("ack",), "已受理"), (("note", "换了电源"), "已添加记录"), (("assign", "张三"), "已指派给 张三"),
                          (("arrive",), "已到场"), (("resolve", "-r", "已修复"), "已解决"), (("reopen",), "事件"),
                          (("cancel", "--reason", "误报"), "已取消")]:
        r = cli("incident", args[0], ident, *args[1:])
        assert r.code == 0 and chinese in r.out, (args, r)
        _no_sentence(r.out)
    r = cli("incident", "ack", ident)
    assert r.code == 64 and "无法对事件" in r.err and "执行 受理：当前状态为 已取消 (仅在 待处理 时允许)" in r.err, r

    lab_faults.set("s001-cam01", "offline")
    r = cli("backup", "run", "-d", "s001-*")
    assert r.code == 2 and "离线：s001-cam01" in r.out and "字节，sha256" in r.out, r
    r = cli("backup", "verify")
    assert r.code == 0 and "个备份文件：" in r.out and "个完好，0 个缺失，0 个损坏" in r.out, r
    r = cli("backup", "prune", "--dry-run", "--keep-last", "1", "--keep-days", "0")
    assert r.code == 0 and "将清理 0 条记录；将删除 0 个文件 (试运行：未做任何改动)" in r.out, r

    assert cli("snapshot", "take", "-d", "s001-nvr").code == 0
    r = cli("snapshot", "accept", "s001-nvr")
    assert r.code == 0 and "s001-nvr：基线现为配置快照" in r.out, r
    lab_faults.setting("s001-nvr", "ntp_server", "10.0.0.9")
    assert cli("snapshot", "take", "-d", "s001-nvr").code == 0
    r = cli("snapshot", "show", "s001-nvr", "--history")
    assert r.code == 0 and "采集于" in r.out and "基线 (tester 于" in r.out, r
    r = cli("snapshot", "diff", "s001-nvr")
    assert r.code == 1 and r.out.startswith("--- ") and "采集于" in r.out and "10.0.0.9" in r.out, r
    r = cli("snapshot", "drift", "-d", "s001-nvr")
    assert "项设置与基线不同" in r.out or "与基线不同" in r.out, r
    r = cli("-q", "status", "-s", "s001-*")
    assert "项设置与基线不同" in r.out and "秒前)" in r.out and "：从未检查" in r.out and " ago)" not in r.out, r

    book = write(tmp_path, """\
        {name: 夜间, steps: [
          {name: 记录, note: 测试记录},
          {name: 等待, wait: {seconds: 0}},
          {name: 核对, assert: {step: 记录, status: warn}},
          {name: 之后, note: 不会执行}]}
        """)
    r = cli("playbook", "run", book)
    assert r.code == 2, r
    for chinese in ("已等待 0 秒", "步骤 '记录' 的结果为 ok，预期 warn", "秒)"):
        assert chinese in r.out, (chinese, r.out)
    assert "waited" not in r.out and "expected" not in r.out and "skipped" not in r.out
    summaries = [row["summary"] for row in rows("playbook_steps", tmp_path / "log.db")]
    assert "waited 0 s" in summaries and "skipped (an earlier step failed)" in summaries  # the log keeps English


def test_driver_refusals_over_real_sockets_read_in_chinese(zh):
    """The TLS pin check and the login lock of a real HTTPS/HTTP exchange (tests/drivers' fake device on
    127.0.0.1), shown as `check` shows them."""
    from canteen_ops.checks.device import describe_login_failure
    from canteen_ops.drivers.base import AuthFailed
    from canteen_ops.drivers.transport import CertChanged
    from canteen_ops.store.tlspins import changed
    from canteen_ops.summaries import translate
    from tests.drivers.fake_digest import FakeDevice
    from tests.drivers.test_http_auth import device, hik
    from tests.drivers.test_tls_policy import DEVICE_FP, hik_tls

    with FakeDevice(tls=True, cert="replaced") as fake, hik_tls(fake.port, DEVICE_FP, tls="pin") as drv:
        with pytest.raises(CertChanged) as exc:
            drv.login()
    summary = changed(device(fake.port), exc.value.fingerprint, DEVICE_FP, str(exc.value)).summary
    shown = translate(summary)
    assert "cam-1: GET /ISAPI/System/deviceInfo: TLS 证书已变更：SHA-256 " in shown and "，已接受的为 " in shown
    assert "；未发送任何数据 (如设备确实更换了证书：canteen-ops device accept-cert)" in shown, shown
    with FakeDevice(locked=True) as fake, hik(fake.port) as drv:
        with pytest.raises(AuthFailed) as exc:
            drv.login()
    shown = translate(describe_login_failure(exc.value, 5))
    assert shown.startswith("已锁定：设备拒绝我们登录") and shown.endswith(" — 不再重试"), shown
    assert "分钟后解锁" in shown or "秒后解锁" in shown or "；" not in shown


# --- --help pages ------------------------------------------------------------------------------------------------
CJK = re.compile(r"[\u4e00-\u9fff]")
VALUES = re.compile(r"^[\w-]+(?: \| [\w-]+)+$")  # `camera | nvr`: a list of values, the same in every language


def _help_texts():
    """(where, text) for every help text of the CLI: each command's and group's description (and the line the
    root's lazy list shows for it), and each parameter's help. Walks the Click tree the way `--help` does, so
    lazily built commands are included."""
    from canteen_ops.cli.app import LAZY, _help
    from tests.test_render_width import _commands

    for path, cmd in _commands():
        where = " ".join(["canteen-ops", *path])
        for text in (cmd.help, cmd.short_help):
            if text:
                yield where, text
        for p in cmd.params:
            if p.help:
                yield f"{where} {p.name}", p.help
    for name in LAZY:
        yield f"canteen-ops {name} (root list)", _help(name)


def test_every_help_text_is_in_the_catalog_with_a_chinese_form():
    from canteen_ops.cli.helpfmt import catalog_key
    from canteen_ops.locale.msgfmt import parse_po

    catalog = parse_po((ROOT / "locale/zh_CN/LC_MESSAGES/canteen_ops.po").read_text(encoding="utf-8"))
    found = list(_help_texts())
    assert len({catalog_key(t) for _w, t in found}) > 200  # the walk sees every command (lazy ones too)
    problems = []
    for where, text in found:
        key = catalog_key(text)
        chinese = catalog.get(key, "")
        if not chinese:
            problems.append(f"{where}: {key!r} has no Chinese form")
        elif not CJK.search(chinese) and not VALUES.match(key):
            problems.append(f"{where}: {key!r} → {chinese!r} is not Chinese")
        elif set(re.findall(r"\{(\w+)", key)) != set(re.findall(r"\{(\w+)", chinese)):
            problems.append(f"{where}: {key!r} → {chinese!r} takes other values")
    assert problems == []
    # Click's own words on a help page (looked up through gettext)
    for word in ("Usage:", "Options", "Arguments", "Commands", "default: {default}", "required", "env var: {var}",
                 "Show this message and exit."):
        assert CJK.search(catalog.get(word, "")), word


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("how", ["LANG", "--lang"])
def test_every_help_page_speaks_chinese(cli, monkeypatch, how):
    """Under LANG=zh_CN.UTF-8 (or `--lang zh` before the command): the description, every parameter's help and
    Click's words are Chinese; names, metavars, defaults and examples that are data stay."""
    from canteen_ops import i18n
    from canteen_ops.cli.helpfmt import help_text
    from tests.test_render_width import _commands

    def in_chinese(text: str) -> str:
        i18n.set_language("zh")
        try:
            return help_text(text)
        finally:
            i18n.set_language(None)

    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8" if how == "LANG" else "C")
    prefix = ("--lang", "zh") if how == "--lang" else ()
    commands = _commands()
    assert len(commands) > 60
    for path, cmd in commands:
        r = cli(*prefix, *path, "--help")
        assert r.code == 0, (path, r)
        lines = r.out.splitlines()
        assert lines[0].startswith("用法： canteen-ops"), (path, r.out)
        body = "\n".join(lines[1:])  # (the usage line is names)
        _no_sentence(body)
        assert "选项：" in body and "显示此帮助并退出。" in body and "Options" not in body, (path, r.out)
        if cmd.help:
            assert CJK.search(r.out.split("\n\n")[1]), (path, r.out)  # the description
        for p in cmd.params:
            if p.help and not getattr(p, "hidden", False):
                chinese = in_chinese(p.help)
                assert CJK.search(chinese) or VALUES.match(chinese), (path, p.name, chinese)
                assert _squeeze(chinese) in _squeeze(r.out), (path, p.name, chinese, r.out)
        if hasattr(cmd, "list_commands"):
            assert "命令：" in body, (path, r.out)
    r = cli(*prefix, "log", "list", "--help")
    for data in ("--school SCHOOL", "--device GLOB", "'xc-cam-*'", "烹饪区", "--limit N", "[默认：50;"):
        assert data in r.out, (data, r.out)
    r = cli(*prefix, "inventory", "set", "--help")
    assert "参数：" in r.out and "DEVICE" in r.out and "[必填]" in r.out, r.out


def test_english_help_is_unchanged_under_lang_c(cli, monkeypatch):
    """English stays the default, word for word: Click's words, and each help text as written."""
    from tests.test_render_width import _commands

    monkeypatch.setenv("LANG", "C")
    for path, cmd in _commands():
        r = cli(*path, "--help")
        assert r.code == 0 and r.out.startswith("Usage: canteen-ops") and "Options:" in r.out, (path, r)
        assert "选项" not in r.out and "显示此帮助" not in r.out, (path, r.out)
        for p in cmd.params:
            if p.help and not getattr(p, "hidden", False):
                assert _squeeze(p.help) in _squeeze(r.out), (path, p.name, r.out)
    r = cli("log", "list", "--help")
    assert "  --limit N            At most this many entries (0 = all) [default: 50;\n" in r.out, r.out
    assert cli("--help").out.splitlines()[2] == "  Field toolkit for school-canteen (明厨亮灶) video surveillance: inventory,"
