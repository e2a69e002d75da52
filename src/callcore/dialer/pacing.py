"""The predictive pacer: how many calls to launch *now* (pure: no asyncio, no I/O, ``now`` and state passed in).

The caller (the dialer service, or the simulator) builds a :class:`PacingSnapshot` about once a second — agents
ready, talking and in wrap-up with their elapsed times, calls ringing with their elapsed ring times, live answers
waiting for an agent, inbound demand on the same agents, the abandonment :class:`Budget` — and passes the
campaign's current :class:`~callcore.dialer.estimators.TrafficModel`. :meth:`Pacer.decide` returns a
:class:`Decision`: the number of calls to launch and which rule decided. docs/dialer.md explains the control law;
in short:

1. Stop rules: nothing when ``may_dial`` is false, no agent is logged in or none can take a call, the leads
   are gone or the line cap (``max_lines_per_agent``) is reached.
2. Progressive floor: one call ringing per free agent is always allowed (a live answer then finds an agent).
3. Look-ahead: for the next ~20 s (quantiles of the time to a live answer), the expected live answers from the
   calls ringing (given how long each has rung) against the agents free by then (ready ones, and those in
   wrap-up or talk given their elapsed times). Risk(n) = expected abandons among the calls in flight if ``n``
   more are launched.
4. Budget: extra calls are added one by one while (a) the abandons each adds, per live answer it brings, stay
   under a threshold, and (b) the expected abandons in flight fit in the *stock*: what the policy window and the
   longest control window may still absorb at the cap (a little under the limit), less a reserve. The threshold
   tapers to zero with the stock, so the pacer slides back to progressive as the budget runs out, and with a
   15-minute rate guard (a token bucket read from the ages of the recent abandons), so that abandons are spent at
   the cap's pace rather than in clusters.
5. The count of live answers to come is taken as more dispersed than a binomial one (``dispersion``): its upper
   tail, several answers in the same seconds, is what makes bursts of abandons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from callcore.dialer.compliance import Budget
from callcore.dialer.estimators import TrafficModel

__all__ = ["Decision", "Pacer", "PacerConfig", "PacingSnapshot"]

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True, slots=True)
class PacingSnapshot:
    """What the system observes of one campaign at one instant (elapsed times in seconds).

    ``agents_logged_in`` counts agents serving the campaign (paused ones included, ones logging out excluded);
    ``agents_ready`` the idle ones a call could go to now; ``talking`` / ``wrapping`` the elapsed talk and
    wrap-up times of the others that will come back to the campaign. ``ringing``: elapsed time of every outbound
    call launched and not yet resolved; ``answered_waiting``: live answers waiting for an agent right now.
    ``inbound_waiting`` / ``inbound_rate`` (calls per second): inbound demand on the same agents, which goes
    first. ``may_dial``: the caller's verdict on campaign state and calling windows.
    """

    may_dial: bool
    agents_logged_in: int
    agents_ready: int
    talking: tuple[float, ...] = ()
    wrapping: tuple[float, ...] = ()
    ringing: tuple[float, ...] = ()
    answered_waiting: int = 0
    inbound_waiting: int = 0
    inbound_rate: float = 0.0
    leads_left: int | None = None
    budget: Budget = field(default_factory=Budget.empty)


@dataclass(frozen=True, slots=True)
class PacerConfig:
    """Tuning of the control law (docs/dialer.md explains each; the defaults are the benchmarked ones)."""

    max_lines_per_agent: float = 3.0
    """Calls ringing at once, at most, per agent who can take a call soon (ready, talking, wrapping up)."""
    marginal_factor: float = 1.2
    """A further call is launched while the abandons it adds, per live answer it brings, stay under
    ``marginal_factor`` x the limit (before the taper)."""
    taper: float = 0.3
    """The threshold falls linearly from full to 0 as the stock falls from ``taper`` x the window's whole
    allowance (cap x live answers) to 0."""
    margin: float = 0.1
    """The cap is (1 - margin) x the limit: a sliding window's live answers may still shrink after its last
    abandon, and the model is an estimate."""
    reserve: float = 1.5
    """Abandons kept unspent in every budgeted window (a burst of abandons from calls already out)."""
    connect_grace: float = 2.0
    """Seconds a live answer may wait for an agent (the policy's connect limit)."""
    min_attempts: int = 40
    """Warm-up: progressive until this many attempts of the campaign have resolved."""
    dispersion: float = 1.5
    """The variance of the live answers to come is taken as this x the binomial one: their count has a heavier
    upper tail than the normal approximation (many rare events), and that tail is a burst of abandons."""
    guard_window: float = 900.0
    """Rate guard (0: off): abandons in any stretch of at least this many seconds should stay within the cap of
    the live answers expected in it; the threshold tapers as recent abandons use that up."""
    guard_share: float = 0.5
    """Of the guard window's allowance, this share refills steadily; the rest may be spent at once."""
    grid: tuple[float, ...] = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 0.99)
    """Look-ahead points: these quantiles of the time from dial to live answer."""

    def __post_init__(self) -> None:
        if not self.max_lines_per_agent >= 1.0:
            raise ValueError("max_lines_per_agent must be >= 1")
        if not (self.marginal_factor >= 0 and 0.0 < self.taper <= 1.0 and 0.0 <= self.margin < 1.0):
            raise ValueError("need marginal_factor >= 0, 0 < taper <= 1, 0 <= margin < 1")
        if self.reserve < 0 or self.connect_grace < 0 or not self.grid:
            raise ValueError("need reserve >= 0, connect_grace >= 0 and a grid")
        if not (self.dispersion >= 1.0 and self.guard_window >= 0 and 0.0 < self.guard_share < 1.0):
            raise ValueError("need dispersion >= 1, guard_window >= 0, 0 < guard_share < 1")


