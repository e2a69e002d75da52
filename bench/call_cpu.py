"""Python CPU per routed inbound call, without Asterisk: where callcore's own process spends its time.

Run: ``nice -n 10 .venv/bin/python bench/call_cpu.py`` (≈ 20 s). It drives the real code of one process —
``ari.stream`` frame handling and ``ari.events`` parsing, the ``ari.dispatch`` ordered dispatcher, the call
runtime, the IVR runner with one ``queue`` node, the ACD service, the ``TeeSink`` to the ``EventWriter`` and the
live-event hub, structlog configured as a service (JSON, info, into a file) — with the call of
``bench/routing_latency.py`` (b): caller → DID 8000 → queue ``bench`` with 20 agents → the agent's phone answers
at once → bridged → the agent hangs up → callcore hangs the caller up.

Only Asterisk is fake, at the two edges of callcore's process:

* ARI events are JSON text frames, built from the frames Asterisk 22 really sent (tests/data/ari_events.jsonl,
  recorded by scripts/record-ari-events.py) with this call's ids, fed to ``AriEventStream`` as the WebSocket
  would: the 15 frames the app's event filter lets through per call (StasisStart ×2, ChannelStateChange ×3,
  ChannelEnteredBridge ×2, then per channel ChannelHangupRequest, ChannelLeftBridge, StasisEnd, ChannelDestroyed);
* REST requests are answered in process by ``AriClient.request`` (canned JSON, decoded as the client does), and
  produce the frames Asterisk would send for them. aiohttp's HTTP and WebSocket transport is therefore *not*
  counted; nor is PostgreSQL: the writer gets a pool that accepts every batch, so its Python side (batching, the
  projection, JSON payloads) is counted but not asyncpg's encoding nor the network (``bench/events.py`` measures
  the writer against a real PostgreSQL).

Measures: ``time.process_time()`` over ``--calls`` calls (after ``--warmup`` calls), ``--concurrency`` calls in
progress at a time, ``--rounds`` rounds (the median is reported); then one more run under cProfile whose top
functions (cumulative and own time) go to ``--profile-out``.

``--baseline REV`` also measures callcore's source as of git revision REV (or only ``--baseline-paths`` of it,
the rest from the working tree), in subprocesses, rounds interleaved with the current tree's: a before/after
from one run. ``--src DIR`` runs against the ``callcore`` package under DIR (used by ``--baseline``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ROOT / "tests" / "data" / "ari_events.jsonl"
AGENTS = 20
DID = "8000"


def _src_from_argv() -> str:
    """``--src`` must take effect before callcore is imported, so it is read before argparse runs."""
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == "--src" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--src="):
            return a.split("=", 1)[1]
    return str(ROOT / "src")


sys.path.insert(0, _src_from_argv())
sys.path.insert(1, str(ROOT))


# ---------------------------------------------------------------- frames


class Frames:
    """Per-call ARI frames as %-format templates made from the recorded Asterisk 22 frames.

    The recorded ids, names and numbers become placeholders, so producing a frame costs one string format:
    the fake's own CPU stays small next to callcore's (measured and reported apart: ``cost_per_call``)."""

    REC_CALLER, REC_LEG, REC_BRIDGE = "1795480806.1", "7917ca84-5b23-4cc4-ae22-0f26ba4de7d4", \
        "df7b2641-5d29-4819-a7e0-468157e40b31"

    def __init__(self) -> None:
        rec = [json.loads(line) for line in FRAMES.read_text().splitlines()]
        first = {}
        for i, f in enumerate(rec):
            first.setdefault((f["type"], _chan_id(f)), i)

        def pick(type_: str, chan: str | None, nth: int = 0) -> dict[str, Any]:
            hits = [f for f in rec if f["type"] == type_ and _chan_id(f) == chan]
            return json.loads(json.dumps(hits[nth]))

        caller_ss = pick("StasisStart", self.REC_CALLER)
        leg_ss = pick("StasisStart", self.REC_LEG)
        templates: dict[str, dict[str, Any]] = {
            "caller_start": caller_ss,
            "leg_ringing": pick("ChannelStateChange", self.REC_LEG, 0),
            "leg_up": pick("ChannelStateChange", self.REC_LEG, 1),
            "leg_start": leg_ss,
            "caller_up": pick("ChannelStateChange", self.REC_CALLER, 0),
            "caller_enters": pick("ChannelEnteredBridge", self.REC_CALLER),
            "leg_enters": pick("ChannelEnteredBridge", self.REC_LEG),
            "leg_hangup": pick("ChannelHangupRequest", self.REC_LEG),
            "leg_leaves": pick("ChannelLeftBridge", self.REC_LEG),
            "leg_end": pick("StasisEnd", self.REC_LEG),
            "leg_destroyed": pick("ChannelDestroyed", self.REC_LEG),
            "caller_hangup": pick("ChannelHangupRequest", self.REC_CALLER),
            "caller_leaves": pick("ChannelLeftBridge", self.REC_CALLER),
            "caller_end": pick("StasisEnd", self.REC_CALLER),
        }
        # The caller's ChannelDestroyed was not recorded (no subscription then): the leg's, with the caller's channel.
        destroyed = json.loads(json.dumps(templates["leg_destroyed"]))
        destroyed["channel"] = json.loads(json.dumps(templates["caller_end"]["channel"]))
        templates["caller_destroyed"] = destroyed
        # A remote BYE (the agent hangs up) comes without a cause; the cause follows in ChannelDestroyed.
        for key in ("cause", "soft"):
            templates["leg_hangup"].pop(key, None)
        caller_ss["args"] = ["inbound", DID]
        leg_ss["args"] = ["leg", "@CALLID@"]
        for t in templates.values():
            for ch in [t.get("channel")]:
                if ch is None:
                    continue
                if ch["id"] == self.REC_CALLER:
                    ch["caller"] = {"name": "@NUMBER@", "number": "@NUMBER@"}
                    ch["dialplan"]["exten"] = DID
                    ch["dialplan"]["app_data"] = f"callcore,inbound,{DID}"
                    ch["name"] = "PJSIP/trunk-@SEQ@"
                else:
                    ch["caller"] = {"name": "", "number": "@NUMBER@"}
                    ch["name"] = "PJSIP/@AGENT@-@SEQ@"
                    if ch["dialplan"]["app_name"] == "Stasis":
                        ch["dialplan"]["app_data"] = "callcore,leg,@CALLID@"
            if "bridge" in t:
                t["bridge"]["channels"] = [c.replace(self.REC_CALLER, "@CALLER@").replace(self.REC_LEG, "@LEG@")
                                           for c in t["bridge"]["channels"]]
        self.templates = {name: _format_string(json.dumps(t)) for name, t in templates.items()}
        # REST responses: an originate returns the new channel (state Down); a bridge create, the bridge.
        leg_down = json.loads(json.dumps(templates["leg_ringing"]["channel"]))
        leg_down["state"] = "Down"
        self.originated = _format_string(json.dumps(leg_down))
        bridge = json.loads(json.dumps(templates["caller_enters"]["bridge"]))
        bridge["channels"] = []
        self.bridge = _format_string(json.dumps(bridge))

    def frame(self, name: str, ids: dict[str, str]) -> str:
        return self.templates[name] % ids


def _chan_id(frame: dict[str, Any]) -> str | None:
    ch = frame.get("channel")
    return ch.get("id") if isinstance(ch, dict) else None


def _format_string(text: str) -> str:
    text = text.replace("%", "%%")
    for token, key in (("@CALLER@", "caller"), ("@LEG@", "leg"), ("@BRIDGE@", "bridge"), ("@NUMBER@", "number"),
                       ("@CALLID@", "call_id"), ("@AGENT@", "agent"), ("@SEQ@", "seq")):
        text = text.replace(token, f"%({key})s")
    text = text.replace(Frames.REC_CALLER, "%(caller)s").replace(Frames.REC_LEG, "%(leg)s")
    return text.replace(Frames.REC_BRIDGE, "%(bridge)s")


# ---------------------------------------------------------------- fake Asterisk (REST side)


def make_fake_ari(frames: Frames, hold: float) -> Any:
    from callcore.ari.client import AriClient, _query

    class BenchAri(AriClient):
        """Answers callcore's REST requests like Asterisk would, and sends the frames they cause."""

        def __init__(self) -> None:
            super().__init__("http://127.0.0.1:8088", "callcore", "bench", "callcore")
            self.feed: Any = None  # the stream's frame handler
            self.requests: dict[str, int] = {}
            self.calls: dict[str, dict[str, str]] = {}  # channel id (caller or leg) -> the call's ids
            self.on_call_end: Any = None
            self._loop = asyncio.get_running_loop()

        def send(self, name: str, ids: dict[str, str]) -> None:
            self._loop.call_soon(self.feed, frames.frame(name, ids))

        def new_call(self, n: int) -> None:
            ids = {"caller": f"1795{n:06d}.{n}", "number": f"+3120000{n}", "seq": f"{n:08x}", "leg": "",
                   "call_id": "", "agent": "", "bridge": ""}
            self.calls[ids["caller"]] = ids
            self.send("caller_start", ids)

        async def request(self, method: str, path: str, params: Any = None, body: Any = None) -> Any:
            q = _query(params)  # what the real client sends (its cost is callcore's)
            parts = path.split("/")
            key = f"{method} /{parts[1]}" + (f"/{{id}}/{parts[3]}" if len(parts) > 3 else "/{id}" if len(parts) > 2 else "")
            self.requests[key] = self.requests.get(key, 0) + 1
            if key == "POST /channels":
                ids = self.calls[q["originator"]]
                ids["leg"], ids["call_id"] = q["channelId"], q["appArgs"].split(",")[1]
                ids["agent"] = q["endpoint"].split("/")[1]
                self.calls[ids["leg"]] = ids
                for name in ("leg_ringing", "leg_up", "leg_start"):
                    self.send(name, ids)
                return json.loads(frames.originated % ids)
            if key == "POST /channels/{id}/answer":
                self.send("caller_up", self.calls[parts[2]])
                return None
            if key == "POST /bridges":
                return json.loads(frames.bridge % {"bridge": q["bridgeId"]})
            if key == "POST /bridges/{id}/addChannel":
                ids = self.calls[q["channel"].split(",")[0]]
                ids["bridge"] = parts[2]
                self.send("caller_enters", ids)
                self.send("leg_enters", ids)
                # The agent's phone hangs up after ``hold`` seconds (a remote BYE).
                self._loop.call_later(hold, self._agent_hangs_up, ids)
                return None
            if key == "DELETE /channels/{id}":
                ids = self.calls[parts[2]]
                if parts[2] == ids["caller"]:
                    for name in ("caller_hangup", "caller_leaves", "caller_end", "caller_destroyed"):
                        self.send(name, ids)
                    self._loop.call_soon(self._ended, ids)
                return None
            if key in ("POST /channels/{id}/moh", "DELETE /channels/{id}/moh", "DELETE /bridges/{id}"):
                return None
            raise AssertionError(f"the bench's fake ARI does not know {method} {path}")

        def _agent_hangs_up(self, ids: dict[str, str]) -> None:
            for name in ("leg_hangup", "leg_leaves", "leg_end", "leg_destroyed"):
                self.send(name, ids)

        def _ended(self, ids: dict[str, str]) -> None:
            self.calls.pop(ids["caller"], None)
            self.calls.pop(ids["leg"], None)
            self.on_call_end()

    return BenchAri()


