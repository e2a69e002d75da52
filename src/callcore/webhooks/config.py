"""The ``webhooks:`` section of the YAML: where callcore POSTs events, which ones, and how hard it tries.

```yaml
webhooks:
  - name: crm
    url: https://crm.example.org/hooks/callcore
    events: ["call.*", "acd.connected", "agent.*"]
    secret_env: CALLCORE_WEBHOOK_CRM_SECRET   # the HMAC secret comes from this environment variable
    timeout: 10            # seconds per attempt
    max_attempts: 12       # then the row is kept with its last error, and counted
```

The secret itself never goes into the file: the YAML names an environment variable (``secret_env``) and the
config is refused when that variable is unset or too short. Event names and patterns: see
:mod:`callcore.webhooks.payload` and docs/webhooks.md.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from callcore.webhooks.payload import check_pattern

MIN_SECRET_LENGTH = 16
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class WebhookConfig(BaseModel):
    """One receiver of events."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="unique; names the webhook's rows in the outbox and its metrics")
    enabled: bool = Field(True, description="false: no new events are queued for it and its queue is not sent")
    url: str = Field(description="http:// or https:// URL the events are POSTed to")
    events: list[str] = Field(min_length=1, description='event types or patterns: "call.*", "acd.connected", "*"')
    secret_env: str = Field(description="name of the environment variable holding the HMAC-SHA256 secret")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds one attempt may take (connect to last byte)")
    max_attempts: int = Field(12, ge=1, le=100, description="attempts before giving up on an event")
    backoff_initial: float = Field(2.0, gt=0, le=3600, description="seconds before the first retry (then doubled)")
    backoff_max: float = Field(600.0, gt=0, le=86_400, description="cap of the delay between attempts, seconds")
    concurrency: int = Field(4, ge=1, le=64, description="requests in flight to this URL at most (1: in order)")

    @model_validator(mode="before")
    @classmethod
    def _no_plain_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise ValueError("the secret never goes into the YAML: put it in an environment variable and name "
                             "that variable in secret_env (e.g. secret_env: CALLCORE_WEBHOOK_CRM_SECRET)")
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("1-64 characters: letters, digits, '_', '.', '-'")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip()
        parts = urlsplit(v)
        if parts.scheme.lower() not in ("http", "https"):
            got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
            raise ValueError(f"must be an http:// or https:// URL (got {got})")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("no credentials in the URL (they would be a secret in the YAML); the signature "
                             "authenticates callcore to the receiver")
        try:
            _ = parts.port  # raises ValueError on a bad port
        except ValueError:
            raise ValueError("the URL's port is not a number between 0 and 65535") from None
        if parts.fragment:
            raise ValueError("a URL fragment (#...) is never sent: remove it")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        problems = [p for p in (check_pattern(e) for e in v) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return list(dict.fromkeys(v))

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str, info: ValidationInfo) -> str:
        if not _ENV_RE.match(v):
            raise ValueError("an environment variable name: upper-case letters, digits and '_' "
                             "(e.g. CALLCORE_WEBHOOK_CRM_SECRET)")
        if info.data.get("enabled", True):
            secret = os.environ.get(v)
            if not secret:
                raise ValueError(f"the environment variable {v} is not set: it must hold the webhook's secret")
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(f"the secret in {v} is too short: at least {MIN_SECRET_LENGTH} characters "
                                 "(e.g. `python3 -c 'import secrets; print(secrets.token_hex(32))'`)")
        return v

    @model_validator(mode="after")
    def _backoff(self) -> WebhookConfig:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be at least backoff_initial")
        return self

    def secret(self) -> bytes:
        """The HMAC key, read from the environment now (raises KeyError when the variable is unset)."""
        return os.environ[self.secret_env].encode("utf-8")


def _unique_names(webhooks: list[WebhookConfig]) -> list[WebhookConfig]:
    names = [w.name for w in webhooks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"webhook names must be unique: {', '.join(dup)}")
    return webhooks


# The type of ``CallcoreConfig.webhooks``.
WebhookList = Annotated[list[WebhookConfig], AfterValidator(_unique_names)]

__all__ = ["MIN_SECRET_LENGTH", "WebhookConfig", "WebhookList"]
