"""Routing latency on real SIP: callcore's ACD against Asterisk's own app_queue, side by side in one run.

Run (as root: sipp plays pcaps and tcpdump captures loopback): ``.venv/bin/python bench/routing_latency.py``
(≈ 2 min; bounded: every wait has a timeout; every process it starts — sipp, tcpdump, the embedded PostgreSQL,
the Asterisk sandbox if it was not running — is stopped by pid at the end, also on failure).

What is measured, on the same sandbox Asterisk, the same 20 sipp agent phones (agent01..agent20 on
127.0.0.1:61NN, each hanging up 2 s after answering) and the same sipp caller load, one system after the other:

(a) app_queue: DID 9000 → ``Queue(bench-appqueue)`` straight from the dialplan (asterisk/extensions.conf,
    asterisk/queues.conf: leastrecent, the 20 agents as static members, ringinuse=no, no announcements,
    no wrap-up);
(b) callcore, in this process as in tests/integration/test_acd_load.py: DID 8000 → an IVR flow that is a single
    ``queue`` node into an ACD queue with the same 20 agents (login_at_start, no wrap-up), its event store in an
    embedded PostgreSQL, logging JSON at info level into a file (as a service would).

Latency of a call = time the agent's phone receives the INVITE − time Asterisk receives the caller's INVITE,
both from one tcpdump capture of loopback per system (first INVITE of each Call-ID: retransmissions excluded).
Every caller has its own number (From user ``+3120000<call_number>``); the agent leg's From carries it (both
systems: checked), which pairs the two INVITEs.

CPU per call: Asterisk's process CPU (utime+stime of /proc/<pid>/stat, all threads) and, for (b), this process's
CPU (time.process_time(): callcore's event loop, its ARI client and event writer; the idle sipp wait threads are
negligible) and, shown apart, the embedded PostgreSQL's processes; each a delta over the run ÷ calls.

Options: ``--calls N`` (200), ``--rate R`` (5 calls/s), ``--only appqueue|callcore``, ``--keep DIR`` (keep the
captures and logs there), ``--breakdown`` (also capture ARI on TCP 8088 and split callcore's latency into its
steps: StasisStart sent, each REST request callcore makes before the originate, the agent INVITE).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from callcore.sandbox.asterisk import AsteriskSandbox, config_differs, default_config_dir, install_config  # noqa: E402
from tests.sip import AgentPhone, run_callers  # noqa: E402

AGENTS = 20
APPQUEUE_DID = "9000"
CALLCORE_DID = "8000"
CALLER_PREFIX = "+3120000"
#: sipp replaces [call_number] per call: a unique caller number for every call of a run.
CALLER = CALLER_PREFIX + "[call_number]"
AGENT_PORTS = range(6101, 6101 + AGENTS)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- CPU


def proc_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster whose data directory is ``data_dir`` and all its children (backends, workers)."""
    pidfile = data_dir / "postmaster.pid"
    try:
        master = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [master]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(p.name))
            except (OSError, ValueError):
                pass
    return pids


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = proc_cpu(pid)
        except OSError:
            pass
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two samples by processes alive at the second (new ones count from zero)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


# ---------------------------------------------------------------- capture


class Capture:
    """tcpdump on loopback into ``path`` until stopped (SIGINT by pid, so it flushes)."""

    def __init__(self, path: Path, with_ari: bool) -> None:
        self.path = path
        flt = "udp and portrange 5060-6199"
        if with_ari:
            flt = f"({flt}) or (tcp port 8088)"
        self.cmd = ["tcpdump", "-i", "lo", "-n", "-s", "0", "-B", "8192", "-w", str(path), flt]
        self.proc: subprocess.Popen[bytes] | None = None
        self.err_path = path.with_suffix(".tcpdump.log")

    def __enter__(self) -> Capture:
        self._err = self.err_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err)
        deadline = time.monotonic() + 10
        while b"listening on" not in self.err_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tcpdump did not start: {self.err_path.read_text(errors='replace')}")
            time.sleep(0.05)
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._err.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dropped(self) -> str:
        lines = [l for l in self.err_path.read_text(errors="replace").splitlines() if "dropped" in l]
        return "; ".join(lines)