class FakePool:
    """An asyncpg-like pool that commits every batch at once (the writer's Python side runs in full)."""

    def acquire(self) -> Any:
        return _Ctx(_FakeConn())


class _Ctx:
    def __init__(self, value: Any) -> None:
        self.value = value

    async def __aenter__(self) -> Any:
        return self.value

    async def __aexit__(self, *exc: object) -> None:
        return None


class _FakeConn:
    def transaction(self) -> _Ctx:
        return _Ctx(None)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [{"event_id": e} for e in args[0]]  # every event inserted

    async def execute(self, sql: str, *args: Any) -> str:
        return "OK"


# ---------------------------------------------------------------- one measurement


def config_text(state_dir: Path) -> str:
    import yaml

    return yaml.safe_dump({
        "state_dir": str(state_dir),
        "ari": {"password": "bench"},
        "logging": {"format": "json", "level": "info"},
        "inbound": {"dids": {DID: "bench"}},
        "skills": ["support"],
        "agents": {f"agent{n:02d}": {"endpoint": f"PJSIP/agent{n:02d}", "skills": {"support": 5},
                                     "queues": ["bench"], "login_at_start": True} for n in range(1, AGENTS + 1)},
        "queues": {"bench": {"required_skills": {"support": 1}, "ring_timeout": 15, "wrap_up_seconds": 0}},
        "flows": {"bench": {"start": "q", "nodes": {"q": {"type": "queue", "queue": "bench"}}}},
    })


