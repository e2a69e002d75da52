"""The DTMF pcap writer: byte layout parsed back with struct, and the RTP rules
Asterisk relies on (same timestamp per digit, rising duration, end bit x3, newer
timestamp and continuing sequence numbers per digit and across pcaps)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.sip.dtmf_pcap import EVENTS, DtmfStream, RtpPacket, event_payload, udp_frame, write_dtmf_pcap


def _checksum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def read_pcap(path: Path) -> tuple[tuple, list[dict]]:
    """Parse a classic pcap of Ethernet/IPv4/UDP/RTP frames into dicts."""
    data = path.read_bytes()
    header = struct.unpack("<IHHiIII", data[:24])
    pos, packets = 24, []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack("<IIII", data[pos : pos + 16])
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        assert incl == orig == len(frame)
        (ethertype,) = struct.unpack("!H", frame[12:14])
        ip = frame[14:34]
        ver_ihl, _tos, total_len, _id, flags, ttl, proto, _sum, src, dst = struct.unpack("!BBHHHBBH4s4s", ip)
        udp = frame[34 : 14 + total_len]
        sport, dport, ulen, usum = struct.unpack("!HHHH", udp[:8])
        pseudo = src + dst + struct.pack("!BBH", 0, 17, ulen)
        rtp = udp[8:]
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", rtp[:12])
        packets.append(
            dict(
                time=sec + usec / 1e6, ethertype=ethertype, ver_ihl=ver_ihl, proto=proto, ttl=ttl, flags=flags,
                ip_ok=_checksum_ok(ip), udp_ok=usum != 0 and _checksum_ok(pseudo + udp), src=(src, sport),
                dst=(dst, dport), ulen=ulen, version=b0 >> 6, marker=bool(b1 & 0x80), pt=b1 & 0x7F, seq=seq,
                ts=ts, ssrc=ssrc, payload=rtp[12:],
            )
        )  # fmt: skip
    return header, packets


def events_of(packets: list[dict]) -> list[dict]:
    out = []
    for p in packets:
        if p["pt"] == 101:
            event, flags, duration = struct.unpack("!BBH", p["payload"])
            out.append({**p, "event": event, "end": bool(flags & 0x80), "volume": flags & 0x3F, "duration": duration})
    return out


def test_pcap_global_header_and_frame_layout(tmp_path: Path) -> None:
    path = write_dtmf_pcap(tmp_path / "d.pcap", "7", DtmfStream(ssrc=0x1234, seq=10, timestamp=5000))
    header, packets = read_pcap(path)
    assert header == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # magic, v2.4, Ethernet
    assert len(packets) == 8 + 3
    for p in packets:
        assert p["ethertype"] == 0x0800 and p["ver_ihl"] == 0x45 and p["proto"] == 17
        assert p["ip_ok"] and p["udp_ok"]
        assert p["src"] == (bytes([127, 0, 0, 1]), 20000) and p["dst"] == (bytes([127, 0, 0, 1]), 10000)
        assert p["ulen"] == 8 + 12 + 4
        assert p["version"] == 2 and p["pt"] == 101 and p["ssrc"] == 0x1234


def test_one_digit_follows_rfc4733(tmp_path: Path) -> None:
    _, packets = read_pcap(write_dtmf_pcap(tmp_path / "d.pcap", "7", DtmfStream(seq=10, timestamp=5000)))
    ev = events_of(packets)
    assert [e["event"] for e in ev] == [7] * 11
    assert {e["ts"] for e in ev} == {5000}, "one timestamp for the whole event"
    assert [e["seq"] for e in ev] == list(range(10, 21)), "every packet, end repeats included, has a new seq"
    assert [e["marker"] for e in ev] == [True] + [False] * 10
    assert [e["end"] for e in ev] == [False] * 8 + [True] * 3
    assert [e["duration"] for e in ev[:8]] == [160 * n for n in range(1, 9)]
    assert {e["duration"] for e in ev[8:]} == {160 * 9}
    gaps = [round((b["time"] - a["time"]) * 1000) for a, b in zip(packets, packets[1:])]
    assert gaps == [20] * 10


def test_each_digit_gets_a_newer_timestamp_and_seq_continues(tmp_path: Path) -> None:
    _, packets = read_pcap(write_dtmf_pcap(tmp_path / "d.pcap", "77", DtmfStream(seq=100, timestamp=1000)))
    ev = events_of(packets)
    first, second = ev[:11], ev[11:]
    assert [e["event"] for e in ev] == [7] * 22
    assert second[0]["ts"] > first[0]["ts"]
    assert second[0]["marker"] and second[0]["seq"] == first[-1]["seq"] + 1
    # the next digit starts after the gap, not overlapping the first one
    assert second[0]["time"] - first[-1]["time"] >= 0.1


def test_stream_continues_across_pcaps(tmp_path: Path) -> None:
    stream = DtmfStream(seq=500, timestamp=10_000)
    _, a = read_pcap(stream.write(tmp_path / "a.pcap", "54321#"))
    _, b = read_pcap(stream.write(tmp_path / "b.pcap", "77"))
    ea, eb = events_of(a), events_of(b)
    assert "".join(k for e in ea[::11] for k, v in EVENTS.items() if v == e["event"]) == "54321#"
    seqs = [e["seq"] for e in ea + eb]
    assert seqs == list(range(500, 500 + len(seqs)))
    starts = [e["ts"] for e in (ea + eb)[::11]]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert {p["ssrc"] for p in a + b} == {stream.ssrc}


def test_silence_lead_in_is_pcmu(tmp_path: Path) -> None:
    stream = DtmfStream(seq=1, timestamp=0)
    _, packets = read_pcap(stream.write(tmp_path / "s.pcap", "1", lead_silence_ms=60, trail_silence_ms=40))
    audio = [p for p in packets if p["pt"] == 0]
    assert len(audio) == 5
    assert all(p["payload"] == b"\xff" * 160 for p in audio)
    assert [p["ts"] for p in audio[:3]] == [0, 160, 320]
    assert events_of(packets)[0]["ts"] == 480, "the event starts where the silence ended"
    assert [p["seq"] for p in packets] == list(range(1, len(packets) + 1))


def test_duration_step_and_end_repeats_configurable(tmp_path: Path) -> None:
    stream = DtmfStream(duration_step=320, end_repeats=2, packets_per_digit=4)
    ev = events_of(read_pcap(stream.write(tmp_path / "d.pcap", "#"))[1])
    assert [e["duration"] for e in ev] == [320, 640, 960, 1280, 1600, 1600]
    assert ev[0]["event"] == 11


@pytest.mark.parametrize("bad", ["x", "1 2", "E"])
def test_rejects_non_dtmf(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        DtmfStream().packets(bad)


def test_letters_and_star() -> None:
    ev = [p for p in DtmfStream().packets("*aD") if p.marker]
    assert [struct.unpack("!B", p.payload[:1])[0] for p in ev] == [10, 12, 15]


def test_rtp_packet_and_event_payload_bytes() -> None:
    pkt = RtpPacket(0.0, 101, True, 0x0102, 0x03040506, 0x0708090A, event_payload(5, True, 10, 800))
    assert pkt.to_bytes() == bytes.fromhex("80e5010203040506 0708090a 058a0320".replace(" ", ""))
    with pytest.raises(ValueError):
        event_payload(5, False, 64, 0)


def test_udp_frame_length() -> None:
    frame = udp_frame(b"abc", ("127.0.0.1", 1), ("127.0.0.2", 2))
    assert len(frame) == 14 + 20 + 8 + 3
    with pytest.raises(ValueError):
        udp_frame(b"", ("::1", 1), ("127.0.0.1", 2))
