"""Run sipp on loopback for integration tests: callers, load, agent phones.

Every sipp is a child process this module owns: it is bounded in time (sipp's own
``-timeout`` plus a wait timeout here) and killed by pid in a ``finally`` even when
the test fails. Scenarios are rendered from ``scenarios/*.xml`` into a work
directory per run, with one DTMF pcap per segment written by :mod:`.dtmf_pcap`.

    with AgentPhone(1) as agent:                     # agent01 on 127.0.0.1:6101
        result = run_caller("1000", ["7"])           # dial DID 1000, press 7, wait for BYE
        result.check()
        assert agent.stats()["SuccessfulCall(C)"] == 1
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .dtmf_pcap import DtmfStream, segment_duration, write_pcap

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
LOOPBACK = "127.0.0.1"
ASTERISK_SIP = (LOOPBACK, 5060)
#: The simulated phone network that answers PJSIP/<number>@trunk (pjsip.conf).
PSTN_PORT = 5080
#: agentNN's phone listens on 6100 + NN (pjsip.conf).
AGENT_BASE_PORT = 6100
#: sipp media ports come from here (Asterisk's RTP range is 10000-19998, rtp.conf).
MEDIA_PORTS = range(20000, 30000, 4)
DEFAULT_CALLER = "+31201234567"


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp is not installed: run scripts/install-system-deps.sh (Debian package sip-tester)")
    return path


# ---------------------------------------------------------------- ports

_port_lock = threading.Lock()
_port_cursor = (os.getpid() * 4) % len(MEDIA_PORTS)


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _udp_bound(port: int, host: str = LOOPBACK) -> bool:
    """True when some socket is bound to host:port (UDP), read from /proc/net/udp without binding."""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(host), "little"), port)
    any_addr = "00000000:%04X" % port
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return not _udp_free(port)
    return any(line.split()[1] in (want, any_addr) for line in lines if len(line.split()) > 1)


def allocate_media_port() -> int:
    """A media port p for sipp's -mp with p..p+3 free on 127.0.0.1 (audio, video, RTCP)."""
    global _port_cursor
    with _port_lock:
        for _ in range(len(MEDIA_PORTS)):
            port = MEDIA_PORTS[_port_cursor]
            _port_cursor = (_port_cursor + 1) % len(MEDIA_PORTS)
            if all(_udp_free(port + i) for i in range(4)):
                return port
    raise RuntimeError("no free sipp media port in 20000-29999")


# ---------------------------------------------------------------- results


def parse_stat_csv(text: str) -> dict[str, int | str]:
    """The last row of a sipp ``-trace_stat`` CSV as {column: value} (ints where numeric)."""
    rows = [line for line in text.splitlines() if line.strip()]
    header_idx = max((i for i, line in enumerate(rows) if line.startswith("StartTime;")), default=None)
    if header_idx is None or header_idx + 1 >= len(rows):
        return {}
    header = rows[header_idx].rstrip(";").split(";")
    values = rows[-1].rstrip(";").split(";")
    out: dict[str, int | str] = {}
    for key, value in zip(header, values):
        out[key] = int(value) if value.strip().lstrip("-").isdigit() else value
    return out