async def measure(args: argparse.Namespace, work: Path, profile: bool) -> dict[str, Any]:
    import logging

    from callcore.acd.service import AcdService
    from callcore.api.live_events import EventHub, TeeSink
    from callcore.api.metrics import Metrics
    from callcore.app import CallcoreApp
    from callcore.ari.dispatch import OrderedDispatcher
    from callcore.ari.stream import AriEventStream
    from callcore.calls.runtime import CallRuntime
    from callcore.config import load_config
    from callcore.ivr.lookup import LookupClient
    from callcore.ivr.registry import CODE_FLOWS, make_router
    from callcore.logs import configure_logging
    from callcore.store import EventWriter

    cfg_path = work / "callcore.yaml"
    cfg_path.write_text(config_text(work / "state"))
    config = load_config(cfg_path, known_flows=set(CODE_FLOWS))
    configure_logging("json", "info")
    log_file = (work / "callcore.log").open("a")
    logging.getLogger().handlers[0].setStream(log_file)  # type: ignore[attr-defined]

    frames = Frames()
    ari = make_fake_ari(frames, args.hold)
    es = config.event_store
    writer = EventWriter(FakePool(), batch_max=es.batch_max, flush_interval=es.flush_interval_ms / 1000,
                         buffer_max=es.buffer_max)
    await writer.start()
    sink = TeeSink(writer, EventHub())
    acd = AcdService(config.acd(), sink)
    for agent_id in config.agents:
        acd.login(agent_id)
    app = CallcoreApp(config)  # only for its queue handler (IVR queue node -> ACD), as in production
    app.acd = acd
    lookups = LookupClient()
    runtime = CallRuntime(ari, sink, make_router(config, lookups, queue_handler=app.queue_handler),
                          on_handler_error=config.calls.on_handler_error,
                          fallback_context=config.calls.fallback_context, config_version=config.version,
                          subscribe_all=True)
    acd.runtime = runtime
    runtime.resume = acd.resume_handler
    acd.offer_listeners.append(Metrics().observe_routing_latency)
    dispatcher = OrderedDispatcher(runtime.handle_event)
    stream = AriEventStream(ari, on_event=lambda event: dispatcher.submit(event.routing_key, event),
                            subscribe_all=True)
    ari.feed = stream._handle_frame

    in_flight = asyncio.Semaphore(args.concurrency)
    ended = 0
    all_ended = asyncio.Event()
    target = 0

    def on_call_end() -> None:
        nonlocal ended
        ended += 1
        in_flight.release()
        if ended >= target:
            all_ended.set()

    ari.on_call_end = on_call_end

    async def run_calls(first: int, n: int) -> None:
        nonlocal target
        target = ended + n
        all_ended.clear()
        for i in range(first, first + n):
            await in_flight.acquire()
            ari.new_call(i)
        await asyncio.wait_for(all_ended.wait(), 120)
        await dispatcher.join(timeout=30)
        while runtime.live_calls:
            await asyncio.sleep(0)
        await writer.flush()

    await run_calls(0, args.warmup)
    errors_before = runtime.counters["handler_errors"] + dispatcher.failed + stream.stats.malformed
    gc.collect()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    events0, frames0 = writer.stats.written, stream.stats.events
    await run_calls(args.warmup, args.calls)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.disable()
    errors = runtime.counters["handler_errors"] + dispatcher.failed + stream.stats.malformed - errors_before
    result = {
        "calls": args.calls,
        "cpu_us_per_call": (cpu1 - cpu0) / args.calls * 1e6,
        "wall_s": wall1 - wall0,
        "frames_per_call": (stream.stats.events - frames0) / args.calls,
        "events_per_call": (writer.stats.written - events0) / args.calls,
        "requests_per_call": {k: round(v / (args.warmup + args.calls), 2) for k, v in sorted(ari.requests.items())},
        "errors": errors,
        "fake_us_per_call": fake_cost(frames, 2000),
    }
    await writer.close()
    await lookups.close()
    await ari.close()
    logging.getLogger().handlers[0].setStream(sys.stderr)  # type: ignore[attr-defined]
    log_file.close()
    if profiler is not None:
        write_profile(profiler, Path(args.profile_out), args, result)
    return result