def sip_invites(pcap: Path) -> list[tuple[float, str, int, str]]:
    """(time, From user, UDP destination port, Call-ID) of every INVITE in the capture, in capture order."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "sip.Method == \"INVITE\"", "-T", "fields", "-E", "separator=\t",
         "-e", "frame.time_epoch", "-e", "sip.from.user", "-e", "udp.dstport", "-e", "sip.Call-ID"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    rows = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0]:
            rows.append((float(parts[0]), parts[1], int(parts[2].split(",")[0]), parts[3]))
    return rows


@dataclass
class Latencies:
    system: str
    calls: int
    ms: list[float]                       # per matched call, caller INVITE → agent INVITE
    unmatched: list[str]                  # caller numbers without an agent INVITE
    from_ok: bool                         # every agent INVITE's From user is a caller's number
    retransmissions: int                  # INVITEs dropped as repeats of a Call-ID already seen
    pairs: dict[str, tuple[float, float]] = field(default_factory=dict)  # caller number → (t caller, t agent)


def match(pcap: Path, system: str, calls: int) -> Latencies:
    seen: set[str] = set()
    callers: dict[str, float] = {}
    agents: dict[str, float] = {}
    repeats = 0
    from_ok = True
    for t, user, port, call_id in sip_invites(pcap):
        if call_id in seen:
            repeats += 1
            continue
        seen.add(call_id)
        if port == 5060:
            callers.setdefault(user, t)
        elif port in AGENT_PORTS:
            if not user.startswith(CALLER_PREFIX):
                from_ok = False
            agents.setdefault(user, t)  # the first agent rung for that caller
    pairs = {u: (t, agents[u]) for u, t in callers.items() if u in agents}
    ms = [(a - c) * 1000 for c, a in pairs.values()]
    return Latencies(system, len(callers), ms, sorted(set(callers) - set(agents)), from_ok and bool(agents),
                     repeats, pairs)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


# ---------------------------------------------------------------- ARI breakdown (callcore)


def ari_events(pcap: Path) -> list[tuple[float, dict]]:
    """ARI events Asterisk sent on the WebSocket (opened before the capture started, so tshark does not know it
    is one): the server's TCP payload of that connection, reassembled, cut into frames; each frame timed by the
    segment holding its last byte."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "tcp.srcport == 8088 and tcp.len > 0", "-T", "fields",
         "-E", "separator=\t", "-e", "frame.time_epoch", "-e", "tcp.stream", "-e", "tcp.seq", "-e", "tcp.payload"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    streams: dict[str, list[tuple[float, int, bytes]]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[3]:
            streams.setdefault(parts[1], []).append((float(parts[0]), int(parts[2]), bytes.fromhex(parts[3].replace(":", ""))))
    # The WebSocket: the stream whose server data does not start with "HTTP/".
    ws = [segs for segs in streams.values() if not segs[0][2].startswith(b"HTTP/")]
    events: list[tuple[float, dict]] = []
    for segs in ws:
        buf, times, seen = b"", [], set()
        for t, seq, data in sorted(segs, key=lambda x: x[1]):
            if seq in seen:
                continue
            seen.add(seq)
            buf += data
            times.append((len(buf), t))
        pos = 0
        while pos + 2 <= len(buf):
            b0, b1 = buf[pos], buf[pos + 1]
            n, hdr = b1 & 0x7F, 2
            if n == 126:
                n, hdr = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif n == 127:
                n, hdr = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            end = pos + hdr + n
            if end > len(buf):
                break
            if b0 & 0x0F == 1:
                t_end = next(t for upto, t in times if upto >= end)
                try:
                    events.append((t_end, json.loads(buf[pos + hdr:end])))
                except ValueError:
                    pass
            pos = end
    return events


def ari_timeline(pcap: Path, pairs: dict[str, tuple[float, float]]) -> list[dict[str, float]]:
    """Per call (ms after the caller's INVITE): StasisStart sent by Asterisk, callcore's REST requests before
    the originate (by method and path shape), the originate request, its response, the agent INVITE."""
    stasis: dict[str, tuple[float, str]] = {}   # channel id → (t, caller number)
    for t, event in ari_events(pcap):
        if event.get("type") == "StasisStart" and (event.get("args") or [""])[0] == "inbound":
            ch = event.get("channel", {})
            stasis[ch["id"]] = (t, ch.get("caller", {}).get("number", ""))
    http = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "http.request", "-T", "fields", "-E", "separator=\t",
         "-e", "frame.time_epoch", "-e", "http.request.method", "-e", "http.request.uri", "-e", "tcp.stream"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    by_number = {num: (t, ch) for ch, (t, num) in stasis.items()}
    requests: dict[str, list[tuple[float, str]]] = {}
    originates: dict[str, float] = {}   # caller's channel id (originator) → t
    for line in http.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        t, method, uri = float(parts[0]), parts[1], parts[2]
        path = uri.split("?")[0].removeprefix("/ari")
        if method == "POST" and path == "/channels" and "originator=" in uri:
            orig = uri.split("originator=")[1].split("&")[0]
            originates.setdefault(orig, t)
            continue
        if path.startswith("/applications/") and "eventSource=channel:" in uri:
            ch = uri.split("eventSource=channel:")[1].split("&")[0].split(",")[0]
            requests.setdefault(ch, []).append((t, f"{method} /applications/{{app}}/subscription"))
            continue
        segs = path.strip("/").split("/")
        if len(segs) >= 2 and segs[0] == "channels":
            shape = f"{method} /channels/{{id}}/" + "/".join(segs[2:]) if len(segs) > 2 else f"{method} /channels/{{id}}"
            requests.setdefault(segs[1], []).append((t, shape))
    rows = []
    for number, (t_inv, t_agent) in pairs.items():
        if number not in by_number:
            continue
        t_ss, ch = by_number[number]
        row = {"stasis_start": (t_ss - t_inv) * 1000, "agent_invite": (t_agent - t_inv) * 1000}
        t_orig = originates.get(ch)
        if t_orig is not None:
            row["originate_request"] = (t_orig - t_inv) * 1000
            for t, shape in requests.get(ch, []):
                if t <= t_orig:
                    row.setdefault(shape, (t - t_inv) * 1000)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the two systems


def callcore_config_text(state_dir: Path) -> str:
    return yaml.safe_dump({
        "state_dir": str(state_dir),
        "ari": {"password": "callcore-sandbox", "reconnect_initial": 0.2, "reconnect_max": 1},
        "logging": {"format": "json", "level": "info"},
        "inbound": {"dids": {CALLCORE_DID: "bench"}},
        "skills": ["support"],
        "agents": {f"agent{n:02d}": {"endpoint": f"PJSIP/agent{n:02d}", "skills": {"support": 5},
                                     "queues": ["bench"], "login_at_start": True} for n in range(1, AGENTS + 1)},
        "queues": {"bench": {"required_skills": {"support": 1}, "ring_timeout": 15, "wrap_up_seconds": 0}},
        "flows": {"bench": {"start": "q", "nodes": {"q": {"type": "queue", "queue": "bench"}}}},
    })


@dataclass
class Run:
    lat: Latencies
    asterisk_cpu: float
    own_cpu: float | None = None
    pg_cpu: float | None = None
    sipp: str = ""
    dropped: str = ""
    breakdown: list[dict[str, float]] = field(default_factory=list)


def wait_asterisk_idle(sandbox: AsteriskSandbox, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sandbox.cli("core show channels count")
        if out.strip().startswith("0 active channel") or "\n0 active channel" in out:
            return
        time.sleep(0.5)
    raise RuntimeError(f"Asterisk still has channels after {timeout} s: {out}")


def caller_load(did: str, calls: int, rate: float, workdir: Path):
    return run_callers(did, calls, rate, caller=CALLER, bye_timeout_ms=60_000, answer_timeout_ms=30_000,
                       timeout=calls / rate + 60, workdir=workdir)


def run_appqueue(sandbox: AsteriskSandbox, pid: int, args: argparse.Namespace, work: Path) -> Run:
    wait_asterisk_idle(sandbox)
    pcap = work / "appqueue.pcap"
    with Capture(pcap, with_ari=False) as cap:
        before = proc_cpu(pid)
        result = caller_load(APPQUEUE_DID, args.calls, args.rate, work / "sipp-appqueue")
        wait_asterisk_idle(sandbox)
        after = proc_cpu(pid)
    lat = match(pcap, "app_queue", args.calls)
    return Run(lat, after - before, sipp=_sipp_summary(result), dropped=cap.dropped())


async def run_callcore(sandbox: AsteriskSandbox, pid: int, args: argparse.Namespace, work: Path) -> Run:
    from callcore.app import CallcoreApp
    from callcore.config import load_config
    from callcore.ivr.registry import CODE_FLOWS
    from callcore.logs import configure_logging

    state = Path(tempfile.mkdtemp(prefix="callcore-bench-state-"))
    state.chmod(0o755)  # the embedded PostgreSQL runs as its own user and must reach state/pgdata
    cfg_path = work / "callcore.yaml"
    cfg_path.write_text(callcore_config_text(state))
    config = load_config(cfg_path, known_flows=set(CODE_FLOWS))
    configure_logging("json", "info")
    log_file = (work / "callcore.log").open("w")
    logging.getLogger().handlers[0].setStream(log_file)  # type: ignore[attr-defined]
    app = CallcoreApp(config)
    try:
        await app.start()
        await app.wait_connected(timeout=15)
        await asyncio.sleep(1.0)  # let start-up work (migrations, first flushes) settle
        wait_asterisk_idle(sandbox)
        pcap = work / "callcore.pcap"
        pg = postgres_pids(state / "pgdata")
        with Capture(pcap, with_ari=args.breakdown) as cap:
            profiler = None
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            a0, own0, pg0 = proc_cpu(pid), time.process_time(), cpu_of(pg)
            result = await asyncio.to_thread(caller_load, CALLCORE_DID, args.calls, args.rate, work / "sipp-callcore")
            deadline = time.monotonic() + 30
            while app.runtime.live_calls and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.to_thread(wait_asterisk_idle, sandbox)
            await app.writer.flush()
            a1, own1, pg1 = proc_cpu(pid), time.process_time(), cpu_of(postgres_pids(state / "pgdata"))
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(work / "callcore.prof"))
        lat = match(pcap, "callcore", args.calls)
        run = Run(lat, a1 - a0, own1 - own0, cpu_delta(pg0, pg1), _sipp_summary(result), cap.dropped())
        if args.breakdown:
            run.breakdown = ari_timeline(pcap, lat.pairs)
        return run
    finally:
        if hasattr(app, "runtime"):
            await asyncio.wait_for(app.stop(drain_seconds=5), 60)
        elif getattr(getattr(app, "db", None), "embedded", None) is not None:
            await asyncio.to_thread(app.db.embedded.stop)
        log_file.close()
        shutil.rmtree(state, ignore_errors=True)


def _sipp_summary(result) -> str:  # noqa: ANN001
    return f"{result.successful} successful / {result.failed} failed, {result.elapsed:.1f} s" + (
        "" if result.ok else f" — NOT OK: {result.describe()}")


# ---------------------------------------------------------------- report


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print(f"\nRouting latency: caller INVITE at :5060 → INVITE at the agent's phone; {args.calls} calls at "
          f"{args.rate:g}/s, {AGENTS} sipp agents (hang up 2 s after answering)")
    print(f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, {sandbox_version()}")
    head = f"{'system':<10} {'matched':>8} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'min':>6}   CPU ms/call"
    print(head)
    for r in runs:
        ms = r.lat.ms
        cpu = f"Asterisk {1000 * r.asterisk_cpu / max(1, r.lat.calls):.1f}"
        if r.own_cpu is not None:
            cpu += (f" + callcore {1000 * r.own_cpu / max(1, r.lat.calls):.1f}"
                    f" = {1000 * (r.asterisk_cpu + r.own_cpu) / max(1, r.lat.calls):.1f}"
                    f" (PostgreSQL {1000 * (r.pg_cpu or 0) / max(1, r.lat.calls):.1f} apart)")
        if ms:
            print(f"{r.lat.system:<10} {len(ms):>4}/{r.lat.calls:<3} {pct(ms, 50):7.2f} {pct(ms, 90):7.2f} "
                  f"{pct(ms, 99):7.2f} {max(ms):7.2f} {min(ms):6.2f}   {cpu}")
        else:
            print(f"{r.lat.system:<10} no matched calls   {cpu}")
        notes = [f"sipp: {r.sipp}", f"INVITE retransmissions excluded: {r.lat.retransmissions}",
                 f"agent From carries the caller's number: {'yes' if r.lat.from_ok else 'NO'}"]
        if r.lat.unmatched:
            notes.append(f"callers without an agent INVITE: {len(r.lat.unmatched)} (e.g. {r.lat.unmatched[:3]})")
        if r.dropped:
            notes.append(f"tcpdump: {r.dropped}")
        print("           " + "; ".join(notes))
    by = {r.lat.system: r for r in runs}
    if "app_queue" in by and "callcore" in by and by["app_queue"].lat.ms and by["callcore"].lat.ms:
        a, c = by["app_queue"], by["callcore"]
        base = a.asterisk_cpu / max(1, a.lat.calls)
        ours = (c.asterisk_cpu + (c.own_cpu or 0)) / max(1, c.lat.calls)
        print(f"\ngoals: callcore p50 {pct(c.lat.ms, 50):.2f} ms ≤ 8 ms: {'met' if pct(c.lat.ms, 50) <= 8 else 'NOT met'}; "
              f"callcore p99 {pct(c.lat.ms, 99):.2f} ms ≤ app_queue p99 {pct(a.lat.ms, 99):.2f} ms: "
              f"{'met' if pct(c.lat.ms, 99) <= pct(a.lat.ms, 99) else 'NOT met'}; "
              f"CPU/call (callcore + Asterisk) {1000 * ours:.1f} ms ≤ 1.5 × app_queue's {1000 * base:.1f} ms "
              f"= {1500 * base:.1f} ms: {'met' if ours <= 1.5 * base else 'NOT met'} ({ours / base:.2f} ×)")
    for r in runs:
        if r.breakdown:
            print(f"\n{r.lat.system}: where the time goes (ms after the caller's INVITE; p50 / p90 / p99 over "
                  f"{len(r.breakdown)} calls with every step seen in the capture)")
            keys = sorted({k for row in r.breakdown for k in row},
                          key=lambda k: statistics.median([row[k] for row in r.breakdown if k in row]))
            for k in keys:
                vals = [row[k] for row in r.breakdown if k in row]
                print(f"  {k:<45} {pct(vals, 50):7.2f} {pct(vals, 90):7.2f} {pct(vals, 99):7.2f}   (n={len(vals)})")


def sandbox_version() -> str:
    try:
        info = AsteriskSandbox(log=lambda _m: None).ari_info() or {}
        return "Asterisk " + str(info.get("system", {}).get("version", "?"))
    except Exception:  # noqa: BLE001
        return "Asterisk ?"


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--only", choices=["appqueue", "callcore"])
    ap.add_argument("--keep", type=Path, help="keep captures, sipp files and callcore's log in this directory")
    ap.add_argument("--breakdown", action="store_true", help="capture ARI too and split callcore's latency")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile callcore's event loop during (b) into <work>/callcore.prof (inflates its CPU)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (tcpdump on loopback, sipp's pcap play, the Asterisk sandbox)", file=sys.stderr)
        return 2
    for tool in ("sipp", "tcpdump", "tshark"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/install-system-deps.sh)", file=sys.stderr)
            return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="callcore-bench-routing-"))
    work.mkdir(parents=True, exist_ok=True)
    sandbox = AsteriskSandbox(log=lambda _m: None)
    started_asterisk = not sandbox.status().running
    runs: list[Run] = []
    try:
        status = sandbox.up(timeout=180)
        if {"extensions.conf", "queues.conf"} & set(config_differs(default_config_dir(), sandbox.etc_dir)):
            install_config(default_config_dir(), sandbox.etc_dir)
            sandbox.cli("core reload")
            time.sleep(1.0)
        if "bench-appqueue" not in sandbox.cli(f"dialplan show {APPQUEUE_DID}@from-trunk"):
            raise RuntimeError("DID 9000 does not reach Queue(bench-appqueue): check asterisk/extensions.conf")
        pid = status.pid
        assert pid is not None
        with ExitStack() as phones:
            for n in range(1, AGENTS + 1):
                phones.enter_context(AgentPhone(n, hangup_after_ms=2000))
            if args.only in (None, "appqueue"):
                print("(a) app_queue …", flush=True)
                runs.append(run_appqueue(sandbox, pid, args, work))
            if args.only in (None, "callcore"):
                print("(b) callcore …", flush=True)
                runs.append(asyncio.run(run_callcore(sandbox, pid, args, work)))
        report(runs, args)
    finally:
        if started_asterisk:
            sandbox.down()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"\nfiles kept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
