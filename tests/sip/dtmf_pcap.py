"""Write pcap files of RFC 4733 (RFC 2833) DTMF events for sipp's ``play_pcap_audio``.

sipp replays the RTP packets of a pcap as they are (only the UDP addresses are
replaced), and Asterisk drops a telephone-event whose RTP timestamp is not newer
than the previous event's. So every digit needs its own, increasing timestamp and
the sequence numbers must continue — also across the several pcaps one call plays.
:class:`DtmfStream` keeps that state for one call and writes one pcap per segment:

    stream = DtmfStream()
    stream.write(tmp / "seg1.pcap", "7")
    stream.write(tmp / "seg2.pcap", "54321#")   # continues seq/timestamp of seg1

Each digit is sent as in a real phone: ``packets_per_digit`` updates 20 ms apart with
the same timestamp and a growing duration (the first with the RTP marker bit), then
the final update with the end bit, repeated ``end_repeats`` times. Optionally PCMU
silence (0xFF) packets go before/after the digits, so Asterisk sees ordinary media.
"""

from __future__ import annotations

import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

#: RFC 4733 event codes.
EVENTS: dict[str, int] = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
PCMU_PAYLOAD_TYPE = 0
PCMU_SILENCE = b"\xff"
SAMPLE_RATE = 8000
PTIME_MS = 20
SAMPLES_PER_PACKET = SAMPLE_RATE * PTIME_MS // 1000  # 160


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet and when (seconds since the pcap's start) it is sent."""

    offset: float
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes

    def to_bytes(self) -> bytes:
        byte0 = 0x80  # version 2, no padding, no extension, no CSRC
        byte1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        return struct.pack("!BBHII", byte0, byte1, self.seq, self.timestamp, self.ssrc) + self.payload


def event_payload(event: int, end: bool, volume: int, duration: int) -> bytes:
    """The 4-byte telephone-event payload: event, E|R|volume, duration."""
    if not 0 <= event <= 255:
        raise ValueError(f"event out of range: {event}")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume out of range: {volume}")
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, min(duration, 0xFFFF))