def fake_cost(frames: Frames, n: int) -> float:
    """CPU µs per call the fake spends producing frames and responses (included in the measurement)."""
    names = list(frames.templates)
    t0 = time.process_time()
    for i in range(n):
        ids = {"caller": f"1795{i:06d}.{i}", "number": f"+3120000{i}", "seq": f"{i:08x}", "leg": "x" * 36,
               "call_id": "y" * 36, "agent": "agent01", "bridge": "z" * 36}
        for name in names:
            frames.frame(name, ids)
        json.loads(frames.originated % ids)
    return (time.process_time() - t0) / n * 1e6


def write_profile(profiler: Any, path: Path, args: argparse.Namespace, result: dict[str, Any]) -> None:
    import io
    import pstats

    out = io.StringIO()
    out.write(f"bench/call_cpu.py profile: {args.calls} calls, concurrency {args.concurrency}; "
              f"{result['cpu_us_per_call']:.0f} µs/call under cProfile (the profiler inflates it)\n")
    for key in ("cumulative", "tottime"):
        out.write(f"\n===== top 30 by {key} =====\n")
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(key).print_stats(30)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue())
    profiler.dump_stats(str(path.with_suffix(".prof")))  # for pstats / snakeviz


# ---------------------------------------------------------------- transport (aiohttp), measured apart


