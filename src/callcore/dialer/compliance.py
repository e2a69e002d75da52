"""Abandoned-call rules: what counts, over which window, up to which limit; and a pure sliding-window ledger.

No I/O, no clock: every method takes ``now`` (float seconds, any epoch, never decreasing between calls).

An **abandoned call** is a live person who answered and was not connected to a live agent within
``connect_limit_seconds`` of the end of the greeting (in practice: of the answer). The caller of the ledger
decides that (see :func:`is_abandoned`) and records every live answer with its outcome; the ledger counts them in
the policy's sliding window and in any shorter *control* windows the pacer asks for, and answers "how many
abandons may I still spend" (:meth:`AbandonLedger.remaining`).

Presets (:data:`PRESETS`):

* ``us_ftc`` — USA, FTC Telemarketing Sales Rule safe harbor (16 CFR 310.4(b)(4)) and the FCC's rule: at most 3 % of
  the calls answered by a live person, per campaign, measured over 30 days; a live agent within 2 s of the
  greeting; let an unanswered call ring at least 15 s (or 4 rings). AMD verdicts are not counted.
* ``uk_ofcom`` — UK, Ofcom's persistent-misuse policy: at most 3 % of live calls per campaign over 24 hours;
  AMD false positives (live people the machine detector hung up on) count as abandoned calls, by a reasonable
  estimate; a number that got an abandoned call is not called again within 72 hours unless a live agent is
  guaranteed; unanswered calls ring at least 15 s.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

__all__ = [
    "PRESETS",
    "AbandonLedger",
    "AbandonPolicy",
    "Budget",
    "WindowCounts",
    "is_abandoned",
    "preset",
]

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class AbandonPolicy:
    """Per-campaign abandonment rules. ``limit`` is a fraction of the live-answered calls in any window of
    ``window_seconds``. ``amd_false_positive_rate`` is the estimated share of AMD "machine" verdicts that were
    really live people; when ``count_amd_false_positives`` each verdict adds that share to both the live answers
    and the abandons (known false positives may be recorded one by one instead)."""

    name: str = "custom"
    limit: float = 0.03
    window_seconds: float = 30 * DAY
    connect_limit_seconds: float = 2.0
    count_amd_false_positives: bool = False
    amd_false_positive_rate: float = 0.0
    no_redial_after_abandon_seconds: float = 0.0
    min_ring_seconds: float = 15.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.limit < 1.0:
            raise ValueError("limit must be a fraction in [0, 1)")
        if not self.window_seconds > 0:
            raise ValueError("window_seconds must be > 0")
        if not self.connect_limit_seconds >= 0:
            raise ValueError("connect_limit_seconds must be >= 0")
        if not 0.0 <= self.amd_false_positive_rate <= 1.0:
            raise ValueError("amd_false_positive_rate must be in [0, 1]")
        if self.no_redial_after_abandon_seconds < 0 or self.min_ring_seconds < 0:
            raise ValueError("durations must be >= 0")


PRESETS: dict[str, AbandonPolicy] = {
    "us_ftc": AbandonPolicy("us_ftc", limit=0.03, window_seconds=30 * DAY, connect_limit_seconds=2.0,
                            count_amd_false_positives=False, min_ring_seconds=15.0),
    "uk_ofcom": AbandonPolicy("uk_ofcom", limit=0.03, window_seconds=DAY, connect_limit_seconds=2.0,
                              count_amd_false_positives=True, amd_false_positive_rate=0.0,
                              no_redial_after_abandon_seconds=72 * HOUR, min_ring_seconds=15.0),
}


def preset(name: str, **overrides: object) -> AbandonPolicy:
    """A preset by name (``us_ftc``, ``uk_ofcom``), optionally with fields overridden."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown abandonment preset {name!r} (known: {', '.join(sorted(PRESETS))})") from None
    return replace(base, **overrides) if overrides else base  # type: ignore[arg-type]


def is_abandoned(answered_at: float, connected_at: float | None, policy: AbandonPolicy) -> bool:
    """A live answer is abandoned unless an agent was connected within the policy's connect limit."""
    return connected_at is None or connected_at - answered_at > policy.connect_limit_seconds


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Live answers and abandons in one window (floats: AMD false positives may be counted by estimate)."""

    seconds: float
    live: float = 0.0
    abandons: float = 0.0

    @property
    def rate(self) -> float:
        return self.abandons / self.live if self.live > 0 else 0.0

    def headroom(self, limit: float) -> float:
        """Abandons that may still happen now with the window staying at or under ``limit`` (may be < 0)."""
        return limit * self.live - self.abandons


@dataclass(frozen=True, slots=True)
class Budget:
    """What the pacer sees of the ledger: the policy window, the control windows (shortest first) and the recent
    abandons as ``(age in seconds, amount)``, newest first (amounts are 1, or a share for estimated AMD false
    positives), over the ledger's ``recent_seconds``."""

    limit: float
    window: WindowCounts
    control: tuple[WindowCounts, ...] = ()
    recent_abandons: tuple[tuple[float, float], ...] = ()

    @property
    def remaining(self) -> float:
        return self.window.headroom(self.limit)

    @staticmethod
    def empty(limit: float = 0.03, window_seconds: float = 30 * DAY) -> Budget:
        """An empty window (start of a campaign): nothing may be spent yet."""
        return Budget(limit, WindowCounts(window_seconds))


