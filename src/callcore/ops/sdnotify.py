"""systemd's notification protocol (sd_notify(3)) in a few lines, without a dependency.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket) and waits for
``READY=1`` before it considers the service started; ``RELOADING=1`` … ``READY=1`` brackets a reload,
``STOPPING=1`` announces the drain, ``STATUS=…`` is the line ``systemctl status`` shows, and ``WATCHDOG=1`` must
come at least every ``WATCHDOG_USEC`` microseconds when ``WatchdogSec=`` is set. Outside systemd every call is a
no-op returning False, so the code that calls it needs no condition.
"""

from __future__ import annotations

import os
import socket
import time


def notify(*fields: str, env: dict[str, str] | None = None) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``, ``"STATUS=12 live calls"``) to systemd. True if sent."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    address = env.get("NOTIFY_SOCKET")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # vsock addresses (vsock:CID:PORT) are for VMs: not ours
    message = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
        return True
    except OSError:
        return False


def ready(status: str | None = None) -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def reloading() -> bool:
    # MONOTONIC_USEC lets systemd (>= 253, Type=notify-reload) match the reload it asked for; older ones ignore it.
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half systemd's limit), or None when no watchdog is armed for us."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.5, int(usec) / 1_000_000 / 2)
    except ValueError:
        return None


def watchdog() -> bool:
    return notify("WATCHDOG=1")


__all__ = ["notify", "ready", "reloading", "status", "stopping", "watchdog", "watchdog_interval"]