def transport_server(port: int, frames: int) -> None:
    """Child process: tests/fakes/fake_ari.py's FakeAri on ``port``; once a WebSocket connects, it sends ``frames``
    recorded frames (the caller's StasisStart, ≈ 600 bytes), then one ``BenchDone`` frame."""
    from aiohttp import web

    from tests.fakes.fake_ari import FakeAri

    async def serve() -> None:
        fake = FakeAri()
        fake.channels["1795000001.1"] = __import__("tests.fakes.fake_ari", fromlist=["FakeChannel"]).FakeChannel(
            id="1795000001.1")
        runner = web.AppRunner(fake.app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("ready", flush=True)
        text = FRAMES.read_text().splitlines()[0]
        while True:
            await fake.connected.wait()
            await asyncio.sleep(0.3)
            for _ in range(frames):
                await fake.send_raw(text)
                await asyncio.sleep(0.0002)  # one frame per read, as at a real call rate (not a burst)
            await fake.send_raw('{"type": "BenchDone"}')
            await fake.drop_connections()

    asyncio.run(serve())


async def measure_transport(port: int, n: int) -> dict[str, float]:
    """Client-side CPU of aiohttp's transport, as callcore uses it: one REST request (AriClient, 204 reply) and one
    WebSocket text frame received by AriEventStream (minus the parse, which ``measure`` counts)."""
    from callcore.ari.client import AriClient
    from callcore.ari.events import parse_event_json
    from callcore.ari.stream import AriEventStream
    from tests.fakes.fake_ari import APP, PASSWORD, USER

    ari = AriClient(f"http://127.0.0.1:{port}", USER, PASSWORD, APP)
    for _ in range(50):  # connection set up, warm
        await ari.channels.set_variable("1795000001.1", "X", "1")
    t0 = time.process_time()
    for _ in range(n):
        await ari.channels.set_variable("1795000001.1", "X", "1")  # POST, 204: the shape of answer/addChannel/hangup
    rest = (time.process_time() - t0) / n * 1e6
    got = 0
    done = asyncio.Event()
    started: list[float] = []

    def on_event(event: Any) -> None:
        nonlocal got
        if not started:
            started.append(time.process_time())
        got += 1
        if getattr(event, "type", "") == "BenchDone":
            done.set()

    stream = AriEventStream(ari, on_event=on_event, heartbeat=60)
    task = asyncio.get_running_loop().create_task(stream.run())
    await asyncio.wait_for(done.wait(), 60)
    ws_total = (time.process_time() - started[0]) / max(1, got - 1) * 1e6
    await stream.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await ari.close()
    text = FRAMES.read_text().splitlines()[0]
    t0 = time.process_time()
    for _ in range(n):
        parse_event_json(text)
    parse = (time.process_time() - t0) / n * 1e6
    return {"rest_request_us": rest, "ws_frame_us": ws_total - parse, "parse_us": parse}


def transport(args: argparse.Namespace) -> dict[str, float]:
    import logging
    import socket

    import structlog

    # The fake closing the WebSocket at the end is expected: no log lines about it.
    logging.getLogger().setLevel(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"import sys; sys.argv=['x']; sys.path[:0]={[args.src, str(ROOT)]!r}; " \
           f"import importlib.util as u; spec=u.spec_from_file_location('cc', {str(Path(__file__).resolve())!r}); " \
           f"m=u.module_from_spec(spec); spec.loader.exec_module(m); m.transport_server({port}, {args.calls * 2})"
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        return asyncio.run(measure_transport(port, args.calls))
    finally:
        server.kill()  # our own child, by its handle
        server.wait(timeout=10)


# ---------------------------------------------------------------- driver


def one_round(args: argparse.Namespace, profile: bool = False) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="callcore-call-cpu-"))
    try:
        return asyncio.run(measure(args, work, profile))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def baseline_tree(rev: str, paths: list[str]) -> Path:
    """A copy of src/ where ``paths`` (relative to src/callcore; all of it when empty) come from git ``rev``."""
    tmp = Path(tempfile.mkdtemp(prefix="callcore-baseline-"))
    if paths:
        shutil.copytree(ROOT / "src", tmp / "src", ignore=shutil.ignore_patterns("__pycache__"))
        for rel in paths:
            text = subprocess.run(["git", "show", f"{rev}:src/callcore/{rel}"], cwd=ROOT, check=True,
                                  capture_output=True).stdout
            (tmp / "src" / "callcore" / rel).write_bytes(text)
    else:
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    return tmp