class DtmfStream:
    """The RTP state of one call's DTMF: successive pcaps continue seq and timestamp.

    ``duration_step`` is the duration growth per 20 ms update in timestamp units;
    160 matches the 8 kHz clock (Asterisk accepts 320 too, as in sipp's own samples).
    ``gap_ms`` is the pause between two digits of one segment. ``segment_gap_ms`` is
    added to the timestamp before each new segment, standing for the time the scenario
    waits between pcaps (only monotonicity matters to Asterisk).
    """

    def __init__(
        self,
        *,
        payload_type: int = 101,
        ssrc: int | None = None,
        seq: int | None = None,
        timestamp: int | None = None,
        packets_per_digit: int = 8,
        duration_step: int = SAMPLES_PER_PACKET,
        end_repeats: int = 3,
        gap_ms: int = 100,
        segment_gap_ms: int = 1000,
        volume: int = 10,
        src: tuple[str, int] = ("127.0.0.1", 20000),
        dst: tuple[str, int] = ("127.0.0.1", 10000),
        start_time: float = 1_700_000_000.0,
    ) -> None:
        if packets_per_digit < 1 or end_repeats < 1:
            raise ValueError("packets_per_digit and end_repeats must be at least 1")
        rng = random.Random()
        self.payload_type = payload_type
        self.ssrc = ssrc if ssrc is not None else rng.getrandbits(32)
        # Start low enough that a long call never wraps (a wrap would look "older").
        self.seq = seq if seq is not None else rng.randrange(1, 0x4000)
        self.timestamp = timestamp if timestamp is not None else rng.randrange(1, 0x10000000)
        self.packets_per_digit = packets_per_digit
        self.duration_step = duration_step
        self.end_repeats = end_repeats
        self.gap_ms = gap_ms
        self.segment_gap_ms = segment_gap_ms
        self.volume = volume
        self.src = src
        self.dst = dst
        self.start_time = start_time
        self._segments = 0

    # -- state

    def advance(self, ms: float) -> None:
        """Account for ``ms`` of call time passing without packets (e.g. a scenario pause)."""
        self.timestamp = (self.timestamp + int(ms * SAMPLE_RATE / 1000)) & 0xFFFFFFFF

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        return seq

    # -- packets

    def packets(self, digits: str, *, lead_silence_ms: int = 0, trail_silence_ms: int = 0) -> list[RtpPacket]:
        """The RTP packets of one segment, advancing the stream's state."""
        events = []
        for ch in digits:
            key = ch.upper()
            if key not in EVENTS:
                raise ValueError(f"not a DTMF digit: {ch!r} (use 0-9 * # A-D)")
            events.append(EVENTS[key])
        if self._segments:
            self.advance(self.segment_gap_ms)
        self._segments += 1

        out: list[RtpPacket] = []
        t = 0.0  # seconds since the segment's first packet
        step = PTIME_MS / 1000

        def silence(ms: int) -> None:
            nonlocal t
            for _ in range(max(0, ms) // PTIME_MS):
                out.append(
                    RtpPacket(
                        t, PCMU_PAYLOAD_TYPE, False, self._next_seq(), self.timestamp, self.ssrc,
                        PCMU_SILENCE * SAMPLES_PER_PACKET,
                    )
                )
                self.advance(PTIME_MS)
                t += step

        silence(lead_silence_ms)
        for i, event in enumerate(events):
            if i:
                # Inter-digit pause: no packets, but call time passes.
                self.advance(self.gap_ms)
                t += self.gap_ms / 1000
            ts = self.timestamp
            for n in range(1, self.packets_per_digit + 1):
                out.append(
                    RtpPacket(
                        t, self.payload_type, n == 1, self._next_seq(), ts, self.ssrc,
                        event_payload(event, False, self.volume, n * self.duration_step),
                    )
                )
                t += step
            end_duration = (self.packets_per_digit + 1) * self.duration_step
            for _ in range(self.end_repeats):
                out.append(
                    RtpPacket(
                        t, self.payload_type, False, self._next_seq(), ts, self.ssrc,
                        event_payload(event, True, self.volume, end_duration),
                    )
                )
                t += step
            # The event covered the time of all its updates.
            self.advance((self.packets_per_digit + self.end_repeats) * PTIME_MS)
        silence(trail_silence_ms)
        return out

    def write(self, path: str | os.PathLike[str], digits: str, **kwargs: int) -> Path:
        """Write one segment's pcap to ``path``; returns the path. See :meth:`packets`."""
        path = Path(path)
        write_pcap(path, self.packets(digits, **kwargs), src=self.src, dst=self.dst, start_time=self.start_time)
        return path


def segment_duration(packets: list[RtpPacket]) -> float:
    """Seconds from the first to the last packet of a segment (0 for none)."""
    return packets[-1].offset - packets[0].offset if packets else 0.0


# ---------------------------------------------------------------- pcap encoding


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip4(addr: str) -> bytes:
    parts = [int(p) for p in addr.split(".")]
    if len(parts) != 4 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"not an IPv4 address: {addr!r}")
    return bytes(parts)


def udp_frame(payload: bytes, src: tuple[str, int], dst: tuple[str, int], ident: int = 0) -> bytes:
    """Ethernet + IPv4 + UDP around ``payload``, with valid IP and UDP checksums."""
    sip, dip = _ip4(src[0]), _ip4(dst[0])
    udp_len = 8 + len(payload)
    pseudo = sip + dip + struct.pack("!BBH", 0, 17, udp_len)
    udp_nosum = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    udp_sum = _checksum(pseudo + udp_nosum) or 0xFFFF
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, udp_sum) + payload
    ip_nosum = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident & 0xFFFF, 0x4000, 64, 17, 0, sip, dip)
    ip = ip_nosum[:10] + struct.pack("!H", _checksum(ip_nosum)) + ip_nosum[12:]
    # Locally administered MACs; sipp ignores the Ethernet header's content.
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", 0x0800)
    return eth + ip + udp


def write_pcap(
    path: str | os.PathLike[str],
    packets: list[RtpPacket],
    *,
    src: tuple[str, int] = ("127.0.0.1", 20000),
    dst: tuple[str, int] = ("127.0.0.1", 10000),
    start_time: float = 1_700_000_000.0,
) -> None:
    """Write ``packets`` as a classic (microsecond) little-endian pcap with Ethernet framing."""
    chunks = [struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)]
    for i, pkt in enumerate(packets):
        frame = udp_frame(pkt.to_bytes(), src, dst, ident=i)
        usec_total = round((start_time + pkt.offset) * 1_000_000)
        sec, usec = divmod(usec_total, 1_000_000)
        chunks.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
        chunks.append(frame)
    Path(path).write_bytes(b"".join(chunks))


def write_dtmf_pcap(path: str | os.PathLike[str], digits: str, stream: DtmfStream | None = None, **kwargs: int) -> Path:
    """One-shot helper: a pcap of ``digits`` (a fresh stream unless one is given)."""
    return (stream or DtmfStream()).write(path, digits, **kwargs)
