"""BASELINE dial policies for the outbound simulator, for comparison only: they are NOT callcore's pacer.

* :class:`Progressive` — one call ringing per free agent (1:1): a live answer always finds an agent.
* :class:`FixedRatio` — a constant dial level, counted the way VICIdial's RATIO method counts: the line goal is
  ``level × (agents ready + agents on a call)`` (agents in wrap-up do not count), minus the calls already up
  (ringing, answered and waiting, talking). ``tally="available"`` counts ready agents only (VICIdial's
  "available only ratio tally"): ``level × ready`` minus the calls ringing or waiting.
* :class:`VicidialAdapt` — our own implementation of the published VICIdial adaptive control law (ADAPT_HARD_LIMIT /
  ADAPT_AVERAGE), driving a :class:`FixedRatio` line count with a level recomputed every 15 s:

  - every second, sample (agents ready, answered calls waiting for an agent, agents ready or on a call);
  - every 15 s, with the means of the last 15 samples: ``differential = ready − waiting``,
    ``level ← level × (1 + (differential + diff_target) / agents)`` (intensity 0, the default), then capped at
    ``max_level`` (3.0) and floored at 1.0;
  - more than 20 calls in the last minute and more than 50 % of its live answers dropped: the level is halved;
  - more than 50 calls today and drops / live answers today above ``drop_percent`` (3 %): HARD_LIMIT sets the
    level to 1.0, AVERAGE halves it; then the floor of 1.0 again.

All three stop when ``may_dial`` is false or no agent is logged in.
"""

from __future__ import annotations

from collections import deque

from callcore.dialer.pacing import PacingSnapshot

__all__ = ["FixedRatio", "Progressive", "VicidialAdapt"]


def _stopped(snap: PacingSnapshot) -> bool:
    return not snap.may_dial or snap.agents_logged_in <= 0


class Progressive:
    """BASELINE: progressive 1:1."""

    def __init__(self, name: str = "progressive") -> None:
        self.name = name

    def launches(self, now: float, snap: PacingSnapshot) -> int:
        if _stopped(snap):
            return 0
        free = snap.agents_ready - snap.inbound_waiting - snap.answered_waiting
        return max(0, free - len(snap.ringing))

    def observe(self, now: float, kind: str, value: float) -> None:
        pass


def _ratio_launches(level: float, snap: PacingSnapshot, tally: str) -> int:
    if tally == "available":
        goal = round(level * snap.agents_ready)
        existing = len(snap.ringing) + snap.answered_waiting
    else:
        goal = round(level * (snap.agents_ready + len(snap.talking)))
        existing = len(snap.ringing) + snap.answered_waiting + len(snap.talking)
    return max(0, goal - existing)


class FixedRatio:
    """BASELINE: a fixed dial level (VICIdial RATIO-style line count)."""

    def __init__(self, level: float, tally: str = "incall", name: str | None = None) -> None:
        if level < 1.0 or tally not in ("incall", "available"):
            raise ValueError("level must be >= 1 and tally 'incall' or 'available'")
        self.level = level
        self.tally = tally
        self.name = name or f"ratio {level:.2f}" + (" (ready only)" if tally == "available" else "")

    def launches(self, now: float, snap: PacingSnapshot) -> int:
        if _stopped(snap):
            return 0
        return _ratio_launches(self.level, snap, self.tally)

    def observe(self, now: float, kind: str, value: float) -> None:
        pass


class VicidialAdapt:
    """BASELINE: a VICIdial-style adaptive dial level (see the module docstring)."""

    def __init__(self, method: str = "HARD_LIMIT", *, drop_percent: float = 3.0, max_level: float = 3.0,
                 start_level: float = 1.0, diff_target: float = 0.0, name: str | None = None) -> None:
        if method not in ("HARD_LIMIT", "AVERAGE"):
            raise ValueError("method must be HARD_LIMIT or AVERAGE")
        self.method = method
        self.drop_percent = drop_percent
        self.max_level = max_level
        self.level = start_level
        self.diff_target = diff_target
        self.name = name or f"vicidial ADAPT_{method}"
        self._samples: deque[tuple[int, int, int]] = deque(maxlen=15)
        self._next_sample = 0.0
        self._next_adapt = 15.0
        self._minute: deque[tuple[float, str]] = deque()  # (time, "call" | "live" | "drop") of the last minute
        self.calls_today = 0
        self.live_today = 0
        self.drops_today = 0
        self.levels: list[tuple[float, float]] = []

    def _adapt(self, now: float) -> None:
        n = len(self._samples)
        ready = sum(s[0] for s in self._samples) / n
        waiting = sum(s[1] for s in self._samples) / n
        agents = sum(s[2] for s in self._samples) / n
        diff = ready - waiting + self.diff_target
        level = self.level
        if diff != 0 and agents > 0:
            level *= 1.0 + diff / agents
        level = max(1.0, min(self.max_level, level))
        while self._minute and self._minute[0][0] <= now - 60.0:
            self._minute.popleft()
        calls = sum(1 for _, k in self._minute if k == "call")
        live = sum(1 for _, k in self._minute if k == "live")
        drops = sum(1 for _, k in self._minute if k == "drop")
        if calls > 20 and live and drops / live > 0.5:
            level /= 2.0
        if self.calls_today > 50 and self.live_today and 100.0 * self.drops_today / self.live_today > self.drop_percent:
            level = 1.0 if self.method == "HARD_LIMIT" else level / 2.0
        self.level = max(1.0, level)
        self.levels.append((now, self.level))

    def launches(self, now: float, snap: PacingSnapshot) -> int:
        if now >= self._next_sample:
            self._samples.append((snap.agents_ready, snap.answered_waiting,
                                  snap.agents_ready + len(snap.talking)))
            self._next_sample = now + 1.0
        if now >= self._next_adapt and self._samples:
            self._adapt(now)
            self._next_adapt = now + 15.0
        if _stopped(snap):
            return 0
        return _ratio_launches(self.level, snap, "incall")

    def observe(self, now: float, kind: str, value: float) -> None:
        if kind == "dialed":
            self.calls_today += int(value)
            self._minute.extend((now, "call") for _ in range(int(value)))
        elif kind in ("connected", "abandoned"):
            self.live_today += 1
            self._minute.append((now, "live"))
            if kind == "abandoned":
                self.drops_today += 1
                self._minute.append((now, "drop"))
