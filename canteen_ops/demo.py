"""`make demo`: a realistic tour against the built-in device lab, unattended, in about a minute or two.

It starts a lab fleet on loopback with a few faults a technician meets in real canteens (a greasy lens, a failing
disk, a drifting clock, an offline camera, short retention), then runs what the tool is for: a round of
the 7×24 watch that opens incidents for critical findings and announces them to a chat webhook on loopback (what
arrived is printed), the morning inspection (巡检), the nightly backup job, an emergency drill, and the
operations report. Everything lands in ./demo-run (maintenance log, backups, lab inventory); the lab is stopped
at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from canteen_ops.cli.app import run

FAULTS = ",".join([
    "s002-cam02:blurred",  # grease and steam on the lens
    "s002-nvr:hdd-error",  # a failing disk in the recorder
    "s002-cam04:clock-drift=+300",  # five minutes fast: useless as evidence
    "s003-cam05:offline",  # a camera that is gone
    "s003-nvr:retention=5",  # recordings reach back only 5 days (legal floor 7, policy 30)
])


def say(message: str, style: str = "") -> None:
    """A line of the tour, wrapped to the terminal's width (COLUMNS) in terminal cells."""
    from canteen_ops.cli.render import make_console, text

    make_console().print(text(message, style))


def step(title: str, *argv: str) -> int:
    if title:
        say(f"\n== {title}", "bold")
    say(f"$ canteen-ops {' '.join(argv)}")
    t0 = time.monotonic()
    code = run(list(argv))
    say(f"(exit {code}, {time.monotonic() - t0:.1f} s)")
    return code


def start_district(directory: Path):
    """The district's upstream: a real Datasette on loopback (installed with the test extras, as `make demo`
    does). Without it the nightly sync step just reports what waits to be sent."""
    try:
        from canteen_ops.lab.district import DatasetteServer

        server = DatasetteServer(directory).start()
        os.environ["CANTEEN_OPS_UPSTREAM"] = server.url
        os.environ["CANTEEN_OPS_UPSTREAM_TOKEN"] = server.token()
        say(f"district upstream (Datasette) at {server.url}")
        return server
    except Exception as exc:  # datasette missing or not starting: the demo goes on offline
        os.environ.pop("CANTEEN_OPS_UPSTREAM", None)
        say(f"no district upstream for this demo ({type(exc).__name__}); sync will report what waits")
        return None


def with_alerts(lab_inventory: Path, target: Path, hook_url: str) -> Path:
    """The lab's inventory plus a notify target (a webhook receiver on loopback standing in for the district's
    DingTalk group) and a duty roster, so the watch round below has someone to tell."""
    import yaml

    from canteen_ops.lab.fleet import DUTY_ROSTER

    data = yaml.safe_load(lab_inventory.read_text(encoding="utf-8"))
    os.environ["CANTEEN_OPS_DEMO_HOOK"] = hook_url
    data.setdefault("settings", {})["notify"] = [{"name": "district-group", "url_env": "CANTEEN_OPS_DEMO_HOOK"}]
    data["roster"] = DUTY_ROSTER
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    os.environ["CANTEEN_OPS_INVENTORY"] = str(target)
    return target


def show_arrived(receiver, first: int, limit: int = 3) -> None:
    got = receiver.wait_for(first + 1, timeout=5.0)[first:]
    say(f"\n{len(got)} notification(s) arrived at the district group's webhook ({receiver.url}):")
    from canteen_ops.cli.render import lines, make_console

    for g in got[:limit]:
        body = g["body"]
        lines(make_console(), [("┌", str(body.get("title")))]
              + [("│", line) for line in str(body.get("message", "")).splitlines()], indent=2, gap=1)
    if len(got) > limit:
        say(f"  … and {len(got) - limit} more")


