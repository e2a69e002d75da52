"""SIP test harness for callcore's integration tests: sipp callers, agent phones and
the simulated phone network on 127.0.0.1, plus an RFC 4733 DTMF pcap writer.

Needs sipp (Debian sip-tester) and root (sipp plays pcaps through a raw socket).
"""

from .dtmf_pcap import DtmfStream, RtpPacket, write_dtmf_pcap, write_pcap
from .runner import (
    AgentPhone,
    AnsweringPhone,
    Dtmf,
    PstnNetwork,
    PstnPhone,
    SippResult,
    run_caller,
    run_callers,
    run_cancel_caller,
)

__all__ = [
    "AgentPhone",
    "AnsweringPhone",
    "Dtmf",
    "DtmfStream",
    "PstnNetwork",
    "PstnPhone",
    "RtpPacket",
    "SippResult",
    "run_caller",
    "run_callers",
    "run_cancel_caller",
    "write_dtmf_pcap",
    "write_pcap",
]
