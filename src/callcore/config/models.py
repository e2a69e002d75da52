"""callcore's configuration: one YAML file (see config/callcore.yaml), validated strictly.

Unknown keys are errors (a typo must not silently fall back to a default). Secrets can come from the
environment instead of the file: CALLCORE_ARI_PASSWORD, CALLCORE_DATABASE_URL.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callcore.api.config import ApiSettings
from callcore.api.callbacks_config import CallbacksSettings
from callcore.config.loader import ConfigError, ConfigIssue, load_yaml, validate
from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig, TransferSettings
from callcore.ivr.model import Flow, IvrConfig, Schedule
from callcore.campaigns.model import CampaignConfig
from callcore.ops.config import RetentionSettings
from callcore.webhooks.config import WebhookList


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ari_url(v: str) -> str:
    if not re.match(r"^https?://[^/\s]+(/.*)?$", v):
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:8088")
    return v.rstrip("/")


def _node_name(v: str) -> str:
    if not re.match(r"^[A-Za-z0-9_-]{1,40}$", v):
        raise ValueError("letters, digits, '_' and '-' only (it names the node in events, status and dial strings)")
    return v


class AsteriskNodeSettings(Section):
    """One more Asterisk server callcore drives through its own ARI connection (the same Stasis app name)."""

    name: str
    url: str
    username: str | None = Field(None, description="default: ari.username")
    password: SecretStr | None = Field(None, description="default: ari.password")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _ari_url(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _node_name(v)


class AriSettings(Section):
    url: str = "http://127.0.0.1:8088"
    app: str = "callcore"
    username: str = "callcore"
    password: SecretStr = SecretStr("")
    request_timeout: float = Field(10.0, gt=0)
    heartbeat: float = Field(10.0, gt=0, description="WebSocket ping interval, seconds")
    reconnect_initial: float = Field(0.5, gt=0)
    reconnect_max: float = Field(30.0, gt=0)
    # Scale-out (docs/scaling.md): the node above plus ``nodes``; every node's callers may reach every agent.
    node: str = Field("main", description="the name of the Asterisk node at `url` (agents' `node` refers to it)")
    nodes: list[AsteriskNodeSettings] = Field(default_factory=list, description="more Asterisk nodes to drive")
    peer_dial: str = Field(
        "PJSIP/{resource}@{node}",
        description="how one node rings a phone registered on another: {node} is that node's name, "
        "{resource} the endpoint after 'PJSIP/' (a SIP trunk between the nodes)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        return _ari_url(v)

    @field_validator("node")
    @classmethod
    def _node(cls, v: str) -> str:
        return _node_name(v)

    @field_validator("peer_dial")
    @classmethod
    def _peer_dial(cls, v: str) -> str:
        if "{resource}" not in v or "{node}" not in v:
            raise ValueError("must contain {node} and {resource}, e.g. PJSIP/{resource}@{node}")
        return v

    @model_validator(mode="after")
    def _distinct_nodes(self) -> AriSettings:
        names = [self.node, *(n.name for n in self.nodes)]
        urls = [self.url, *(n.url for n in self.nodes)]
        for label, values in (("name", names), ("url", urls)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"Asterisk node {label}s must differ: {', '.join(repeated)} used twice")
        return self

    def all_nodes(self) -> list[AsteriskNodeSettings]:
        """Every node with its credentials filled in (a node without its own uses the first node's)."""
        first = AsteriskNodeSettings(name=self.node, url=self.url, username=self.username, password=self.password)
        return [first] + [
            n.model_copy(update={"username": n.username or self.username, "password": n.password or self.password})
            for n in self.nodes
        ]

    @field_validator("app")
    @classmethod
    def _app_name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_.-]+$", v):
            raise ValueError("letters, digits, '_', '.', '-' only (it is a Stasis application name)")
        return v


class DatabaseSettings(Section):
    url: SecretStr | None = Field(
        None, description="postgresql://... ; empty: start the embedded PostgreSQL under state_dir"
    )
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(10, ge=1)