@dataclass
class SippResult:
    """What one sipp run did. ``ok`` means exit 0, no failed call, no timeout."""

    returncode: int | None
    successful: int
    failed: int
    stats: dict[str, int | str]
    stdout: str
    stderr: str
    errors: str
    elapsed: float
    timed_out: bool
    workdir: Path
    command: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and not self.timed_out

    def describe(self) -> str:
        tail = lambda s: "\n".join(s.strip().splitlines()[-15:])  # noqa: E731
        return (
            f"sipp exit {self.returncode}{' (killed: timed out)' if self.timed_out else ''}, "
            f"{self.successful} successful / {self.failed} failed call(s) in {self.elapsed:.1f} s\n"
            f"command: {' '.join(self.command)}\nworkdir: {self.workdir}\n"
            f"--- errors:\n{tail(self.errors)}\n--- stderr:\n{tail(self.stderr)}"
        )

    def check(self) -> SippResult:
        """Raise AssertionError with sipp's errors unless the run was ok; returns self."""
        if not self.ok:
            raise AssertionError(self.describe())
        return self


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _kill(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Stop ``proc`` by its pid: SIGTERM, then SIGKILL; always reaps it."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=grace)


def _sipp_common(workdir: Path, name: str, media_port: int) -> list[str]:
    return [
        "-i", LOOPBACK, "-bind_local", "-mp", str(media_port), "-nostdin", "-aa",
        "-trace_stat", "-stf", str(workdir / f"{name}.stat.csv"), "-fd", "1",
        "-trace_err", "-error_file", str(workdir / f"{name}.errors.log"),
    ]  # fmt: skip


def _run(cmd: list[str], workdir: Path, name: str, timeout: float) -> SippResult:
    out_path, err_path = workdir / f"{name}.stdout.log", workdir / f"{name}.stderr.log"
    for stale in ("stat.csv", "errors.log", "messages.log"):
        (workdir / f"{name}.{stale}").unlink(missing_ok=True)
    started = time.monotonic()
    timed_out = False
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill(proc)
    stats = parse_stat_csv(_read(workdir / f"{name}.stat.csv"))
    return SippResult(
        returncode=proc.returncode,
        successful=int(stats.get("SuccessfulCall(C)", 0) or 0),
        failed=int(stats.get("FailedCall(C)", 0) or 0),
        stats=stats,
        stdout=_read(out_path),
        stderr=_read(err_path),
        errors=_read(workdir / f"{name}.errors.log"),
        elapsed=time.monotonic() - started,
        timed_out=timed_out,
        workdir=workdir,
        command=cmd,
    )


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template: str, **values: object) -> str:
    """A scenario from ``scenarios/<template>`` with its ``{{name}}`` placeholders filled.

    (Not ``$name``: sipp's own variables are written ``[$name]``.) A placeholder
    without a value raises KeyError."""

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise KeyError(f"{template}: no value for {{{{{m.group(1)}}}}}")
        return str(values[m.group(1)])

    return _PLACEHOLDER.sub(fill, (SCENARIOS / template).read_text())


# ---------------------------------------------------------------- scenario pieces


@dataclass(frozen=True)
class Dtmf:
    """One DTMF segment of a call: wait ``pause_before_ms`` (after the answer or the
    previous segment), then press ``digits``."""

    digits: str
    pause_before_ms: int = 500


def _wait_bye(timeout_ms: int) -> str:
    return f"""  <recv request="BYE" timeout="{timeout_ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>"""


def _remember_dialog(remote_header: str, local_header: str) -> str:
    # sipp refuses variables that are set but never used, so these actions are only
    # added to scenarios that send their own BYE.
    lines = [
        f'      <ereg regexp=".*" search_in="hdr" header="{remote_header}" check_it="true" assign_to="remote_party"/>',
        '      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" check_it="true" assign_to="remote_contact"/>',
    ]
    if local_header:
        lines.append(
            f'      <ereg regexp=".*" search_in="hdr" header="{local_header}" check_it="true" assign_to="local_party"/>'
        )
    return "\n".join(lines)


def _send_bye(after_ms: int, from_header: str) -> str:
    return f"""  <pause milliseconds="{max(1, after_ms)}"/>
  <send retrans="500">
    <![CDATA[
      BYE [$remote_contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: {from_header}
      To: [$remote_party]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>"""


def _play(pcap: Path, pause_before_ms: int, duration_ms: int) -> str:
    # play_pcap_audio runs in the background; pause for its length so the next
    # segment does not cut it short.
    return (
        f'  <pause milliseconds="{max(1, pause_before_ms)}"/>\n'
        f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
        f'  <pause milliseconds="{duration_ms + 60}"/>'
    )


