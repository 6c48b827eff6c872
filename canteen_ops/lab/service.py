"""A running lab: the fleet's devices served from one asyncio loop, plus a small JSON control endpoint.

Three ways to run it, all the same code:
- `LabService.run_forever()` in the foreground (`canteen-ops lab up --foreground`, or the detached child
  process that `lab up` starts: `python -m canteen_ops.lab.service --dir DIR ...`);
- `LabThread`, a background thread with its own loop (the pytest fixture);
- benchmarks build a LabService directly.

Control endpoint (127.0.0.1, random port, every request carries the token from lab.json, mode 600):
  GET  /status                       devices, addresses, faults (never passwords)
  POST /fault {device, fault, value}  set a fault (device may be a glob)
  POST /clear {device, fault|null}    clear one fault or all
  POST /set   {device, key, value}    change a setting (config drift)
  POST /down                          stop the lab
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from canteen_ops.lab.fleet import Fleet, FleetError
from canteen_ops.fdlimit import raise_open_files
from canteen_ops.lab.replay import ReplayError
from canteen_ops.lab.http import LabHTTP, Request, read_request, BadRequest
from canteen_ops.lab.state import STREAM_FAULTS, DeviceState, UnknownFault

log = logging.getLogger(__name__)


class LabError(Exception):
    pass


# Lab fault names → the RTSP server's; one picture fault per stream, the most visible wins. (low-res is not a
# picture fault: the device's advertised size, which the stream follows, already says 1280x720.)
RTSP_FAULT = {"no-stream": "no_stream", "black": "black", "covered": "covered", "frozen": "frozen",
              "blurred": "blurred", "colour-cast": "colour_cast"}
RTSP_FAULT_PRIORITY = ("no-stream", "black", "covered", "frozen", "blurred", "colour-cast")


class LabService:
    """Owns the loop-side objects: HTTP endpoints, the control server, and (when available) RTSP streams."""

    def __init__(self, fleet: Fleet, token: str | None = None, rtsp: bool = True,
                 rtsp_cache_dir: str | Path | None = None):
        self.fleet = fleet
        self.rtsp_enabled = rtsp
        self.rtsp_cache_dir = rtsp_cache_dir
        self._listener_fault: dict[str, str | None] = {}
        self._feeds: dict[str, list[tuple[DeviceState, Any]]] = {}  # camera host → [(nvr, channel)]
        self._reconciler: asyncio.Task | None = None
        self._streams: dict[tuple[str, int], Any] = {}  # (device id, channel id) → rtsp.Stream
        self.devices: dict[str, DeviceState] = {d.id: d for d in fleet.devices}
        self.replayed: list = []  # [(device id, lab.replay.ReplayServer)] from `lab up --replay`
        self._by_host: dict[str, DeviceState] = {d.host: d for d in fleet.devices}
        self.http = LabHTTP()
        self.token = token or secrets.token_urlsafe(24)
        self.control_server: asyncio.AbstractServer | None = None
        self.control_port: int | None = None
        self.rtsp: Any = None
        self.started = time.time()
        self._stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle (on the loop) --------------------------------------------------------------------------
    async def start(self, control: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Per device: HTTP and RTSP listeners, and a client connection or two to each while checks run.
        raise_open_files(6 * len(self.devices) + 256)
        try:
            for d in self.devices.values():
                await self.http.add(d)
        except OSError as exc:
            await self.http.close()
            raise LabError(str(exc.strerror or exc)) from None
        try:
            await self._start_rtsp()
        except OSError as exc:
            await self.stop()
            raise LabError(f"cannot start the RTSP streams: {exc.strerror or exc}") from None
        if control:
            self.control_server = await asyncio.start_server(self._control, "127.0.0.1", 0)
            self.control_port = self.control_server.sockets[0].getsockname()[1]

    async def _start_rtsp(self) -> None:
        """One RTSP stream per camera and per NVR channel, on the device's own address and RTSP port."""
        for d in self.devices.values():
            if d.kind == "nvr":
                for ch in d.channels:
                    if ch.ip:
                        self._feeds.setdefault(ch.ip, []).append((d, ch))
        if not self.rtsp_enabled:
            return
        from canteen_ops.lab.rtsp import RtspServer

        self.rtsp = RtspServer(cache_dir=self.rtsp_cache_dir)
        for d in self.devices.values():
            hooks = {"credentials_source": self._credentials_hook(d), "on_login": self._login_hook(d),
                     "auth": d.auth}
            for ch in d.channels:
                w, h = d.stream_size(ch)
                self._streams[(d.id, ch.id)] = await self.rtsp.add_stream(
                    d.host, d.rtsp_port, ch.rtsp_path, w, h, ch.fps, **hooks)
                sub = d.sub_stream_path(ch)
                if sub:  # the sub-stream the device advertises (ISAPI 102, Dahua ExtraFormat, ONVIF profile)
                    self._streams[(d.id, -ch.id)] = await self.rtsp.add_stream(
                        d.host, d.rtsp_port, sub, *d.SUB_SIZE, ch.fps, **hooks)
        for d in self.devices.values():
            await self._sync_rtsp(d)
        self._reconciler = asyncio.ensure_future(self._reconcile_forever())

    async def warm_streams(self, timeout: float = 300.0) -> int:
        """Encode every distinct picture loop the streams show now (a first DESCRIBE would wait for it).

        Loops are cached on disk, so this costs seconds of CPU once per machine and milliseconds afterwards.
        Returns how many loops are ready; a loop that fails or is late is encoded on demand later.
        """
        if self.rtsp is None:
            return 0
        keys = sorted({st.loop_key() for st in self.rtsp.streams.values()})
        return await self._encode(keys, timeout)

    async def warm_fault_pictures(self) -> int:
        """Encode, one after another, the loops every stream fault would show, so that a fault injected later
        (a drill, a test) changes the picture at once instead of after seconds of encoding. Meant to run in
        the background after start; cached on disk like every loop."""
        if self.rtsp is None:
            return 0
        from canteen_ops.lab.rtsp import PICTURE_FAULTS

        keys = sorted({st.loop_key_for(f) for st in self.rtsp.streams.values()
                       for f in (*PICTURE_FAULTS, "low_resolution")})
        ready = 0
        for key in keys:  # sequentially: warming must not starve the devices' own work of CPU
            ready += await self._encode([key], timeout=300.0)
        return ready

    async def _encode(self, keys: list, timeout: float) -> int:
        if not keys:
            return 0
        done = await asyncio.wait([asyncio.ensure_future(self.rtsp._loop_for(k)) for k in keys], timeout=timeout)
        ready = sum(1 for t in done[0] if not t.cancelled() and t.exception() is None)
        for t in done[0]:
            if not t.cancelled() and t.exception() is not None:
                log.warning("could not encode a picture loop: %s", t.exception())
        return ready

    async def _reconcile_forever(self, every_s: float = 1.0) -> None:
        """Protocol handlers change settings directly (ISAPI PUT, Dahua setConfig); streams follow within 1 s.

        Cheap (a few attribute writes per stream, ~3 ms per pass for 1,000 devices); listener faults only change
        with faults, which go through _sync_rtsp at once.
        """
        while True:
            await asyncio.sleep(every_s)
            for d in list(self.devices.values()):
                try:
                    self._sync_streams(d)
                except Exception:  # never let one device stop the others from being reconciled
                    log.exception("RTSP reconcile failed for %s", d.id)

    async def _sync_rtsp(self, d: DeviceState) -> None:
        """Make the device's listener and streams (and the NVR channels it feeds) match its state and faults."""
        for nvr, ch in self._feeds.get(d.host, ()):  # an NVR loses a camera that went away
            if nvr is not d:
                ch.online = not (d.has("offline") or d.has("blackhole"))
        if self.rtsp is None:
            return
        listener = "offline" if d.has("offline") else "black_hole" if d.has("blackhole") else None
        if self._listener_fault.get(d.id) != listener:
            await self.rtsp.set_listener_fault(d.host, d.rtsp_port, listener)
            self._listener_fault[d.id] = listener
        self._sync_streams(d)
        for nvr, _ch in self._feeds.get(d.host, ()):
            if nvr is not d:
                self._sync_streams(nvr)

    def _sync_streams(self, d: DeviceState) -> None:
        for ch in d.channels:
            fault = self._stream_fault(d, ch) if (d.faults or d.kind == "nvr") else None
            for key in ((d.id, ch.id), (d.id, -ch.id)):
                stream = self._streams.get(key)
                if stream is None:
                    continue
                if key[1] > 0:
                    stream.width, stream.height = d.stream_size(ch)
                stream.fps, stream.auth, stream.fault = float(ch.fps), d.auth, fault

    @staticmethod
    def _credentials_hook(d: DeviceState):
        """RTSP shares the device's account and its illegal-login lock: while locked nothing matches."""
        locked_out = secrets.token_hex(16)
        return lambda: (d.username, locked_out if d.is_locked() else d.effective_password)

    @staticmethod
    def _login_hook(d: DeviceState):
        """Failed RTSP logins count toward the device's lock, as on the cameras (not while already locked)."""
        def on_login(ok: bool) -> None:
            if not d.is_locked():
                d.record_login(ok)
        return on_login

    def _stream_fault(self, d: DeviceState, ch: Any) -> str | None:
        """The picture fault a stream shows: the device's own, or for an NVR channel also its camera's."""
        faults = set(d.faults) & set(STREAM_FAULTS)
        if d.kind == "nvr":
            if not d.channel_online(ch):
                faults.add("no-stream")  # video loss
            cam = self._by_host.get(ch.ip or "")
            if cam is not None and cam is not d:
                faults |= set(cam.faults) & set(STREAM_FAULTS)
        for name in RTSP_FAULT_PRIORITY:
            if name in faults:
                return RTSP_FAULT[name]
        return None

    async def stop(self) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            self._reconciler = None
        if self.rtsp is not None:
            await self.rtsp.close()
            self.rtsp = None
        if self.control_server is not None:
            self.control_server.close()
            self.control_server = None
        await self.http.close()
        if self._stop is not None:
            self._stop.set()

    async def wait_stopped(self) -> None:
        assert self._stop is not None
        await self._stop.wait()

    # --- operations (on the loop) ---------------------------------------------------------------------------
    def _match(self, pattern: str) -> list[DeviceState]:
        found = self.fleet.match(pattern)
        if not found:
            raise LabError(f"no lab device matches {pattern!r}")
        return found

    async def set_fault(self, pattern: str, fault: str, value: str | None = None) -> list[str]:
        devices = self._match(pattern)
        for d in devices:
            d.set_fault(fault, value)
        for d in devices:
            await self._sync(d)
        return [d.id for d in devices]

    async def clear_fault(self, pattern: str, fault: str | None = None) -> list[str]:
        devices = self._match(pattern)
        for d in devices:
            d.clear_fault(fault)
            await self._sync(d)
        return [d.id for d in devices]

    async def set_setting(self, pattern: str, key: str, value: str) -> list[str]:
        devices = self._match(pattern)
        for d in devices:
            d.set_setting(key, value)
            await self._sync_rtsp(d)
        return [d.id for d in devices]

    async def _sync(self, d: DeviceState) -> None:
        await self.http.sync(d.id)
        await self._sync_rtsp(d)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "started": self.started, "control_port": self.control_port,
            "requests": self.http.requests,
            "replayed": [{"id": dev_id, "vendor": s.device.vendor, "kind": s.device.kind, "host": s.host,
                          "http_port": s.port, "model": s.device.model, "source": s.device.source,
                          "answered": len(s.replayer.served), "unrecorded": len(s.replayer.unanswered)}
                         for dev_id, s in self.replayed],
            "devices": [{
                "id": d.id, "kind": d.kind, "vendor": d.vendor, "host": d.host, "http_port": d.http_port,
                "rtsp_port": d.rtsp_port, "model": d.model, "serial": d.serial, "firmware": d.effective_firmware,
                "name": d.name, "faults": dict(d.faults), "locked": d.is_locked(), "failed_logins": d.failed_logins,
                "channels": len(d.channels),
                "rtsp": [f"rtsp://{d.host}:{d.rtsp_port}{ch.rtsp_path}" for ch in d.channels],
            } for d in self.devices.values()],
        }

    # --- control endpoint ------------------------------------------------------------------------------------
    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    req = await asyncio.wait_for(read_request(reader, "127.0.0.1"), 30)
                except BadRequest as exc:
                    await self._reply(writer, exc.status, {"error": str(exc)}, close=True)
                    return
                if req is None:
                    return
                status, body = await self._dispatch(req)
                await self._reply(writer, status, body)
                if req.path == "/down" and status == 200:
                    asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.stop()))
                    return
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: dict, close: bool = False) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json"
                     f"\r\nContent-Length: {len(data)}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n"
                     .encode() + data)
        await writer.drain()

    async def _dispatch(self, req: Request) -> tuple[int, dict]:
        if not hmac.compare_digest(req.headers.get("x-lab-token", ""), self.token):
            return 403, {"error": "bad or missing lab token"}
        try:
            args = json.loads(req.body or b"{}")
            if not isinstance(args, dict):
                raise ValueError("body must be a JSON object")
            if req.method == "GET" and req.path == "/status":
                return 200, self.status()
            if req.method != "POST":
                return 404, {"error": f"unknown endpoint {req.method} {req.path}"}
            if req.path == "/fault":
                ids = await self.set_fault(str(args["device"]), str(args["fault"]),
                                           None if args.get("value") is None else str(args["value"]))
            elif req.path == "/clear":
                ids = await self.clear_fault(str(args["device"]), args.get("fault") or None)
            elif req.path == "/set":
                ids = await self.set_setting(str(args["device"]), str(args["key"]), str(args["value"]))
            elif req.path == "/down":
                return 200, {"stopping": True}
            else:
                return 404, {"error": f"unknown endpoint {req.method} {req.path}"}
            return 200, {"devices": ids}
        except (KeyError, TypeError) as exc:
            return 400, {"error": f"missing or bad argument: {exc}"}
        except (ValueError, LabError, UnknownFault) as exc:
            return 400, {"error": str(exc)}