@dataclass(frozen=True, slots=True)
class Decision:
    """``launch`` calls now; ``reason`` names the rule that decided; the rest is for logs and tests.

    Reasons: ``not_allowed``, ``no_agents``, ``leads_exhausted``, ``line_cap``, ``warmup`` (progressive),
    ``budget`` (progressive: no abandon may be spent now), ``progressive`` (no extra call passed the test),
    ``predictive`` (extra calls launched)."""

    launch: int
    reason: str
    progressive: int = 0
    risk: float = 0.0
    """Expected abandons among the calls in flight after launching (model estimate)."""
    threshold: float = 0.0
    """Abandons an extra call may add per live answer it brings (after the taper)."""
    stock: float = 0.0
    """Expected abandons the calls in flight may cause (what the budgeted windows may still absorb)."""
    cap: int = 0
    """The most calls the line cap and the leads allowed."""


class _Tables:
    """Per-model look-ups on the grid (pure caches; rebuilt when the model object changes)."""

    def __init__(self, model: TrafficModel, cfg: PacerConfig) -> None:
        self.model = model
        self.taus = tuple(max(0.5, model.live_ring.quantile(q)) for q in cfg.grid)
        self.grace = cfg.connect_grace
        self.new_live = tuple(model.answer_rate * model.live_ring.cdf(t) for t in self.taus)
        self.talk_matters = self.taus[-1] + self.grace > min(model.wrap_points)
        self._ring: dict[int, tuple[float, ...]] = {}
        self._wrap: dict[int, tuple[float, ...]] = {}
        self._talk: dict[int, tuple[float, ...]] = {}

    def ring(self, elapsed: float) -> tuple[float, ...]:
        k = int(elapsed)
        v = self._ring.get(k)
        if v is None:
            v = self._ring[k] = tuple(self.model.p_live_within(k + 0.5, t) for t in self.taus)
        return v

    def wrap(self, elapsed: float) -> tuple[float, ...]:
        k = int(elapsed)
        v = self._wrap.get(k)
        if v is None:
            v = self._wrap[k] = tuple(self.model.p_free_after_wrap(k + 0.5, t + self.grace) for t in self.taus)
        return v

    def talk(self, elapsed: float) -> tuple[float, ...]:
        k = int(elapsed // 5.0)
        v = self._talk.get(k)
        if v is None:
            e = k * 5.0 + 2.5
            v = self._talk[k] = tuple(self.model.p_free_after_talk(e, t + self.grace) for t in self.taus)
        return v


class _Outlook:
    """Expected live answers against free agents on the grid; ``risk(n)``: expected abandons with ``n`` more."""

    def __init__(self, snap: PacingSnapshot, t: _Tables, dispersion: float = 1.0) -> None:
        nj = len(t.taus)
        d_mean, d_var = [0.0] * nj, [0.0] * nj  # live answers by tau_j (calls ringing)
        s_mean = [float(snap.agents_ready - snap.inbound_waiting - snap.answered_waiting)] * nj
        s_var = [0.0] * nj  # agents free by tau_j + grace
        for e in snap.ringing:
            for j, q in enumerate(t.ring(e)):
                d_mean[j] += q
                d_var[j] += q * (1.0 - q)
        busy = [t.wrap(e) for e in snap.wrapping]
        if t.talk_matters:
            busy += [t.talk(e) for e in snap.talking]
        for ps in busy:
            for j, p in enumerate(ps):
                s_mean[j] += p
                s_var[j] += p * (1.0 - p)
        if snap.inbound_rate > 0:
            for j, tau in enumerate(t.taus):
                pulled = snap.inbound_rate * (tau + t.grace)
                s_mean[j] -= pulled
                s_var[j] += pulled
        # An answer in (tau_{j-1}, tau_j] is lost when the answers before it (about D at the middle of the
        # interval, less those already lost) took every agent free by tau_j + grace.
        self.lam0, self.mid0, self.var0, self.lam1, self.mid1, self.var1 = [], [], [], [], [], []
        pm = pv = pg = 0.0
        for j in range(nj):
            self.lam0.append(d_mean[j] - pm)
            self.mid0.append(0.5 * (pm + d_mean[j]) - s_mean[j] + 0.5)  # + 0.5: continuity correction
            self.var0.append(dispersion * 0.5 * (pv + d_var[j]) + s_var[j] + 0.25)  # + 0.25: smooth
            g = t.new_live[j]
            self.lam1.append(g - pg)
            c = 0.5 * (pg + g)
            self.mid1.append(c)
            self.var1.append(dispersion * c * (1.0 - c))
            pm, pv, pg = d_mean[j], d_var[j], g

    def risk(self, n: int) -> float:
        lost = 0.0
        for lam0, mid0, var0, lam1, mid1, var1 in zip(self.lam0, self.mid0, self.var0, self.lam1, self.mid1,
                                                       self.var1):
            lam = lam0 + n * lam1
            if lam > 0.0:
                z = (mid0 + n * mid1 - lost) / math.sqrt(var0 + n * var1)
                lost += lam * 0.5 * (1.0 + math.erf(z / _SQRT2))
        return lost


class Pacer:
    """The control law. Stateless apart from look-up caches: the same inputs give the same decision."""

    def __init__(self, config: PacerConfig = PacerConfig()) -> None:
        self.config = config
        self._tables: _Tables | None = None

    def allowance(self, budget: Budget, live_per_second: float = math.inf) -> tuple[float, float]:
        """(threshold, stock) from the ledger's windows (see :class:`Decision`).

        Stock: the least that any window (the policy window and every control window) may still absorb at the
        cap, less the reserve (``live_per_second``, a bound on the live answers to come, caps a control window's
        live count: when agents log out, the window will hold fewer once the old answers have left it).
        Threshold: ``marginal_factor`` x the limit while the stock is at least ``taper`` x that window's whole
        allowance, falling linearly to 0 with the stock; and times the rate guard's level / its bucket size (see
        :meth:`guard_level`; the guard's allowance is the cap x ``live_per_second`` x ``guard_window``).
        """
        cfg = self.config
        cap = budget.limit * (1.0 - cfg.margin)
        if cap <= 0:
            return 0.0, -1.0
        stock = budget.window.headroom(cap)
        allowed = cap * budget.window.live
        for w in budget.control:  # control windows are budgeted like the policy window
            live = min(w.live, live_per_second * w.seconds)
            if cap * live - w.abandons < stock:
                stock, allowed = cap * live - w.abandons, cap * live
        stock -= cfg.reserve
        band = cfg.taper * allowed
        scale = 1.0 if stock >= band else max(0.0, stock / band) if band > 0 else 0.0
        if cfg.guard_window > 0 and math.isfinite(live_per_second):
            allowance = cap * live_per_second * cfg.guard_window  # abandons the guard window may hold
            burst = (1.0 - cfg.guard_share) * allowance
            level = self.guard_level(budget, cfg.guard_share * allowance / cfg.guard_window, burst)
            scale = min(scale, max(0.0, level / burst)) if burst > 0 else 0.0
        return cfg.marginal_factor * budget.limit * scale, stock

    @staticmethod
    def guard_level(budget: Budget, rate: float, burst: float) -> float:
        """A token bucket read from the recent abandons: ``burst`` tokens at most, refilled at ``rate`` per second,
        one spent per abandon. Equivalently, the least over the stretches ending now of ``burst + rate x length -
        abandons in it``: what may still be spent with every stretch within its allowance (< 0: overspent)."""
        level = burst
        spent = 0.0
        for age, amount in budget.recent_abandons:  # newest first
            spent += amount
            level = min(level, burst + rate * age - spent)
        return level

    def decide(self, now: float, snap: PacingSnapshot, model: TrafficModel | None) -> Decision:
        """Calls to launch at ``now`` (the snapshot's elapsed times are as of ``now``)."""
        cfg = self.config
        if not snap.may_dial:
            return Decision(0, "not_allowed")
        able = snap.agents_ready + len(snap.talking) + len(snap.wrapping)
        if snap.agents_logged_in <= 0 or able <= 0:
            return Decision(0, "no_agents")
        if snap.leads_left is not None and snap.leads_left <= 0:
            return Decision(0, "leads_exhausted")
        cap = math.floor(cfg.max_lines_per_agent * able + 1e-9) - len(snap.ringing)
        if snap.leads_left is not None:
            cap = min(cap, snap.leads_left)
        if cap <= 0:
            return Decision(0, "line_cap")
        free_now = snap.agents_ready - snap.inbound_waiting - snap.answered_waiting
        progressive = max(0, min(cap, free_now - len(snap.ringing)))
        if model is None or model.attempts_seen < cfg.min_attempts:
            return Decision(progressive, "warmup", progressive, cap=cap)
        threshold, stock = self.allowance(snap.budget, able / max(1.0, model.talk.mean + model.wrap.mean))
        if threshold <= 0.0 or stock <= 0.0:
            return Decision(progressive, "budget", progressive, threshold=threshold, stock=stock, cap=cap)

        t = self._tables
        if t is None or t.model is not model:
            t = self._tables = _Tables(model, cfg)
        outlook = _Outlook(snap, t, cfg.dispersion)
        per_call = threshold * t.new_live[-1]  # abandons one more call may add
        n = progressive
        r = outlook.risk(n)
        while n < cap:
            r_next = outlook.risk(n + 1)
            if r_next > stock or r_next - r > per_call:
                break
            n, r = n + 1, r_next
        reason = "predictive" if n > progressive else "progressive"
        return Decision(n, reason, progressive, r, threshold, stock, cap)
