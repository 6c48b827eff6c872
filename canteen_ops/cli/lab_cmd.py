"""`canteen-ops lab up | status | fault | set | faults | down`: the simulated device lab on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from canteen_ops.cli.common import JsonOpt, echo, env, print_json

HELP = "Device lab: simulated Hikvision / Dahua / ONVIF cameras and NVRs on loopback, with faults."
app = typer.Typer(help=HELP, rich_markup_mode=None, add_completion=False, no_args_is_help=True)

DirOpt = Annotated[Optional[Path], typer.Option(
    "--dir", metavar="DIR", envvar="CANTEEN_OPS_LAB_DIR", help="Lab directory (inventory, secrets, lab.json) [default: ./lab-run]")]


def _usage(info: dict, directory: Path, schools: int) -> str:
    from canteen_ops.i18n import _
    from canteen_ops.lab.control import DEFAULT_DIR

    dir_flag = "" if directory == Path(DEFAULT_DIR).resolve() else f" --dir {directory}"
    inv = info["inventory"]
    return (_("Lab running: {devices} devices in {schools} schools (pid {pid}, control {control}).").format(
                devices=info["devices"], schools=schools, pid=info["pid"], control=info["control"]) + "\n"
            + ("  " + _("replayed: {devices} (school replay)").format(devices=", ".join(info["replayed"])) + "\n"
               if info.get("replayed") else "")
            + "  " + _("inventory: {file}").format(file=inv) + "\n  "
            + _("passwords: {dir} (mode 600)").format(dir=directory / "secrets") + "\n\n"
            + _("Next:") + "\n"
            f"  export CANTEEN_OPS_INVENTORY={inv}\n"
            "  canteen-ops inventory list\n"
            "  canteen-ops check\n"
            "  # " + _("inject a fault (`canteen-ops lab faults` lists them), then clear it:") + "\n"
            f"  canteen-ops lab fault{dir_flag} s001-cam01 offline\n"
            f"  canteen-ops lab fault{dir_flag} s001-cam01 --clear\n"
            f"  canteen-ops lab status{dir_flag}\n"
            f"  canteen-ops lab down{dir_flag}\n")


@app.command()
def up(ctx: typer.Context,
       schools: Annotated[int, typer.Option(min=1, max=10_000, metavar="N", help="Number of schools")] = 3,
       cameras_per_school: Annotated[int, typer.Option(min=0, max=256, metavar="N", help="Cameras per school (each school also has an NVR)")] = 7,
       vendors: Annotated[str, typer.Option(metavar="LIST", help="Vendors, round robin per school")] = "hikvision,dahua,onvif",
       faults: Annotated[str, typer.Option(metavar="SPEC", help="Faults at start: DEVICE:FAULT[=VALUE][,...] (DEVICE may be a glob)")] = "",
       directory: DirOpt = None,
       foreground: Annotated[bool, typer.Option("--foreground", help="Run in this terminal (Ctrl-C stops)")] = False,
       first_address: Annotated[Optional[str], typer.Option(
           metavar="IP", help="First device address (then sequential) [default: 127.0.1.1, or the next free block "
           "when that one is taken]")] = None,
       http_port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT", help="HTTP port of every device")] = 8080,
       rtsp_port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT", help="RTSP port of every device")] = 8554,
       seed: Annotated[Optional[int], typer.Option(metavar="N", help="Random seed for serials and MACs")] = None,
       warm: Annotated[bool, typer.Option(help="Encode the stream pictures at start (once per machine; cached)")
                       ] = True,
       replay: Annotated[Optional[str], typer.Option(
           "--replay", metavar="FILES", help="Also serve recorded devices (comma list): capture files (device capture) "
           "or corpus model folders; they join the inventory as school `replay`")] = None) -> int:
    """Start a fleet of simulated devices, write its inventory, and print how to use it."""
    import argparse

    from canteen_ops.errors import UsageError
    from canteen_ops.lab import control
    from canteen_ops.lab.fleet import FleetError
    from canteen_ops.lab.service import build_from_args

    d = control.lab_dir(directory)
    replay_paths = _replay_paths(replay)
    e = env(ctx)
    if first_address is None:  # the default block may be taken (another lab, another user): move to a free one
        from canteen_ops.lab.fleet import FIRST_ADDRESS

        first_address, taken = control.free_block(schools * (cameras_per_school + 1) + len(replay_paths),
                                                  (http_port, rtsp_port),
                                                  FIRST_ADDRESS)
        if taken:
            from canteen_ops.i18n import _

            echo(_("The default address block is in use ({taken} is taken); using the free block from {first} "
                   "instead.").format(taken=taken, first=first_address), err=True)
    args = argparse.Namespace(schools=schools, cameras_per_school=cameras_per_school, vendors=vendors, faults=faults,
                              first_address=first_address, http_port=http_port, rtsp_port=rtsp_port, seed=seed)
    try:
        fleet = build_from_args(args)  # validate everything before starting anything
    except (FleetError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if foreground:
        return _foreground(fleet, d, schools, e, warm, replay_paths)
    argv = ["--schools", str(schools), "--cameras-per-school", str(cameras_per_school), "--vendors", vendors,
            "--faults", faults, "--first-address", first_address, "--http-port", str(http_port),
            "--rtsp-port", str(rtsp_port)] + (["--seed", str(seed)] if seed is not None else []) + (
            [] if warm else ["--no-warm"]) + (["--replay", ",".join(replay_paths)] if replay_paths else [])
    if not e.quiet and warm:
        from canteen_ops.i18n import _

        echo(_("Starting the lab (a first start encodes the stream pictures: up to a minute)…"), err=True)
    info = control.start_background(d, argv)
    if not e.quiet:
        echo(_usage(info, d, schools), nl=False)
    return 0


def _replay_paths(value: str | None) -> list[str]:
    """The --replay list, each one read now so a bad file is a clear error before anything starts."""
    from canteen_ops.errors import InvalidFile, NotFound, Problem
    from canteen_ops.lab.replay import ReplayError, load

    paths = []
    for item in (value or "").split(","):
        if not item.strip():
            continue
        p = Path(item.strip()).expanduser().resolve()
        if not p.exists():
            raise NotFound("--replay: {strip}: no such capture file or model folder", strip=item.strip())
        try:
            load(p)
        except ReplayError as exc:
            raise InvalidFile([Problem(str(p), 1, 1, "", str(exc).removeprefix(f"{p}: "))]) from None
        paths.append(str(p))
    return paths


def _foreground(fleet, directory: Path, schools: int, e, warm: bool, replay: list[str]) -> int:
    import asyncio

    from canteen_ops.errors import Unavailable
    from canteen_ops.lab import control
    from canteen_ops.lab.service import LabError, serve

    info = control.read_info(directory)
    if info is not None and control.pid_alive(int(info.get("pid", 0))):
        from canteen_ops.errors import LockHeld

        raise LockHeld("a lab is already running in {directory} (pid {pid})", directory=directory, pid=info['pid'])

    def ready(info, _service):
        if not e.quiet:
            echo(_usage(info, directory, schools) + "\nPress Ctrl-C to stop.")

    try:
        return asyncio.run(serve(fleet, directory, ready, warm, replay))
    except LabError as exc:
        raise Unavailable(str(exc)) from None
    except KeyboardInterrupt:
        return 0


@app.command()
def status(ctx: typer.Context, directory: DirOpt = None, json: JsonOpt = False) -> int:
    """Devices of the running lab: addresses, faults, lock state (never passwords)."""
    from canteen_ops.lab import control

    d = control.lab_dir(directory)
    st = control.request(control.running_info(d), "GET", "/status")
    if json:
        print_json(st)
        return 0
    from canteen_ops.cli.render import CODE, ID, Column, plural, table
    from canteen_ops.i18n import _

    rows = []
    for dev in st["devices"]:
        faults = ", ".join(k if v is None else f"{k}={v}" for k, v in dev["faults"].items())
        if dev["locked"]:
            faults = ", ".join(filter(None, [faults, "LOCKED"]))
        rows.append((dev["id"], dev["vendor"], dev["kind"], f"{dev['host']}:{dev['http_port']}", dev["model"],
                     faults or "-"))
    for dev in st.get("replayed", []):  # model names come from capture files: outside text (table() cleans it)
        rows.append((dev["id"], dev["vendor"], dev["kind"], f"{dev['host']}:{dev['http_port']}", dev["model"],
                     _("replay ({answered} answered, {unrecorded} not recorded)").format(
                         answered=dev["answered"], unrecorded=dev["unrecorded"])))
    title = _("Lab {dir} — pid {pid}, {devices}, {requests} served").format(
        dir=d, pid=st["pid"], devices=plural(len(st["devices"]), "device"), requests=plural(st["requests"], "request"))
    cols = [Column("device", ID), Column("vendor", CODE), Column("kind", CODE), Column("address", ID), Column("model"),
            Column("faults")]
    console = env(ctx).console
    console.print(table(title, cols, rows, console=console))
    return 0


@app.command()
def fault(ctx: typer.Context,
          device: Annotated[str, typer.Argument(metavar="DEVICE", help="Device id (or glob)")],
          fault_spec: Annotated[Optional[str], typer.Argument(metavar="FAULT[=VALUE]", help="e.g. offline, "
                                                              "clock-drift=+300, channel-offline=2")] = None,
          clear: Annotated[bool, typer.Option("--clear", help="Clear FAULT (or every fault when none is given)")
                           ] = False,
          directory: DirOpt = None) -> int:
    """Inject a fault into a running lab device, or clear it."""
    from canteen_ops.errors import UsageError
    from canteen_ops.lab import control
    from canteen_ops.i18n import _
    from canteen_ops.lab.state import UnknownFault, parse_fault

    info = control.running_info(control.lab_dir(directory))
    if clear:
        name = None
        if fault_spec:
            try:
                name = parse_fault(fault_spec)[0]
            except UnknownFault as exc:
                raise UsageError(str(exc)) from None
        ids = control.request(info, "POST", "/clear", {"device": device, "fault": name})["devices"]
        what = _("cleared {fault} on {devices}") if name else _("cleared all faults on {devices}")
    else:
        if not fault_spec:
            raise UsageError("give a FAULT[=VALUE] (see `canteen-ops lab faults`) or --clear")
        try:
            name, value = parse_fault(fault_spec)
        except UnknownFault as exc:
            raise UsageError(str(exc)) from None
        ids = control.request(info, "POST", "/fault", {"device": device, "fault": name, "value": value})["devices"]
        what = _("set {fault} on {devices}")
        name = name + (f"={value}" if value is not None else "")
    if not env(ctx).quiet:
        echo(what.format(fault=name, devices=", ".join(ids)))
    return 0


@app.command("set")
def set_(ctx: typer.Context,
         device: Annotated[str, typer.Argument(metavar="DEVICE", help="Device id (or glob)")],
         assignment: Annotated[str, typer.Argument(metavar="KEY=VALUE", help="e.g. ntp_server=10.0.0.9, "
                                                   "record_mode=motion, channel.1.width=1280")],
         directory: DirOpt = None) -> int:
    """Change a setting on a running lab device, as a technician would (to show config drift)."""
    from canteen_ops.errors import UsageError
    from canteen_ops.lab import control

    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise UsageError("expected KEY=VALUE, e.g. ntp_server=10.0.0.9")
    info = control.running_info(control.lab_dir(directory))
    ids = control.request(info, "POST", "/set", {"device": device, "key": key.strip(), "value": value.strip()})
    if not env(ctx).quiet:
        from canteen_ops.i18n import _

        echo(_("set {fault} on {devices}").format(fault=f"{key.strip()}={value.strip()}", devices=", ".join(ids["devices"])))
    return 0


@app.command()
def faults(ctx: typer.Context) -> int:
    """List the faults a lab device can be given."""
    from canteen_ops.cli.render import lines
    from canteen_ops.lab.state import FAULTS

    lines(env(ctx).console, list(FAULTS.items()), indent=0)  # meanings wrap under themselves
    return 0


@app.command()
def down(ctx: typer.Context, directory: DirOpt = None) -> int:
    """Stop the running lab and remove its files (inventory, secrets, lab.json)."""
    from canteen_ops.lab import control
    from canteen_ops.lab.service import cleanup

    d = control.lab_dir(directory)
    pid = control.stop(d)
    cleanup(d)
    if not env(ctx).quiet:
        from canteen_ops.i18n import _

        echo(_("lab stopped (pid {pid}); removed its files from {dir}").format(pid=pid, dir=d))
    return 0
