"""The ``api:`` section of the YAML.

```yaml
api:
  host: 127.0.0.1            # loopback by default: put a TLS reverse proxy in front (docs/api.md)
  port: 8080
  tokens:                    # more can be created with `callcore api token create` (stored in PostgreSQL)
    - {name: wallboard, role: integrator, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
    - {name: anna, role: agent, agent: agent01, sha256: ...}
```

Only hashes go into the file: ``callcore api token generate`` prints a new token and the line to paste.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callcore.api.auth import SHA256_RE, Role, check_binding


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiTokenConfig(_Section):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    agent: str | None = Field(None, description="agent tokens: the agent id they act for (and only for)")
    sha256: str = Field(description="hex SHA-256 of the token (never the token itself)")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        v = v.strip().lower()
        if not SHA256_RE.match(v):
            raise ValueError("must be 64 hex digits: the SHA-256 of the token (`callcore api token generate`)")
        return v

    @model_validator(mode="after")
    def _binding(self) -> ApiTokenConfig:
        check_binding(self.role, self.agent)
        return self


class ApiSettings(_Section):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="listen address; loopback unless a reverse proxy needs more")
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)
    idempotency_hours: float = Field(24.0, gt=0, le=24 * 30, description="how long Idempotency-Keys are kept")
    token_cache_seconds: float = Field(5.0, ge=0, le=300, description="a revoked token works at most this long")
    tokens: list[ApiTokenConfig] = Field(default_factory=list)

    @field_validator("tokens")
    @classmethod
    def _unique(cls, v: list[ApiTokenConfig]) -> list[ApiTokenConfig]:
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"token names must be unique: {', '.join(dup)}")
        hashes = [t.sha256 for t in v]
        if len(set(hashes)) != len(hashes):
            raise ValueError("two tokens have the same sha256")
        return v


def token_issues(api: ApiSettings, agents: Iterable[str]) -> list[str]:
    """Cross-checks against the rest of the config: agent tokens must name configured agents."""
    known = set(agents)
    return [
        f"api.tokens[{i}].agent: unknown agent {t.agent!r}"
        for i, t in enumerate(api.tokens)
        if t.agent is not None and t.agent not in known
    ]


__all__ = ["ApiSettings", "ApiTokenConfig", "token_issues"]