def caller_scenario(
    workdir: Path,
    segments: Sequence[str | Dtmf] = (),
    *,
    caller: str = DEFAULT_CALLER,
    hangup_after_ms: int | None = None,
    bye_timeout_ms: int = 30_000,
    answer_timeout_ms: int = 10_000,
    stream: DtmfStream | None = None,
    lead_silence_ms: int = 0,
) -> Path:
    """Write the caller scenario (and its DTMF pcaps) into ``workdir``; returns the XML path.

    ``hangup_after_ms=None`` waits up to ``bye_timeout_ms`` for callcore's BYE and
    answers it; a number hangs up that long after the last segment (or the answer).
    """
    stream = stream or DtmfStream()
    parts = []
    for i, seg in enumerate(segments):
        seg = Dtmf(seg) if isinstance(seg, str) else seg
        packets = stream.packets(seg.digits, lead_silence_ms=lead_silence_ms)
        pcap = workdir / f"dtmf{i:02d}.pcap"
        write_pcap(pcap, packets, src=stream.src, dst=stream.dst, start_time=stream.start_time)
        parts.append(_play(pcap, seg.pause_before_ms, round(segment_duration(packets) * 1000)))
    if hangup_after_ms is None:
        ending, on_answer = _wait_bye(bye_timeout_ms), ""
    else:
        ending = _send_bye(
            hangup_after_ms, f'"{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]'
        )
        on_answer = f"    <action>\n{_remember_dialog('To:', '')}\n    </action>"
    xml = render(
        "caller.xml", caller=caller, dtmf="\n".join(parts), ending=ending, answer_timeout_ms=answer_timeout_ms,
        on_answer=on_answer,
    )  # fmt: skip
    path = workdir / "caller.xml"
    path.write_text(xml)
    return path


def uas_scenario(
    workdir: Path,
    *,
    ring_ms: int = 0,
    hangup_after_ms: int | None = None,
    bye_timeout_ms: int = 3_600_000,
    media_pcap: Path | None = None,
    name: str = "uas",
) -> Path:
    """Write an answering-phone scenario into ``workdir``; returns the XML path."""
    media = f'  <nop><action><exec play_pcap_audio="{media_pcap}"/></action></nop>' if media_pcap else ""
    if hangup_after_ms is None:
        ending, on_invite = _wait_bye(bye_timeout_ms), ""
    else:
        ending = _send_bye(hangup_after_ms, "[$local_party];tag=[pid]SIPpTag01[call_number]")
        on_invite = _remember_dialog("From:", "To:")
    path = workdir / f"{name}.xml"
    path.write_text(render("uas.xml", ring_ms=max(1, ring_ms), media=media, ending=ending, on_invite=on_invite))
    return path


def _workdir(workdir: Path | None, prefix: str) -> tuple[Path, bool]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir, False
    return Path(tempfile.mkdtemp(prefix=f"callcore-{prefix}-")), True


def _finish(result: SippResult, owned: bool) -> SippResult:
    # Keep the files of a failed run for debugging; drop those of a clean one.
    if owned and result.ok:
        shutil.rmtree(result.workdir, ignore_errors=True)
    return result


# ---------------------------------------------------------------- callers


def run_caller(
    did: str,
    segments: Sequence[str | Dtmf] = (),
    *,
    caller: str = DEFAULT_CALLER,
    hangup_after_ms: int | None = None,
    bye_timeout_ms: int = 30_000,
    answer_timeout_ms: int = 10_000,
    lead_silence_ms: int = 0,
    stream: DtmfStream | None = None,
    target: tuple[str, int] = ASTERISK_SIP,
    timeout: float = 60.0,
    workdir: Path | None = None,
    trace_msg: bool = False,
) -> SippResult:
    """Place one call to ``did``, press the DTMF ``segments``, then wait for callcore's
    BYE (default) or hang up ``hangup_after_ms`` after the last segment. Blocks until
    sipp exits or ``timeout`` s passed (then sipp is killed and the result says so)."""
    workdir, owned = _workdir(workdir, "caller")
    scenario = caller_scenario(
        workdir, segments, caller=caller, hangup_after_ms=hangup_after_ms, bye_timeout_ms=bye_timeout_ms,
        answer_timeout_ms=answer_timeout_ms, stream=stream, lead_silence_ms=lead_silence_ms,
    )  # fmt: skip
    return _finish(_run_uac(scenario, did, 1, None, None, target, timeout, workdir, trace_msg), owned)


def run_cancel_caller(
    did: str,
    cancel_after_ms: int,
    *,
    caller: str = DEFAULT_CALLER,
    target: tuple[str, int] = ASTERISK_SIP,
    timeout: float = 30.0,
    workdir: Path | None = None,
    trace_msg: bool = False,
) -> SippResult:
    """A caller who hangs up (CANCEL) ``cancel_after_ms`` after dialing, before any answer."""
    workdir, owned = _workdir(workdir, "cancel")
    scenario = workdir / "caller_cancel.xml"
    scenario.write_text(render("caller_cancel.xml", caller=caller, cancel_after_ms=max(1, cancel_after_ms)))
    return _finish(_run_uac(scenario, did, 1, None, None, target, timeout, workdir, trace_msg), owned)


