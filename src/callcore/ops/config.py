"""The ``retention:`` section of the YAML (docs/security.md, "Retention").

```yaml
retention:
  recordings_days: 90          # call recordings and voicemails (deleted in Asterisk through ARI)
  call_events_days: 730        # calls and their events (KPIs over longer periods need a longer limit)
  personal_data_days: 180      # caller numbers/names in calls, events, leads, attempts, callbacks: anonymised
  agent_events_days: 730       # agents' state history (the latest state of each agent is always kept)
  personal_variables: [customer_name, account]   # IVR/CRM variables holding personal data (redacted too)
  dry_run: false               # true: the job only reports what it would do
```

Every limit is optional: unset means "keep forever". A recording cannot outlive the events that name it (the job
finds recordings through them), so ``recordings_days`` may not exceed ``call_events_days``; likewise anonymising
after deletion means nothing, so ``personal_data_days`` may not exceed it either.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RetentionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recordings_days: int | None = Field(None, ge=1, le=36_500, description="delete recordings older than this")
    call_events_days: int | None = Field(None, ge=1, le=36_500, description="delete calls and their events")
    personal_data_days: int | None = Field(None, ge=1, le=36_500, description="anonymise caller numbers/names")
    agent_events_days: int | None = Field(None, ge=1, le=36_500, description="delete agent state history")
    personal_variables: list[str] = Field(
        default_factory=list, description="call variables that hold personal data: redacted with the numbers")
    batch_size: int = Field(500, ge=1, le=50_000, description="rows per transaction")
    dry_run: bool = Field(False, description="only report what would be deleted or anonymised")
    salt_file: Path | None = Field(
        None, description="secret salt of the anonymisation markers (default: state_dir/retention.salt, created "
                          "with mode 0600 on first use)")

    @field_validator("personal_variables")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not _IDENT.match(n)]
        if bad:
            raise ValueError(f"not variable names: {', '.join(map(repr, bad))}")
        return v

    @model_validator(mode="after")
    def _order(self) -> RetentionSettings:
        events = self.call_events_days
        if events is not None:
            if self.recordings_days is not None and self.recordings_days > events:
                raise ValueError(f"recordings_days ({self.recordings_days}) may not exceed call_events_days "
                                 f"({events}): a recording is found through its call's events")
            if self.personal_data_days is not None and self.personal_data_days > events:
                raise ValueError(f"personal_data_days ({self.personal_data_days}) may not exceed call_events_days "
                                 f"({events}): the data is deleted before it would be anonymised")
        return self

    @property
    def enabled(self) -> bool:
        return any(d is not None for d in (self.recordings_days, self.call_events_days, self.personal_data_days,
                                           self.agent_events_days))


__all__ = ["RetentionSettings"]
