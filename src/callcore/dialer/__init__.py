"""The outbound dialer's pure core: abandonment compliance, online traffic estimators and the predictive pacer.

No asyncio, no I/O, no clock: the dialer service (and the simulator, ``callcore.sim.outbound``) pass ``now`` and
what they observe. See docs/dialer.md for the control law.
"""

from callcore.dialer.compliance import (
    PRESETS,
    AbandonLedger,
    AbandonPolicy,
    Budget,
    WindowCounts,
    is_abandoned,
    preset,
)
from callcore.dialer.estimators import (
    CampaignModel,
    DurationEstimator,
    EmpiricalDistribution,
    ModelPriors,
    RateEstimator,
    TrafficModel,
)
from callcore.dialer.pacing import Decision, Pacer, PacerConfig, PacingSnapshot

__all__ = [
    "PRESETS",
    "AbandonLedger",
    "AbandonPolicy",
    "Budget",
    "CampaignModel",
    "Decision",
    "DurationEstimator",
    "EmpiricalDistribution",
    "ModelPriors",
    "Pacer",
    "PacerConfig",
    "PacingSnapshot",
    "RateEstimator",
    "TrafficModel",
    "WindowCounts",
    "is_abandoned",
    "preset",
]
