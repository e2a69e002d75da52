"""Webhook signatures: ``X-Callcore-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.

The timestamp (``X-Callcore-Timestamp``, Unix seconds) is part of what is signed, so a receiver can refuse
replays of old requests: :func:`verify` accepts a timestamp within ``tolerance`` seconds of its clock.
docs/webhooks.md shows the same check in a few lines for receivers that do not use callcore's code.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SCHEME = "sha256"
EVENT_ID_HEADER = "X-Callcore-Event-Id"
EVENT_TYPE_HEADER = "X-Callcore-Event-Type"
TIMESTAMP_HEADER = "X-Callcore-Timestamp"
SIGNATURE_HEADER = "X-Callcore-Signature"
WEBHOOK_HEADER = "X-Callcore-Webhook"
ATTEMPT_HEADER = "X-Callcore-Attempt"
DEFAULT_TOLERANCE = 300


def signature(secret: bytes, timestamp: int | str, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp``: ``sha256=<64 hex digits>``."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(secret: bytes, timestamp: str | None, body: bytes, header: str | None, *,
           tolerance: float = DEFAULT_TOLERANCE, now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` at ``timestamp`` with ``secret``, and the timestamp is recent."""
    if not timestamp or not header or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), header.strip().encode())


__all__ = [
    "ATTEMPT_HEADER",
    "DEFAULT_TOLERANCE",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WEBHOOK_HEADER",
    "signature",
    "verify",
]
