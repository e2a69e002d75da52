"""Load and soak on real SIP: how many calls per second one Asterisk node + callcore sustain on this machine.

Run (as root: sipp, tcpdump, the Asterisk sandbox): ``.venv/bin/python bench/load.py`` (≈ 15 min: the ramp, then a
10-minute soak; ``--soak-minutes 0`` for the ramp alone). Bounded: every step has a deadline, every process it
starts (sipp, tcpdump, the embedded PostgreSQL, the sandbox if it was not running) is stopped at the end.

What runs: sipp callers → Asterisk (the sandbox) → callcore's IVR (DID 8100: a prompt, then the queue node) → the
ACD → sipp agent phones. Agents are not the bottleneck: ``--seats`` agents (400) share the 20 sipp phones
(agent01..agent20 answer any number of calls at once), each seat takes one call at a time, no wrap-up; callers
talk ``--talk-ms`` (4 s) and the agent's phone hangs up.

Ramp: ``--start-rate`` calls/s, then + ``--step`` calls/s every ``--step-seconds`` (30 s of calls), until the
routing latency p99 passes 100 ms or a call fails (sipp's failed count, or a call without an agent). Routing
latency of a call = the agent's phone receiving the INVITE (loopback capture) − callcore putting the caller in the
queue (its ``queued`` event): the ACD decision, the originate and Asterisk's work to ring the phone.

Per step: calls/s offered, calls, failed, latency p50/p99, peak concurrent calls (callcore's live calls sampled
every 0.25 s), CPU per call of callcore (this process), Asterisk and PostgreSQL, callcore's RSS and open files.

Soak: ``--soak-fraction`` (0.7) of the highest step that passed, for ``--soak-minutes`` (10): callcore's RSS and
open file descriptors sampled every 10 s; flat = the last minute's mean within 5 % (RSS) / +5 fds of the second
minute's (the first minute warms caches and pools up).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402

from callcore.sandbox.asterisk import AsteriskSandbox  # noqa: E402
from routing_latency import (  # noqa: E402
    AGENT_PORTS,
    CALLER,
    CALLER_PREFIX,
    Capture,
    cpu_of,
    cpu_delta,
    pct,
    postgres_pids,
    proc_cpu,
    sip_invites,
    wait_asterisk_idle,
)
from tests.sip import AgentPhone, run_callers  # noqa: E402

DID = "8100"
PHONES = 20
LATENCY_LIMIT_MS = 100.0


def config_text(state_dir: Path, seats: int) -> str:
    return yaml.safe_dump({
        "state_dir": str(state_dir),
        "ari": {"password": "callcore-sandbox", "reconnect_initial": 0.2, "reconnect_max": 1},
        "logging": {"format": "json", "level": "info"},
        "inbound": {"dids": {DID: "load"}},
        "skills": ["support"],
        "agents": {f"seat{n:03d}": {"endpoint": f"PJSIP/agent{n % PHONES + 1:02d}", "skills": {"support": 5},
                                    "queues": ["load"], "login_at_start": True} for n in range(seats)},
        "queues": {"load": {"required_skills": {"support": 1}, "ring_timeout": 15, "wrap_up_seconds": 0}},
        "flows": {"load": {"start": "hello", "nodes": {
            "hello": {"type": "play", "sounds": ["beep"], "next": "q"},
            "q": {"type": "queue", "queue": "load"}}}},
    })


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Step:
    rate: float
    calls: int
    failed: int
    no_agent: int
    p50: float
    p99: float
    peak_calls: int
    cpu_callcore_ms: float
    cpu_asterisk_ms: float
    cpu_postgres_ms: float
    rss_mb: float
    fds: int

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.no_agent == 0 and self.p99 <= LATENCY_LIMIT_MS


@dataclass
class Soak:
    rate: float
    minutes: float
    calls: int = 0
    failed: int = 0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (seconds, RSS MB, fds)
    cpu_callcore_ms: float = 0.0
    cpu_asterisk_ms: float = 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, sandbox: AsteriskSandbox, asterisk_pid: int) -> None:
        self.args, self.work, self.sandbox, self.asterisk_pid = args, work, sandbox, asterisk_pid
        self.peak = 0

    async def sample_peak(self, app, stop: asyncio.Event) -> None:  # noqa: ANN001
        while not stop.is_set():
            self.peak = max(self.peak, app.runtime.live_calls)
            await asyncio.sleep(0.25)

    async def load(self, app, rate: float, seconds: float, name: str):  # noqa: ANN001, ANN201
        calls = max(1, round(rate * seconds))
        return await asyncio.to_thread(
            run_callers, DID, calls, rate, caller=CALLER, bye_timeout_ms=60_000, answer_timeout_ms=30_000,
            timeout=seconds + 90, workdir=self.work / name)

    async def settle(self, app) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 60
        while app.runtime.live_calls and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.to_thread(wait_asterisk_idle, self.sandbox, 60)
        await app.writer.flush()

    async def step(self, app, rate: float, pg_dir: Path) -> Step:  # noqa: ANN001
        name = f"step-{rate:g}"
        pcap = self.work / f"{name}.pcap"
        self.peak = 0
        stop = asyncio.Event()
        sampler = asyncio.create_task(self.sample_peak(app, stop))
        since = time.time()
        with Capture(pcap, with_ari=False):
            a0, own0, pg0 = proc_cpu(self.asterisk_pid), time.process_time(), cpu_of(postgres_pids(pg_dir))
            result = await self.load(app, rate, self.args.step_seconds, name)
            await self.settle(app)
            a1, own1, pg1 = proc_cpu(self.asterisk_pid), time.process_time(), cpu_of(postgres_pids(pg_dir))
        stop.set()
        await sampler
        queued = await self.queued_times(app, since)
        ms, no_agent = self.latencies(pcap, queued)
        calls = max(1, result.successful + result.failed)
        return Step(rate, calls, result.failed, no_agent, pct(ms, 50) if ms else float("nan"),
                    pct(ms, 99) if ms else float("nan"), self.peak, (own1 - own0) * 1000 / calls,
                    (a1 - a0) * 1000 / calls, cpu_delta(pg0, pg1) * 1000 / calls, rss_mb(), open_fds())

    @staticmethod
    async def queued_times(app, since: float) -> dict[str, float]:  # noqa: ANN001
        rows = await app.pool.fetch(
            "SELECT c.caller_number, extract(epoch FROM e.occurred_at) AS t FROM call_events e JOIN calls c USING (call_id) "
            "WHERE e.type = 'queued' AND e.occurred_at >= to_timestamp($1) ORDER BY e.id", since)
        out: dict[str, float] = {}
        for r in rows:
            out.setdefault(r["caller_number"], float(r["t"]))
        return out

    @staticmethod
    def latencies(pcap: Path, queued: dict[str, float]) -> tuple[list[float], int]:
        """Per caller: first INVITE at an agent's phone − the caller's queued event. Callers queued without an
        agent INVITE count as ``no_agent``."""
        seen: set[str] = set()
        rung: dict[str, float] = {}
        for t, user, port, call_id in sip_invites(pcap):
            if call_id in seen or port not in AGENT_PORTS or not user.startswith(CALLER_PREFIX):
                continue
            seen.add(call_id)
            rung.setdefault(user, t)
        ms = [(rung[u] - q) * 1000 for u, q in queued.items() if u in rung]
        return ms, sum(1 for u in queued if u not in rung)

    async def soak(self, app, rate: float) -> Soak:  # noqa: ANN001
        soak = Soak(rate, self.args.soak_minutes)
        seconds = self.args.soak_minutes * 60
        started = time.monotonic()
        a0, own0 = proc_cpu(self.asterisk_pid), time.process_time()
        task = asyncio.create_task(self.load(app, rate, seconds, "soak"))
        while not task.done():
            soak.samples.append((time.monotonic() - started, rss_mb(), open_fds()))
            await asyncio.wait({task}, timeout=10)
        result = task.result()
        await self.settle(app)
        soak.calls, soak.failed = result.successful + result.failed, result.failed
        calls = max(1, soak.calls)
        soak.cpu_callcore_ms = (time.process_time() - own0) * 1000 / calls
        soak.cpu_asterisk_ms = (proc_cpu(self.asterisk_pid) - a0) * 1000 / calls
        return soak

    async def run(self) -> tuple[list[Step], Soak | None]:
        from callcore.app import CallcoreApp
        from callcore.config import load_config
        from callcore.ivr.registry import CODE_FLOWS
        from callcore.logs import configure_logging

        state = Path(tempfile.mkdtemp(prefix="callcore-load-state-"))
        state.chmod(0o755)  # the embedded PostgreSQL runs as its own user
        cfg = self.work / "callcore.yaml"
        cfg.write_text(config_text(state, self.args.seats))
        configure_logging("json", "info")
        log_file = (self.work / "callcore.log").open("w")
        logging.getLogger().handlers[0].setStream(log_file)  # type: ignore[attr-defined]
        app = CallcoreApp(load_config(cfg, known_flows=set(CODE_FLOWS)))
        steps: list[Step] = []
        soak = None
        try:
            await app.start()
            await app.wait_connected(timeout=15)
            await asyncio.sleep(1.0)
            rate = self.args.start_rate
            while rate <= self.args.max_rate:
                print(f"  step {rate:g} calls/s …", flush=True)
                step = await self.step(app, rate, state / "pgdata")
                steps.append(step)
                print("   ", fmt_step(step), flush=True)
                if not step.passed:
                    break
                rate += self.args.step
            best = max((s.rate for s in steps if s.passed), default=0.0)
            if best and self.args.soak_minutes > 0:
                print(f"  soak at {self.args.soak_fraction * best:g} calls/s for {self.args.soak_minutes:g} min …",
                      flush=True)
                soak = await self.soak(app, self.args.soak_fraction * best)
        finally:
            if hasattr(app, "runtime"):
                await asyncio.wait_for(app.stop(drain_seconds=5), 60)
            elif getattr(getattr(app, "db", None), "embedded", None) is not None:
                await asyncio.to_thread(app.db.embedded.stop)
            log_file.close()
            shutil.rmtree(state, ignore_errors=True)
        return steps, soak


def fmt_step(s: Step) -> str:
    return (f"{s.rate:5g}/s  calls {s.calls:5d}  failed {s.failed}  no agent {s.no_agent}  "
            f"latency p50 {s.p50:6.1f} p99 {s.p99:6.1f} ms  peak calls {s.peak_calls:4d}  CPU/call callcore "
            f"{s.cpu_callcore_ms:5.1f} Asterisk {s.cpu_asterisk_ms:5.1f} PostgreSQL {s.cpu_postgres_ms:4.1f} ms  "
            f"RSS {s.rss_mb:5.0f} MB  fds {s.fds}  {'ok' if s.passed else 'LIMIT'}")


def report(steps: list[Step], soak: Soak | None, args: argparse.Namespace) -> None:
    print(f"\nRamp: DID {DID} (prompt 'beep' → queue), {args.seats} agent seats on {PHONES} sipp phones, talk "
          f"{args.talk_ms / 1000:g} s, {args.step_seconds:g} s of calls per step; limit: p99 > "
          f"{LATENCY_LIMIT_MS:g} ms or any failed call")
    print("| calls/s | calls | failed | no agent | p50 ms | p99 ms | peak concurrent | CPU/call callcore ms | "
          "Asterisk ms | PostgreSQL ms | RSS MB | fds |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in steps:
        print(f"| {s.rate:g}{'' if s.passed else ' (limit)'} | {s.calls} | {s.failed} | {s.no_agent} | {s.p50:.1f} | "
              f"{s.p99:.1f} | {s.peak_calls} | {s.cpu_callcore_ms:.1f} | {s.cpu_asterisk_ms:.1f} | "
              f"{s.cpu_postgres_ms:.1f} | {s.rss_mb:.0f} | {s.fds} |")
    passed = [s for s in steps if s.passed]
    if passed:
        best = max(passed, key=lambda s: s.rate)
        print(f"max sustained: {best.rate:g} calls/s, {best.peak_calls} concurrent calls")
    else:
        print("no step passed")
    if soak is not None and soak.samples:
        second = [r for t, r, _ in soak.samples if 60 <= t < 120] or [soak.samples[0][1]]
        last = [r for t, r, _ in soak.samples if t >= soak.samples[-1][0] - 60] or [soak.samples[-1][1]]
        fd2 = [f for t, _, f in soak.samples if 60 <= t < 120] or [soak.samples[0][2]]
        fdl = [f for t, _, f in soak.samples if t >= soak.samples[-1][0] - 60] or [soak.samples[-1][2]]
        rss_growth = statistics.mean(last) / statistics.mean(second) - 1
        fd_growth = statistics.mean(fdl) - statistics.mean(fd2)
        flat = rss_growth <= 0.05 and fd_growth <= 5
        print(f"\nSoak: {soak.rate:g} calls/s for {soak.minutes:g} min: {soak.calls} calls, {soak.failed} failed; "
              f"CPU/call callcore {soak.cpu_callcore_ms:.1f} ms, Asterisk {soak.cpu_asterisk_ms:.1f} ms")
        print(f"RSS MB (minute 2 → last minute): {statistics.mean(second):.1f} → {statistics.mean(last):.1f} "
              f"({rss_growth:+.1%}); open fds {statistics.mean(fd2):.1f} → {statistics.mean(fdl):.1f}: "
              f"{'flat' if flat else 'GROWING'}")
        print("samples (s, RSS MB, fds): " + ", ".join(f"({t:.0f}, {r:.1f}, {f})" for t, r, f in soak.samples[::6]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seats", type=int, default=400)
    ap.add_argument("--talk-ms", type=int, default=4000)
    ap.add_argument("--start-rate", type=float, default=5.0)
    ap.add_argument("--step", type=float, default=5.0)
    ap.add_argument("--max-rate", type=float, default=80.0)
    ap.add_argument("--step-seconds", type=float, default=30.0)
    ap.add_argument("--soak-minutes", type=float, default=10.0)
    ap.add_argument("--soak-fraction", type=float, default=0.7)
    ap.add_argument("--keep", type=Path, help="keep captures, sipp files and callcore's log in this directory")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (tcpdump on loopback, sipp, the Asterisk sandbox)", file=sys.stderr)
        return 2
    for tool in ("sipp", "tcpdump", "tshark"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/install-system-deps.sh)", file=sys.stderr)
            return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="callcore-bench-load-"))
    work.mkdir(parents=True, exist_ok=True)
    sandbox = AsteriskSandbox(log=lambda _m: None)
    started_asterisk = not sandbox.status().running
    try:
        status = sandbox.up(timeout=180)
        assert status.pid is not None
        with ExitStack() as phones:
            for n in range(1, PHONES + 1):
                phones.enter_context(AgentPhone(n, hangup_after_ms=args.talk_ms))
            print(f"load: ramp from {args.start_rate:g} calls/s (+{args.step:g} every {args.step_seconds:g} s)",
                  flush=True)
            steps, soak = asyncio.run(Bench(args, work, sandbox, status.pid).run())
        report(steps, soak, args)
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