class _Window:
    __slots__ = ("seconds", "start", "live", "abandons")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = 0  # index of the oldest event still inside the window
        self.live = 0.0
        self.abandons = 0.0


class AbandonLedger:
    """Live answers and abandons of one campaign in sliding windows: the policy's, plus ``control_windows``.

    An event at time ``t`` is inside a window of length ``w`` at ``now`` while ``now - t < w``. Recording is O(1)
    and queries are O(1) amortised (each event enters and leaves each window once). The abandons of the last
    ``recent_seconds`` are also kept one by one (:attr:`Budget.recent_abandons`): the pacer's rate guard reads
    their ages.
    """

    def __init__(self, policy: AbandonPolicy, control_windows: Iterable[float] = (), *,
                 recent_seconds: float = HOUR) -> None:
        if not recent_seconds >= 0:
            raise ValueError("recent_seconds must be >= 0")
        self.policy = policy
        self.recent_seconds = float(recent_seconds)
        self._recent: deque[tuple[float, float]] = deque()  # (time, amount) of each abandon, oldest first
        ctl = sorted({float(s) for s in control_windows})
        if any(s <= 0 for s in ctl):
            raise ValueError("control windows must be > 0 seconds")
        self._control = [_Window(s) for s in ctl]
        self._policy = _Window(policy.window_seconds)
        self._all = [*self._control, self._policy]
        self._t: list[float] = []
        self._live: list[float] = []
        self._ab: list[float] = []
        self._base = 0  # events dropped from the front of the lists (all windows are past them)
        self._now = -math.inf
        self._no_redial: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ recording

    def _advance(self, now: float) -> None:
        if now < self._now:
            raise ValueError(f"time went backwards: {now} < {self._now}")
        self._now = now
        recent = self._recent
        while recent and now - recent[0][0] >= self.recent_seconds:
            recent.popleft()
        for w in self._all:
            i = w.start - self._base
            while i < len(self._t) and now - self._t[i] >= w.seconds:
                w.live -= self._live[i]
                w.abandons -= self._ab[i]
                i += 1
            w.start = i + self._base
            if i == len(self._t):  # window empty: clear float residue
                w.live = w.abandons = 0.0
        oldest = min(w.start for w in self._all) - self._base
        if oldest > 1024 and oldest * 2 > len(self._t):
            del self._t[:oldest], self._live[:oldest], self._ab[:oldest]
            self._base += oldest

    def _add(self, now: float, live: float, abandons: float) -> None:
        self._advance(now)
        self._t.append(now)
        self._live.append(live)
        self._ab.append(abandons)
        for w in self._all:
            w.live += live
            w.abandons += abandons
        if abandons > 0 and self.recent_seconds > 0:
            self._recent.append((now, abandons))

    def record_live(self, now: float, *, abandoned: bool, number: str | None = None) -> None:
        """A live person answered; ``abandoned``: no agent within the connect limit (see :func:`is_abandoned`)."""
        self._add(now, 1.0, 1.0 if abandoned else 0.0)
        if abandoned and number is not None and self.policy.no_redial_after_abandon_seconds > 0:
            self._no_redial[number] = now + self.policy.no_redial_after_abandon_seconds

    def record_amd_machine(self, now: float) -> None:
        """The answering-machine detector said "machine" and the call was hung up: counted, when the policy says
        so, as ``amd_false_positive_rate`` of a live answer that was abandoned."""
        share = self.policy.amd_false_positive_rate
        if self.policy.count_amd_false_positives and share > 0:
            self._add(now, share, share)
        else:
            self._advance(now)

    def record_amd_false_positive(self, now: float) -> None:
        """A known AMD false positive (a live person hung up on as a machine): an abandon when the policy counts
        them, nothing otherwise."""
        if self.policy.count_amd_false_positives:
            self._add(now, 1.0, 1.0)
        else:
            self._advance(now)

    # -------------------------------------------------------------------------------------------- queries

    def counts(self, now: float, window_seconds: float | None = None) -> WindowCounts:
        """Counts in the policy window (default) or in one of the control windows."""
        self._advance(now)
        if window_seconds is None or window_seconds == self._policy.seconds:
            w = self._policy
        else:
            found = [c for c in self._control if c.seconds == window_seconds]
            if not found:
                raise ValueError(f"no control window of {window_seconds} s in this ledger")
            w = found[0]
        return WindowCounts(w.seconds, max(0.0, w.live), max(0.0, w.abandons))

    def remaining(self, now: float) -> float:
        """Abandons that may still happen now with the policy window staying within the limit (< 0: overspent)."""
        return self.counts(now).headroom(self.policy.limit)

    def may_spend(self, now: float) -> int:
        """Whole abandons that may still be spent now (0 when the budget is used up)."""
        return max(0, math.floor(self.remaining(now) + 1e-9))

    def budget(self, now: float) -> Budget:
        """The snapshot the pacer takes."""
        self._advance(now)
        ctl = tuple(WindowCounts(c.seconds, max(0.0, c.live), max(0.0, c.abandons)) for c in self._control)
        ages = tuple((now - t, a) for t, a in reversed(self._recent))
        return Budget(self.policy.limit, self.counts(now), ctl, ages)

    def redial_allowed(self, number: str, now: float) -> bool:
        """False while ``number`` is inside its no-redial period after an abandoned call (Ofcom: 72 h)."""
        until = self._no_redial.get(number)
        if until is None:
            return True
        if now >= until:
            del self._no_redial[number]
            return True
        return False