class EventStoreSettings(Section):
    batch_max: int = Field(2000, ge=1, le=100_000)
    flush_interval_ms: int = Field(100, ge=1, le=60_000)
    buffer_max: int = Field(100_000, ge=100)
    # While PostgreSQL is away for more than spool_after_s, events go to a durable spool in state_dir/spool.
    spool_max_mb: int = Field(256, ge=1, le=100_000, description="the spool's bound; past it, new events are dropped")
    spool_after_s: float = Field(3.0, gt=0, le=3600)


class HaSettings(Section):
    """Active/standby (docs/operations.md): instances sharing one PostgreSQL elect a leader with an advisory lock."""

    enabled: bool = False
    poll_seconds: float = Field(1.0, gt=0, le=60, description="how often a standby asks for the lock")


class CallsSettings(Section):
    on_handler_error: Literal["dialplan", "hangup"] = "dialplan"
    fallback_context: str = "callcore-fallback"
    drain_seconds: float = Field(30.0, ge=0)


class LoggingSettings(Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class InboundSettings(Section):
    dids: dict[str, str] = Field(default_factory=dict, description="dialed number -> flow name")
    default_flow: str | None = None

    @field_validator("dids")
    @classmethod
    def _dids(cls, v: dict[str, str]) -> dict[str, str]:
        for did in v:
            if not re.match(r"^\+?[0-9*#]+$", str(did)):
                raise ValueError(f"DID {did!r}: digits only (an optional leading +)")
        return {str(k): val for k, val in v.items()}


class CallcoreConfig(Section):
    state_dir: Path = Path("../.state")
    ari: AriSettings = Field(default_factory=AriSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    event_store: EventStoreSettings = Field(default_factory=EventStoreSettings)
    calls: CallsSettings = Field(default_factory=CallsSettings)
    ha: HaSettings = Field(default_factory=HaSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    inbound: InboundSettings = Field(default_factory=InboundSettings)
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    flows: dict[str, Flow] = Field(default_factory=dict)
    skills: list[str] = Field(default_factory=list)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    queues: dict[str, QueueConfig] = Field(default_factory=dict)
    transfers: TransferSettings = Field(default_factory=TransferSettings)
    campaigns: dict[str, CampaignConfig] = Field(default_factory=dict)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)  # docs/security.md
    webhooks: WebhookList = Field(default_factory=list)  # docs/webhooks.md
    callbacks: CallbacksSettings = Field(default_factory=CallbacksSettings)  # docs/api.md, "Callbacks"

    # Not from YAML: where the file was, and a fingerprint recorded with every call.
    source: Path | None = Field(None, exclude=True)
    version: str = Field("", exclude=True)
    warnings: list[str] = Field(default_factory=list, exclude=True)

    def ivr(self) -> IvrConfig:
        """The flows and schedules as one validated unit (what a call keeps for its IVR session)."""
        return IvrConfig(flows=self.flows, schedules=self.schedules)

    def acd(self) -> AcdConfig:
        return AcdConfig(skills=self.skills, agents=self.agents, queues=self.queues, transfers=self.transfers)


class EnvOverrides(BaseSettings):
    """Secrets from the environment win over the file (never commit passwords to YAML)."""

    model_config = SettingsConfigDict(env_prefix="CALLCORE_", extra="ignore")
    ari_password: SecretStr | None = None
    ari_url: str | None = None
    database_url: SecretStr | None = None
    ari_password_file: Path | None = None  # CALLCORE_ARI_PASSWORD_FILE: mode 0600/0400 (callcore.ops.secrets)
    database_url_file: Path | None = None  # CALLCORE_DATABASE_URL_FILE: likewise
    api_port: int | None = None  # e.g. 0 (any free port) for test runs next to a running callcore


def load_config(
    path: Path | str, *, known_flows: set[str] | None = None, known_sounds: set[str] | None = None
) -> CallcoreConfig:
    """Load, validate and resolve a config file. Raises ConfigError listing every problem.

    ``known_flows``: flows written in Python that DIDs may name besides the YAML ``flows``.
    ``known_sounds``: sound names Asterisk can play; None skips the missing-sound check."""
    path = Path(path)
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(path), 1, "", "the file must be a mapping of sections")])
    env = EnvOverrides()
    from callcore.ops.secrets import apply_secret_files

    apply_secret_files(env, str(path))  # the *_FILE variables; raises ConfigError for a readable/missing file
    if env.ari_password is not None:
        data.setdefault("ari", {})["password"] = env.ari_password.get_secret_value()
    if env.ari_url is not None:
        data.setdefault("ari", {})["url"] = env.ari_url
    if env.database_url is not None:
        data.setdefault("database", {})["url"] = env.database_url.get_secret_value()
    if env.api_port is not None and isinstance(data.get("api", {}), dict):
        data.setdefault("api", {})["port"] = env.api_port
    issues: list[ConfigIssue] = []
    config: CallcoreConfig | None = None
    try:
        config = validate(CallcoreConfig, data, lines, str(path))
    except ConfigError as exc:
        issues.extend(exc.issues)
    # Cross-checks run on the raw data too, so one pass reports every problem in the file.
    yaml_flows = set(data["flows"]) if isinstance(data.get("flows"), dict) else set()
    issues.extend(_flow_issues(data, lines, str(path), (known_flows or set()) | yaml_flows))
    warnings: list[ConfigIssue] = []
    if config is not None:
        from callcore.ivr.validate import validate_ivr

        ivr_errors, warnings = validate_ivr(config.ivr(), lines=lines, file=str(path), known_sounds=known_sounds)
        issues.extend(ivr_errors)
        if config.queues or config.agents:
            from callcore.acd.validate import validate_acd

            acd_errors, acd_warnings = validate_acd(config.acd(), lines=lines, file=str(path), ivr=config.ivr())
            issues.extend(acd_errors)
            warnings = [*warnings, *acd_warnings]
        nodes = {n.name for n in config.ari.all_nodes()}
        for agent_id, agent in config.agents.items():
            if agent.node is not None and agent.node not in nodes:
                issues.append(ConfigIssue(str(path), lines.get(("agents", agent_id, "node")), f"agents.{agent_id}.node",
                                          f"unknown Asterisk node {agent.node!r}; nodes: {', '.join(sorted(nodes))}"))
        if config.campaigns:
            from callcore.campaigns.validate import validate_campaigns

            camp_errors, camp_warnings = validate_campaigns(
                config.campaigns, lines=lines, file=str(path), acd=config.acd(), known_sounds=known_sounds
            )
            issues.extend(camp_errors)
            warnings = [*warnings, *camp_warnings]
    ari = data.get("ari") if isinstance(data.get("ari"), dict) else {}
    if not ari.get("password"):
        issues.append(
            ConfigIssue(
                str(path),
                lines.get(("ari",)),
                "ari.password",
                "missing: set it in the file or in the environment as CALLCORE_ARI_PASSWORD",
            )
        )
    if issues or config is None:
        raise ConfigError(sorted(issues, key=lambda i: (i.line or 0, i.path)))
    state_dir = config.state_dir if config.state_dir.is_absolute() else path.parent / config.state_dir
    raw = path.read_bytes()
    return config.model_copy(
        update={
            "state_dir": state_dir.resolve(),
            "source": path.resolve(),
            "version": hashlib.sha256(raw).hexdigest()[:12],
            "warnings": [str(w) for w in warnings],
        }
    )


def _flow_issues(data: dict, lines: dict, file: str, flows: set[str]) -> list[ConfigIssue]:
    inbound = data.get("inbound") if isinstance(data.get("inbound"), dict) else {}
    issues: list[ConfigIssue] = []
    dids = inbound.get("dids") if isinstance(inbound.get("dids"), dict) else {}
    for did, flow in dids.items():
        if isinstance(flow, str) and flow not in flows:
            issues.append(ConfigIssue(
                file, lines.get(("inbound", "dids", did)), f"inbound.dids.{did}",
                f"unknown flow {flow!r} (known: {', '.join(sorted(flows))})",
            ))
    default = inbound.get("default_flow")
    if isinstance(default, str) and default not in flows:
        issues.append(ConfigIssue(
            file, lines.get(("inbound", "default_flow")), "inbound.default_flow", f"unknown flow {default!r}",
        ))
    return issues