def run_callers(
    did: str,
    count: int,
    rate: float,
    *,
    limit: int | None = None,
    segments: Sequence[str | Dtmf] = (),
    caller: str = DEFAULT_CALLER,
    hangup_after_ms: int | None = None,
    bye_timeout_ms: int = 30_000,
    answer_timeout_ms: int = 10_000,
    target: tuple[str, int] = ASTERISK_SIP,
    timeout: float | None = None,
    workdir: Path | None = None,
) -> SippResult:
    """Load: ``count`` calls to ``did`` at ``rate`` calls/s, at most ``limit`` at once
    (default: count). Each call behaves like :func:`run_caller`; all play the same pcaps
    (each call is its own RTP session, so that is fine). ``timeout`` defaults to the
    time the calls need plus the per-call waits."""
    workdir, owned = _workdir(workdir, "load")
    scenario = caller_scenario(
        workdir, segments, caller=caller, hangup_after_ms=hangup_after_ms, bye_timeout_ms=bye_timeout_ms,
        answer_timeout_ms=answer_timeout_ms,
    )  # fmt: skip
    if timeout is None:
        per_call = (answer_timeout_ms + (hangup_after_ms if hangup_after_ms is not None else bye_timeout_ms)) / 1000
        timeout = count / rate + per_call + 10 * (1 + len(segments))
    return _finish(_run_uac(scenario, did, count, rate, limit or count, target, timeout, workdir, False), owned)


def _run_uac(
    scenario: Path,
    did: str,
    count: int,
    rate: float | None,
    limit: int | None,
    target: tuple[str, int],
    timeout: float,
    workdir: Path,
    trace_msg: bool,
) -> SippResult:
    name = scenario.stem
    cmd = [sipp_binary(), f"{target[0]}:{target[1]}", "-sf", str(scenario), "-s", did, "-m", str(count)]
    cmd += _sipp_common(workdir, name, allocate_media_port())
    if rate is not None:
        # -rp 1000 ms with a per-second rate; fractional rates are fine for sipp.
        cmd += ["-r", f"{rate:g}", "-rp", "1000"]
    if limit is not None:
        cmd += ["-l", str(limit)]
    if trace_msg:
        cmd += ["-trace_msg", "-message_file", str(workdir / f"{name}.messages.log")]
    # sipp's own deadline first; ours (a little later) kills it if it hangs.
    cmd += ["-timeout", f"{max(1, int(timeout))}s", "-timeout_error"]
    return _run(cmd, workdir, name, timeout + 5)


# ---------------------------------------------------------------- phones