class LabThread:
    """Run a LabService on a background thread with its own event loop; thread-safe control methods."""

    def __init__(self, fleet: Fleet, control: bool = False, **service_kwargs: Any):
        self.service = LabService(fleet, **service_kwargs)
        self._control = control
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="canteen-lab", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.service.start(self._control))
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_until_complete(self.service.wait_stopped())
        finally:
            # background work (an RTSP picture loop still encoding) is cancelled, not awaited
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def start(self, timeout: float = 30.0) -> "LabThread":
        self._thread.start()
        if not self._ready.wait(timeout):
            raise LabError("lab did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def call(self, coro_fn, *args, timeout: float = 10.0):
        """Run a LabService coroutine method on the lab's loop from another thread."""
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self._loop).result(timeout)

    def set_fault(self, device: str, fault: str, value: str | None = None) -> list[str]:
        return self.call(self.service.set_fault, device, fault, value)

    def clear_fault(self, device: str, fault: str | None = None) -> list[str]:
        return self.call(self.service.clear_fault, device, fault)

    def set_setting(self, device: str, key: str, value: str) -> list[str]:
        return self.call(self.service.set_setting, device, key, value)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.service.stop(), self._loop).result(timeout)
            self._thread.join(timeout)


# --- the lab process ----------------------------------------------------------------------------------------------
def lab_files(directory: Path) -> dict[str, Path]:
    return {"json": directory / "lab.json", "inventory": directory / "inventory.yaml",
            "catalog": directory / "firmware-catalog.yaml", "secrets": directory / "secrets",
            "log": directory / "lab.log"}


