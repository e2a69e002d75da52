"""KPI math: pure functions (no I/O, no clock) for staffing and service levels."""

from callcore.kpi.erlang import (
    ErlangAResult,
    agents_for_service_level,
    asa,
    erlang_a,
    erlang_b,
    erlang_c,
    occupancy,
    service_level,
    traffic_erlangs,
)

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
