"""RTP audio for simulated callees: a person ("hello", then silence) and an answering machine (a long greeting).

Built from sipp's own recording (/usr/share/sip-tester/g711a.pcap: about 7 s of A-law speech in 30 ms packets).
Asterisk's AMD() needs audio frames all along: a "person" who stops sending RTP after the greeting comes back
NOTSURE, so the person keeps sending A-law silence (0xD5) for as long as the call may last.
"""

from __future__ import annotations

import struct
from pathlib import Path

from .dtmf_pcap import RtpPacket, write_pcap

SIPP_SPEECH = Path("/usr/share/sip-tester/g711a.pcap")
ALAW_SILENCE = 0xD5
PT_PCMA = 8


def _speech_payloads(source: Path = SIPP_SPEECH) -> list[bytes]:
    data = source.read_bytes()
    little = struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4
    fmt = "<IIII" if little else ">IIII"
    payloads, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(fmt, data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        payloads.append(frame[14 + 20 + 8 + 12:])  # Ethernet, IPv4, UDP, RTP headers
    return payloads


def _packets(payloads: list[bytes]) -> list[RtpPacket]:
    out, ts, t = [], 0, 0.0
    for seq, payload in enumerate(payloads):
        out.append(RtpPacket(t, PT_PCMA, seq == 0, seq & 0xFFFF, ts, 0x5EEC4, payload))
        ts += len(payload)  # 8000 Hz, one byte per sample
        t += len(payload) / 8000
    return out


def write_person_pcap(path: Path, speech_ms: int = 1200, silence_s: float = 60.0) -> Path:
    speech = _speech_payloads()
    size = len(speech[0])
    n_speech = max(1, round(speech_ms / (size / 8)))
    n_silence = round(silence_s * 8000 / size)
    write_pcap(path, _packets(speech[:n_speech] + [bytes([ALAW_SILENCE]) * size] * n_silence))
    return path


def write_machine_pcap(path: Path) -> Path:
    write_pcap(path, _packets(_speech_payloads()))
    return path