def subprocess_round(src: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--src", str(src), "--json", "--rounds", "1",
           "--no-profile", "--calls", str(args.calls), "--warmup", str(args.warmup),
           "--concurrency", str(args.concurrency), "--hold", str(args.hold)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=10, help="calls in progress at a time")
    ap.add_argument("--hold", type=float, default=0.0, help="seconds the agent talks before hanging up")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile-out", default=str(Path(tempfile.gettempdir()) / "callcore-call-cpu-profile.txt"))
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--baseline", metavar="REV", help="also measure the source as of this git revision")
    ap.add_argument("--baseline-paths", nargs="*", default=[], metavar="PATH",
                    help="only these files (relative to src/callcore) from REV; the rest from the working tree")
    ap.add_argument("--src", default=str(ROOT / "src"), help="where the callcore package is (see --baseline)")
    ap.add_argument("--transport", action="store_true",
                    help="also measure aiohttp's client-side CPU per REST request and per WebSocket frame")
    ap.add_argument("--json", action="store_true", help="print one JSON line per round (for --baseline)")
    args = ap.parse_args()

    if args.json:
        for _ in range(args.rounds):
            print(json.dumps(one_round(args)), flush=True)
        return 0

    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"{args.calls} calls (+{args.warmup} warm-up), {args.concurrency} at a time, {args.rounds} rounds")
    variants: dict[str, Path] = {"current": ROOT / "src"}
    tmp: Path | None = None
    if args.baseline:
        tmp = baseline_tree(args.baseline, args.baseline_paths)
        variants = {f"baseline {args.baseline}": tmp / "src", "current": ROOT / "src"}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    try:
        for r in range(args.rounds):
            for name, src in variants.items():  # interleaved: the VM's speed drifts between minutes
                res = subprocess_round(src, args) if args.baseline else one_round(args)
                results[name].append(res)
                print(f"  round {r + 1} {name}: {res['cpu_us_per_call']:.0f} µs/call", flush=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| variant | CPU per call (median) | [min–max] | frames/call | events/call | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rs in results.items():
        cpu = [x["cpu_us_per_call"] for x in rs]
        x = rs[0]
        print(f"| {name} | {statistics.median(cpu):.0f} µs | {min(cpu):.0f}–{max(cpu):.0f} | "
              f"{x['frames_per_call']:.1f} | {x['events_per_call']:.1f} | {sum(y['errors'] for y in rs)} |")
    last = results["current"][-1]
    print(f"\nREST requests per call: {last['requests_per_call']}")
    print(f"fake Asterisk's own share (frames and responses), included above: {last['fake_us_per_call']:.0f} µs/call")
    if args.transport:
        t = transport(args)
        per_call = 4 * t["rest_request_us"] + 15 * t["ws_frame_us"]
        print(f"aiohttp transport (not in the figures above; FakeAri in a child process on loopback): one REST request "
              f"{t['rest_request_us']:.0f} µs, one WebSocket frame {t['ws_frame_us']:.0f} µs (+ {t['parse_us']:.0f} µs "
              f"parse) → 4 requests + 15 frames ≈ {per_call:.0f} µs per call")
    if not args.no_profile:
        res = one_round(args, profile=True)
        print(f"profile (current tree, {res['cpu_us_per_call']:.0f} µs/call under cProfile): {args.profile_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