def cleanup(directory: Path, keep_log: bool = False) -> None:
    """Remove what `lab up` wrote (inventory, catalog, secrets, lab.json, log) and the directory if then empty."""
    files = lab_files(directory)
    for key in ("json", "inventory", "catalog") + (() if keep_log else ("log",)):
        files[key].unlink(missing_ok=True)
    if files["secrets"].is_dir():
        for p in files["secrets"].glob("*.password"):
            p.unlink(missing_ok=True)
        try:
            files["secrets"].rmdir()
        except OSError:
            pass
    try:
        directory.rmdir()
    except OSError:
        pass


def build_from_args(a: argparse.Namespace) -> Fleet:
    from canteen_ops.lab.fleet import apply_fault_specs, build_fleet

    fleet = build_fleet(a.schools, a.cameras_per_school, tuple(v.strip() for v in a.vendors.split(",") if v.strip()),
                        first_address=a.first_address, http_port=a.http_port, rtsp_port=a.rtsp_port, seed=a.seed)
    apply_fault_specs(fleet, a.faults or "")
    return fleet


def arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m canteen_ops.lab.service", description="Run a canteen-ops device lab")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--schools", type=int, default=3)
    p.add_argument("--cameras-per-school", type=int, default=7)
    p.add_argument("--vendors", default="hikvision,dahua,onvif")
    p.add_argument("--faults", default="")
    p.add_argument("--first-address", default="127.0.1.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--rtsp-port", type=int, default=8554)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-warm", action="store_true", help="do not pre-encode the stream pictures at start")
    p.add_argument("--replay", default="", help="recorded devices to serve too: model folders or capture files, "
                   "comma-separated")
    return p