class AnsweringPhone:
    """A sipp UAS on 127.0.0.1:``port`` that answers every INVITE, until stopped.

    ``ring_ms``: rings that long before answering (a CANCEL meanwhile is accepted).
    ``hangup_after_ms``: hang up that long after answering (default: wait for BYE).
    ``media_pcap``: a pcap played after the answer (e.g. speech + silence for AMD).
    Use as a context manager, or ``start()`` / ``stop()`` (stop kills by pid).
    """

    def __init__(
        self,
        port: int,
        *,
        ring_ms: int = 0,
        hangup_after_ms: int | None = None,
        media_pcap: Path | None = None,
        workdir: Path | None = None,
        trace_msg: bool = False,
        name: str | None = None,
    ) -> None:
        self.port = port
        self.ring_ms = ring_ms
        self.hangup_after_ms = hangup_after_ms
        self.media_pcap = media_pcap
        self.name = name or f"phone{port}"
        self.trace_msg = trace_msg
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self._owned = False
        self.proc: subprocess.Popen[bytes] | None = None
        self._out = self._err = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, ready_timeout: float = 5.0) -> AnsweringPhone:
        if self.proc is not None:
            raise RuntimeError(f"{self.name} already started")
        self.workdir, self._owned = _workdir(self._workdir_arg, self.name)
        scenario = self._scenario(self.workdir)
        cmd = [sipp_binary(), "-sf", str(scenario), "-p", str(self.port)]
        cmd += _sipp_common(self.workdir, self.name, allocate_media_port())
        if self.trace_msg:
            cmd += ["-trace_msg", "-message_file", str(self.workdir / f"{self.name}.messages.log")]
        self._out = (self.workdir / f"{self.name}.stdout.log").open("wb")
        self._err = (self.workdir / f"{self.name}.stderr.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err)
        try:
            self._wait_bound(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _scenario(self, workdir: Path) -> Path:
        return uas_scenario(workdir, ring_ms=self.ring_ms, hangup_after_ms=self.hangup_after_ms,
                            media_pcap=self.media_pcap, name=self.name)

    def _wait_bound(self, timeout: float) -> None:
        # Ready once sipp holds the SIP port (binding it ourselves then fails).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: sipp exited ({self.proc.returncode}) at start: "
                    + _read(self.workdir / f"{self.name}.stderr.log")[-2000:]  # type: ignore[operator]
                )
            if _udp_bound(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: sipp did not bind 127.0.0.1:{self.port} within {timeout} s")

    def stats(self) -> dict[str, int | str]:
        """sipp's counters (updated every second): e.g. ``IncomingCall(C)``,
        ``SuccessfulCall(C)``, ``FailedCall(C)``, ``CurrentCall``."""
        if self.workdir is None:
            return {}
        return parse_stat_csv(_read(self.workdir / f"{self.name}.stat.csv"))

    def errors(self) -> str:
        return _read(self.workdir / f"{self.name}.errors.log") if self.workdir else ""

    def stop(self) -> None:
        """Kill sipp by pid (idempotent); removes the work dir it created itself unless a call failed."""
        if self.proc is not None:
            _kill(self.proc)
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        self._out = self._err = None
        if self._owned and self.workdir is not None and not self.stats().get("FailedCall(C)"):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._owned = False

    def __enter__(self) -> AnsweringPhone:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AgentPhone(AnsweringPhone):
    """Agent NN's phone: the pjsip.conf endpoint ``agentNN`` calls 127.0.0.1:61NN."""

    def __init__(self, agent: int, **kwargs: object) -> None:
        if not 1 <= agent <= 20:
            raise ValueError("the sandbox defines agent01 … agent20")
        self.agent = agent
        kwargs.setdefault("name", f"agent{agent:02d}")
        super().__init__(AGENT_BASE_PORT + agent, **kwargs)  # type: ignore[arg-type]


class PstnPhone(AnsweringPhone):
    """The phone network answering callcore's outbound calls (PJSIP/<n>@trunk → :5080)."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("name", "pstn")
        super().__init__(PSTN_PORT, **kwargs)  # type: ignore[arg-type]


class PstnNetwork(AnsweringPhone):
    """The phone network behind the trunk (:5080) as many callees, each behaving by the last digit of the number
    dialled: 0-3 a person, 4-5 busy, 6-7 no answer, 8-9 an answering machine (scenarios/pstn_sim.xml). Every
    SIP message is traced (``dialled()`` lists the numbers that were called)."""

    def __init__(self, ring_ms: int = 800, **kwargs: object) -> None:
        kwargs.setdefault("name", "pstn-network")
        kwargs.setdefault("trace_msg", True)
        super().__init__(PSTN_PORT, ring_ms=ring_ms, **kwargs)  # type: ignore[arg-type]

    def _scenario(self, workdir: Path) -> Path:
        from .speech_pcap import write_machine_pcap, write_person_pcap

        person = write_person_pcap(workdir / "person.pcap")
        machine = write_machine_pcap(workdir / "machine.pcap")
        path = workdir / f"{self.name}.xml"
        path.write_text(render("pstn_sim.xml", ring_ms=max(1, self.ring_ms), person_pcap=person,
                               machine_pcap=machine))
        return path

    def dialled(self) -> list[str]:
        """The numbers of every INVITE that reached the network, in order (from sipp's message trace)."""
        if self.workdir is None:
            return []
        text = _read(self.workdir / f"{self.name}.messages.log")
        return re.findall(r"^INVITE sip:([^@;\s]+)@", text, flags=re.MULTILINE)
