"""Erlang B, Erlang C and Erlang A: the queueing formulas behind staffing and service-level targets.

Pure functions: no I/O, no clock. Units only have to be consistent (seconds everywhere below).

Notation
    A    offered traffic in erlangs = arrival rate × average handle time (λ / μ)
    N    number of agents (servers), an integer
    AHT  average handle time (talk + hold + wrap-up: everything that keeps an agent from the next call)
    T    service-level target ("answered within T seconds")

Erlang B (blocking, no queue)::

    B(A, 0) = 1,     B(A, n) = A·B(A, n−1) / (n + A·B(A, n−1))

The recursion never forms A^N or N!, so it is exact in floating point for thousands of agents.

Erlang C (M/M/N, infinite patience): the probability that a caller has to wait::

    C(A, N) = N·B(A, N) / (N − A·(1 − B(A, N)))          (A < N; C = 1 when A ≥ N)

and, FIFO, the waiting time W of a caller satisfies::

    P(W > t) = C(A, N) · exp(−(N − A)·t / AHT)
    service level  SL(T) = P(W ≤ T) = 1 − C(A, N)·exp(−(N − A)·T / AHT)
    ASA            E[W]  = C(A, N) · AHT / (N − A)
    occupancy            = A / N

Erlang A (M/M/N+M, Palm's model): callers abandon after an exponential patience with mean 1/θ. The number of
callers in the system is a birth–death chain with birth rate λ and death rate ``min(k, N)·μ + max(k − N, 0)·θ``;
:func:`erlang_a` sums its stationary distribution directly over the states (truncated once the terms are
below 1e−17 of the largest), which is exact up to that truncation. See :func:`erlang_a` for the waiting-time
formulas.

Example, the published textbook case (100 calls per 30 minutes, AHT 3 minutes, 80 % within 20 s):
``agents_for_service_level(100, 1800, 180, 20, 0.80) == 14``, with ``erlang_c(10, 14) ≈ 0.1741``,
``service_level(10, 14, 180, 20) ≈ 0.8884`` and ``occupancy(10, 14) ≈ 0.714``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ErlangAResult",
    "agents_for_service_level",
    "asa",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "occupancy",
    "service_level",
    "traffic_erlangs",
]


def _check_servers(servers: int) -> int:
    if isinstance(servers, bool) or int(servers) != servers or servers < 0:
        raise ValueError(f"servers must be a non-negative integer, got {servers!r}")
    return int(servers)


def _check_traffic(traffic: float) -> float:
    if not (traffic >= 0 and math.isfinite(traffic)):
        raise ValueError(f"traffic must be finite and >= 0, got {traffic!r}")
    return float(traffic)


def traffic_erlangs(calls_per_interval: float, interval_seconds: float, aht_seconds: float) -> float:
    """Offered traffic in erlangs: ``calls_per_interval × aht_seconds / interval_seconds``."""
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be > 0")
    return calls_per_interval * aht_seconds / interval_seconds


def erlang_b(traffic_erlangs: float, servers: int) -> float:
    """Erlang B: probability that a call finds all ``servers`` busy when there is no queue (lost-call model).

    Computed with the recursion ``B(A, 0) = 1``, ``B(A, n) = A·B(A, n−1) / (n + A·B(A, n−1))``.
    """
    a = _check_traffic(traffic_erlangs)
    n = _check_servers(servers)
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(traffic: float, servers: int) -> float:
    """Erlang C: probability that a call has to wait (M/M/N with infinite patience).

    ``C = N·B / (N − A·(1 − B))`` with ``B = erlang_b(A, N)``; 1.0 when ``A ≥ N`` (the queue grows without
    bound: everybody waits); 0.0 when there is no traffic.
    """
    a = _check_traffic(traffic)
    n = _check_servers(servers)
    if a == 0:
        return 0.0
    if a >= n:
        return 1.0
    b = erlang_b(a, n)
    return n * b / (n - a * (1.0 - b))


def service_level(traffic: float, servers: int, aht_seconds: float, target_seconds: float) -> float:
    """Erlang C service level: fraction of calls answered within ``target_seconds``.

    ``SL = 1 − C(A, N) · exp(−(N − A) · T / AHT)``; 0.0 when ``A ≥ N``.
    """
    a = _check_traffic(traffic)
    n = _check_servers(servers)
    if aht_seconds <= 0:
        raise ValueError("aht_seconds must be > 0")
    if target_seconds < 0:
        raise ValueError("target_seconds must be >= 0")
    if a >= n and a > 0:
        return 0.0
    return 1.0 - erlang_c(a, n) * math.exp(-(n - a) * target_seconds / aht_seconds)


def asa(traffic: float, servers: int, aht_seconds: float) -> float:
    """Erlang C average speed of answer (mean wait over all calls, the zero waits included).

    ``ASA = C(A, N) · AHT / (N − A)``; ``math.inf`` when ``A ≥ N``.
    """
    a = _check_traffic(traffic)
    n = _check_servers(servers)
    if aht_seconds <= 0:
        raise ValueError("aht_seconds must be > 0")
    if a == 0:
        return 0.0
    if a >= n:
        return math.inf
    return erlang_c(a, n) * aht_seconds / (n - a)


def occupancy(traffic: float, servers: int) -> float:
    """Agent occupancy ``A / N`` (capped at 1.0: beyond that the queue grows and agents are always busy)."""
    a = _check_traffic(traffic)
    n = _check_servers(servers)
    if n == 0:
        return 1.0 if a > 0 else 0.0
    return min(1.0, a / n)


def agents_for_service_level(
    calls_per_interval: float,
    interval_seconds: float,
    aht_seconds: float,
    target_seconds: float,
    sl_goal: float,
    max_occupancy: float | None = None,
) -> int:
    """The smallest number of agents N whose Erlang C service level is at least ``sl_goal`` (and whose
    occupancy ``A / N`` is at most ``max_occupancy`` when given).

    ``A = calls_per_interval × aht_seconds / interval_seconds``; the search starts at the smallest stable N
    (``floor(A) + 1``) and counts up (the service level increases with N). No calls → 0 agents.
    """
    if not 0 <= sl_goal < 1:
        raise ValueError("sl_goal must be in [0, 1)")
    if max_occupancy is not None and not 0 < max_occupancy <= 1:
        raise ValueError("max_occupancy must be in (0, 1]")
    a = traffic_erlangs(calls_per_interval, interval_seconds, aht_seconds)
    _check_traffic(a)
    if a == 0:
        return 0
    n = math.floor(a) + 1
    while True:
        if service_level(a, n, aht_seconds, target_seconds) >= sl_goal and (
            max_occupancy is None or a / n <= max_occupancy
        ):
            return n
        n += 1


# --------------------------------------------------------------------------------------------------- Erlang A


@dataclass(frozen=True, slots=True)
class ErlangAResult:
    """Steady-state figures of the M/M/N+M (Erlang A) queue.

    ``service_level`` counts callers answered within the target over callers who were answered or abandoned
    *after* the target (abandons within the target are left out: the usual call-center definition);
    ``service_level_all_abandons`` is answered within the target over all offered callers. ``asa`` is the mean
    wait of the answered callers; ``avg_wait`` the mean time in queue of all callers (abandoned ones included).
    """

    p_wait: float
    p_abandon: float
    service_level: float
    service_level_all_abandons: float
    asa: float
    avg_wait: float
    mean_queue_length: float
    occupancy: float
    target_seconds: float


def erlang_a(
    arrival_rate: float,
    service_rate: float,
    servers: int,
    patience_mean: float,
    target_seconds: float = 20.0,
) -> ErlangAResult:
    """Erlang A (M/M/N+M): Poisson arrivals ``arrival_rate`` (λ), exponential handle times with rate
    ``service_rate`` (μ = 1/AHT), ``servers`` agents (N), FIFO, exponential patience with mean
    ``patience_mean`` (1/θ; ``math.inf`` gives Erlang C).

    Stationary distribution of the number in system k (birth–death chain)::

        π_k ∝ Π_{i=1..k} λ / d_i,    d_i = min(i, N)·μ + max(i − N, 0)·θ

    summed over the states until the terms are negligible. By PASTA an arriving caller sees π, so
    ``P(wait) = Σ_{k≥N} π_k``. A caller who finds j callers waiting ahead (k = N + j) moves up one place at
    rate ``r_i = Nμ + iθ`` while i callers are ahead (a service completion or an abandon ahead), so the
    time to reach an agent is V = Σ_{i=0..j} Exp(r_i), independent of the caller's own patience P ~ Exp(θ):

        P(answered | j) = E[e^{−θV}] = Π r_i / (r_i + θ) = Nμ / (Nμ + (j + 1)θ)    (telescoping)
        E[V·1{answered} | j] = P(answered | j) · Σ_{i=1..j+1} 1 / (Nμ + iθ)

    ``P(abandon) = Σ π_{N+j} (1 − P(answered | j))`` (equal to θ·E[queue]/λ); ASA = E[V·1{answered}] /
    P(answered). The probabilities of being answered / abandoning within ``target_seconds`` come from the
    transient law of that pure-death chain with two absorbing states (answered, abandoned), computed by
    uniformisation (a Poisson-weighted sum of steps of the embedded discrete chain).
    """
    lam, mu, n = float(arrival_rate), float(service_rate), _check_servers(servers)
    if lam < 0 or mu <= 0 or n < 1:
        raise ValueError("need arrival_rate >= 0, service_rate > 0 and servers >= 1")
    if not patience_mean > 0:
        raise ValueError("patience_mean must be > 0 (math.inf for no abandonment)")
    if target_seconds < 0:
        raise ValueError("target_seconds must be >= 0")
    theta = 0.0 if math.isinf(patience_mean) else 1.0 / patience_mean
    traffic = lam / mu

    if theta == 0.0:  # Erlang C
        if lam == 0:
            return ErlangAResult(0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, target_seconds)
        if traffic >= n:
            return ErlangAResult(1.0, 0.0, 0.0, 0.0, math.inf, math.inf, math.inf, 1.0, target_seconds)
        c = erlang_c(traffic, n)
        sl = service_level(traffic, n, 1.0 / mu, target_seconds)
        w = asa(traffic, n, 1.0 / mu)
        return ErlangAResult(c, 0.0, sl, sl, w, w, lam * w, traffic / n, target_seconds)

    # Stationary distribution in log space, truncated where the terms stop mattering.
    log_lam = math.log(lam) if lam > 0 else -math.inf
    logs = [0.0]
    peak = 0.0
    k = 0
    while True:
        k += 1
        death = min(k, n) * mu + max(k - n, 0) * theta
        nxt = logs[-1] + log_lam - math.log(death)
        logs.append(nxt)
        peak = max(peak, nxt)
        if k > n and lam < death and nxt < peak - 40.0:  # past the mode and below 4e-18 of it
            break
        if k > 10_000_000:  # pragma: no cover - impossible for sane inputs
            raise ValueError("Erlang A state space did not converge")
    weights = [math.exp(x - peak) for x in logs]
    total = math.fsum(weights)
    pi = [w / total for w in weights]

    queue = pi[n:]  # queue[j] = π_{N+j}: an arrival finds all agents busy and j callers ahead
    nmu = n * mu
    p_wait = math.fsum(queue)
    answered_delayed = 0.0
    wait_answered = 0.0
    mean_queue = 0.0
    s = 0.0
    for j, p in enumerate(queue):
        ans_j = nmu / (nmu + (j + 1) * theta)
        s += 1.0 / (nmu + (j + 1) * theta)
        answered_delayed += p * ans_j
        wait_answered += p * ans_j * s
        mean_queue += j * p
    p_answered = (1.0 - p_wait) + answered_delayed
    p_abandon = max(0.0, 1.0 - p_answered)
    asa_answered = wait_answered / p_answered if p_answered > 0 else math.inf
    avg_wait = mean_queue / lam if lam > 0 else 0.0

    ans_by_t, ab_by_t = _absorbed_by(queue, nmu, theta, target_seconds)
    answered_within = (1.0 - p_wait) + ans_by_t
    denominator = 1.0 - ab_by_t
    sl = answered_within / denominator if denominator > 0 else 0.0
    occ = min(1.0, lam * p_answered / mu / n)
    return ErlangAResult(
        p_wait=p_wait,
        p_abandon=p_abandon,
        service_level=min(1.0, sl),
        service_level_all_abandons=answered_within,
        asa=asa_answered,
        avg_wait=avg_wait,
        mean_queue_length=mean_queue,
        occupancy=occ,
        target_seconds=target_seconds,
    )


def _absorbed_by(initial: list[float], nmu: float, theta: float, t: float) -> tuple[float, float]:
    """Mass absorbed in "answered" and in "abandoned" by time ``t`` for the tagged caller's chain.

    State i = callers ahead (0..J), initial mass ``initial[i]``. From i: to i − 1 (to *answered* from 0) at
    rate ``nmu + i·θ``, to *abandoned* at rate θ. Uniformisation with Λ = the largest total rate.
    """
    if t == 0 or not initial:
        return 0.0, 0.0
    # Drop the negligible tail: it only costs time.
    last = len(initial)
    while last > 1 and initial[last - 1] < 1e-16:
        last -= 1
    p = list(initial[:last])
    rate_down = [nmu + i * theta for i in range(last)]
    big = rate_down[-1] + theta
    go_down = [r / big for r in rate_down]
    go_ab = theta / big
    stay = [1.0 - d - go_ab for d in go_down]
    x = big * t
    k_max = int(x + 12.0 * math.sqrt(x) + 30)
    answered = abandoned = 0.0
    ans_t = ab_t = 0.0
    log_x = math.log(x)
    for step in range(k_max + 1):
        w = math.exp(-x + step * log_x - math.lgamma(step + 1))
        ans_t += w * answered
        ab_t += w * abandoned
        # one step of the embedded chain
        answered += p[0] * go_down[0]
        abandoned += go_ab * math.fsum(p)
        new = [p[i] * stay[i] + p[i + 1] * go_down[i + 1] for i in range(last - 1)]
        new.append(p[last - 1] * stay[last - 1])
        p = new
    return ans_t, ab_t