def replay_first_address(fleet: Fleet) -> str:
    """The loopback address after the fleet's last device: where recorded devices go."""
    import ipaddress

    return str(max(ipaddress.ip_address(d.host) for d in fleet.devices) + 1)


async def serve(fleet: Fleet, directory: Path, ready=None, warm: bool = True, replay: list[str] | None = None) -> int:
    """Run until `lab down` or SIGTERM/SIGINT: write the inventory, start serving (the recorded devices of
    `replay` too, lab/replay.py), then publish lab.json."""
    from canteen_ops.lab import replay as rp
    from canteen_ops.lab.fleet import write_inventory
    from canteen_ops.store.files import atomic_write

    from platformdirs import user_cache_dir

    service = LabService(fleet, rtsp_cache_dir=Path(user_cache_dir("canteen-ops")) / "rtsp-loops")
    replayed: list = []
    try:
        recorded = rp.load_all(replay or [])
        inventory = write_inventory(fleet, directory)
        if recorded:
            replayed = rp.start_all(recorded, replay_first_address(fleet), fleet.devices[0].http_port)
            rp.add_to_inventory(inventory, replayed)
            service.replayed = replayed
        await service.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(service.stop()))
        if warm:
            if ready is not None:
                print("Preparing the stream pictures (encoded once per machine, then cached)...", flush=True)
            await service.warm_streams()
            if service._stop.is_set():  # stopped while preparing
                return 0
        # The fleet's state lives as long as the lab: keep the garbage collector from walking it again on every
        # full collection (~10 % of the lab's CPU while a 1,000-device check runs).
        gc.freeze()
        info = {"pid": os.getpid(), "control": f"127.0.0.1:{service.control_port}", "token": service.token,
                "inventory": str(inventory), "devices": len(service.devices) + len(replayed),
                "replayed": [dev_id for dev_id, _ in replayed], "started": service.started}
        atomic_write(lab_files(directory)["json"], json.dumps(info, indent=2).encode(), mode=0o600)
        if ready is not None:
            ready(info, service)
        # Faults injected later (drills, `lab fault`) then change the picture at once.
        background = asyncio.ensure_future(service.warm_fault_pictures()) if warm else None
        await service.wait_stopped()
    finally:
        if warm and "background" in locals() and background is not None:
            background.cancel()
        await service.stop()
        for _, server in replayed:
            server.stop()
        cleanup(directory, keep_log=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    a = arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        fleet = build_from_args(a)
        replay = [p for p in a.replay.split(",") if p.strip()]
        return asyncio.run(serve(fleet, a.dir.resolve(), warm=not a.no_warm, replay=replay))
    except (FleetError, LabError, ReplayError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 65 if isinstance(exc, (FleetError, ReplayError)) else 69


if __name__ == "__main__":
    sys.exit(main())
