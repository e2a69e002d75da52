"""Outbound campaigns: the ``campaigns:`` config section (``model``) and its cross-checks (``validate``)."""

from callcore.campaigns.model import ABANDON_PRESETS, CampaignConfig, ResolvedAbandonPolicy

__all__ = ["ABANDON_PRESETS", "CampaignConfig", "ResolvedAbandonPolicy"]