def main() -> int:
    root = Path("demo-run").resolve()
    lab = root / "lab"
    if (lab / "lab.json").exists():
        run(["lab", "down", "--dir", str(lab)])
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    os.environ.update({
        "CANTEEN_OPS_DB": str(root / "maintenance-log.db"),
        "CANTEEN_OPS_INVENTORY": str(lab / "inventory.yaml"),
        "CANTEEN_OPS_LAB_DIR": str(lab),
        "CANTEEN_OPS_BACKUP_DIR": str(root / "backups"),
        "CANTEEN_OPS_OPERATOR": os.environ.get("CANTEEN_OPS_OPERATOR", "demo-technician"),
        # Tables follow the real terminal (rich falls back to 80 columns when output is piped).
        "COLUMNS": os.environ.get("COLUMNS") or str(shutil.get_terminal_size((80, 24)).columns),
    })
    t0 = time.monotonic()
    from canteen_ops.lab.webhook import WebhookReceiver

    receiver = WebhookReceiver().start()
    upstream = start_district(root / "district")
    code = step("Start the device lab: 3 schools (Hikvision, Dahua, ONVIF), 21 devices on 127.0.60.x",
                "lab", "up", "--dir", str(lab), "--first-address", "127.0.60.1", "--schools", "3", "--cameras-per-school", "6", "--faults", FAULTS)
    if code:
        receiver.stop()
        return code
    try:
        with_alerts(lab / "inventory.yaml", root / "inventory.yaml", receiver.url)
        step("The device ledger (设备台帐)", "inventory", "list")
        step("Who is on duty (定岗值班)", "oncall")
        step("Round-the-clock watch (7×24 远程监测), one round: critical faults become incidents, assigned to the "
             "technician on duty and announced", "watch", "--iterations", "1", "--skip", "stream,picture",
             "--metrics", str(root / "canteen-ops.prom"))
        show_arrived(receiver, 0)
        seen = len(receiver.received)
        step("Morning inspection (每日巡检): every check incl. picture quality; incidents for critical faults",
             "playbook", "run", "daily-inspection", "--non-interactive")
        step("Open incidents and their on-site deadlines", "incident", "list")
        step("Each failing check names its knowledge-base entry (知识库): the failing disk of 第二 school's NVR",
             "check", "--only", "storage", "--device", "s002-nvr")
        step("", "kb", "show", "KB-HDD-ERROR")
        step("Commissioning: take a config snapshot of every device and accept it as the baseline",
             "snapshot", "take")
        step("", "snapshot", "accept", "--all")
        step("Somebody points the 烹饪区 camera of 第一实验小学 at another time server and lowers it to 720p",
             "lab", "set", "s001-cam02", "ntp_server=127.0.0.99")
        step("", "lab", "set", "s001-cam02", "channel.1.width=1280")
        step("Nightly job: backups, snapshots, drift, firmware, verification, sync to the district's Datasette",
             "playbook", "run", "nightly-backup", "--non-interactive")
        step("What reached the district server", "sync", "status")
        step("What changed on that camera since the baseline", "snapshot", "diff", "s001-cam02")
        step("Emergency drill (应急演练): the NVR of 第一实验小学 goes offline",
             "playbook", "run", "drill-nvr-offline", "--non-interactive")
        step("Operations report for today", "report", "--from", "1d", "--format", "md")
        step("The maintenance log, newest first", "log", "list", "--limit", "12")
        say("\n== Later notifications, each sent as its command ended: the drill's incident and verdict, failed jobs",
            "bold")
        show_arrived(receiver, seen)
    finally:
        receiver.stop()
        run(["lab", "down", "--dir", str(lab)])
        if upstream is not None:
            upstream.stop()
    say(f"\nDemo finished in {time.monotonic() - t0:.0f} s. Everything is in {root}:"
        f"\n  maintenance log  {root / 'maintenance-log.db'}\n  backups          {root / 'backups'}"
        f"\n  metrics          {root / 'canteen-ops.prom'}"
        "\nTry:\n  CANTEEN_OPS_DB=demo-run/maintenance-log.db \\\n    .venv/bin/canteen-ops log list --kind incident")
    return 0


if __name__ == "__main__":
    sys.exit(main())
