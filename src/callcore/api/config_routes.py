"""``/config``: see the config in use, validate a candidate, see what it would change, and reload (admins only).

The YAML file stays the source of truth (reviewed, versioned): the API never writes it. ``POST /config/validate``
and ``POST /config/dry-run`` take a candidate YAML document as the body (``text/yaml`` or JSON ``{"yaml": …}``)
and answer with every problem (file line and YAML path) or with what would change; ``POST /config/reload``
makes the running callcore load its file again (as SIGHUP does): a valid file applies to new calls, an invalid
one changes nothing.

The app registers the control before the server starts: ``api.app[CONFIG_CONTROL] = AppConfig(app)``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from pydantic import Field

from callcore.api.auth import Role
from callcore.api.common import Body, Out
from callcore.api.errors import ApiError
from callcore.api.routing import ApiRequest, RouteTable

routes = RouteTable()
ROLES = (Role.admin,)
TAGS = ("config",)
SECTIONS = ("flows", "schedules", "queues", "agents", "skills", "campaigns", "inbound", "transfers", "callbacks")


class ConfigControl(Protocol):
    def current(self) -> Any: ...  # the CallcoreConfig in use
    def load(self, path: Path) -> Any: ...  # load_config with the running process's known flows/sounds
    async def reload(self) -> Any: ...  # ReloadResult


CONFIG_CONTROL = web.AppKey("config_control", ConfigControl)  # type: ignore[type-abstract]


class CandidateBody(Body):
    yaml: str = Field(min_length=1, max_length=1_000_000, description="a whole config file")


class ConfigOut(Out):
    version: str
    source: str | None
    warnings: list[str]
    sections: dict[str, list[str]] = Field(description="names defined per section (flows, queues, agents…)")


class ValidationOut(Out):
    valid: bool
    version: str | None = Field(description="the candidate's fingerprint, when valid")
    errors: list[str] = Field(description="file:line: path: message, every problem at once")
    warnings: list[str]


class SectionChange(Out):
    added: list[str]
    removed: list[str]
    changed: list[str]


class DryRunOut(Out):
    valid: bool
    errors: list[str]
    restart_needed: list[str] = Field(description="sections a reload cannot change (they need a restart)")
    changes: dict[str, SectionChange] = Field(description="per section, the names added, removed or changed")


class ReloadOut(Out):
    ok: bool
    version: str
    errors: list[str]
    warnings: list[str]


def _control(req: ApiRequest) -> ConfigControl:
    control = req.request.app.get(CONFIG_CONTROL)
    if control is None:
        raise ApiError(501, "not_implemented", "config control is not wired in this process")
    return control


def _names(cfg: Any, section: str) -> dict[str, Any]:
    value = getattr(cfg, section, None)
    if isinstance(value, dict):
        return {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(v): v for v in value}
    return {"": value.model_dump() if hasattr(value, "model_dump") else value} if value is not None else {}


def _load_candidate(control: ConfigControl, text: str, like: Path | None) -> tuple[Any, list[str]]:
    from callcore.config.loader import ConfigError

    # Next to the real file, so relative paths (state_dir, sounds) mean the same thing.
    directory = like.parent if like is not None else Path(tempfile.gettempdir())
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=directory, delete=True) as f:
        f.write(text)
        f.flush()
        try:
            return control.load(Path(f.name)), []
        except ConfigError as exc:
            return None, [str(i) for i in exc.issues]


@routes.get("/config", summary="The config in use", tags=TAGS, roles=ROLES, response=ConfigOut)
async def get_config(req: ApiRequest) -> ConfigOut:
    cfg = _control(req).current()
    return ConfigOut(version=cfg.version, source=str(cfg.source) if cfg.source else None, warnings=cfg.warnings,
                     sections={s: sorted(_names(cfg, s)) for s in SECTIONS if isinstance(getattr(cfg, s, None),
                                                                                         (dict, list))})


@routes.post("/config/validate", summary="Validate a candidate config (nothing changes)", tags=TAGS, roles=ROLES,
             body=CandidateBody, response=ValidationOut)
async def validate_config(req: ApiRequest) -> ValidationOut:
    control = _control(req)
    cfg, errors = _load_candidate(control, req.body.yaml, control.current().source)
    if cfg is None:
        return ValidationOut(valid=False, version=None, errors=errors, warnings=[])
    return ValidationOut(valid=True, version=cfg.version, errors=[], warnings=cfg.warnings)


@routes.post("/config/dry-run", summary="What a candidate config would change (nothing changes)", tags=TAGS,
             roles=ROLES, body=CandidateBody, response=DryRunOut)
async def dry_run(req: ApiRequest) -> DryRunOut:
    from callcore.app import RESTART_ONLY

    control = _control(req)
    current = control.current()
    cfg, errors = _load_candidate(control, req.body.yaml, current.source)
    if cfg is None:
        return DryRunOut(valid=False, errors=errors, restart_needed=[], changes={})
    changes: dict[str, SectionChange] = {}
    for section in SECTIONS:
        old, new = _names(current, section), _names(cfg, section)
        diff = SectionChange(added=sorted(set(new) - set(old)), removed=sorted(set(old) - set(new)),
                             changed=sorted(k for k in set(old) & set(new) if old[k] != new[k]))
        if diff.added or diff.removed or diff.changed:
            changes[section] = diff
    restart = [k for k in RESTART_ONLY if getattr(cfg, k, None) != getattr(current, k, None)]
    return DryRunOut(valid=True, errors=[], restart_needed=restart, changes=changes)


@routes.post("/config/reload", summary="Load the config file again (like SIGHUP)", tags=TAGS, roles=ROLES,
             response=ReloadOut,
             description="Valid: applies to new calls (calls in progress keep their version). Invalid: nothing "
                         "changes and every error is listed.")
async def reload_config(req: ApiRequest) -> ReloadOut:
    result = await _control(req).reload()
    return ReloadOut(ok=result.ok, version=result.version, errors=result.errors, warnings=result.warnings)


class AppConfig:
    """:class:`ConfigControl` over a running ``CallcoreApp``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def current(self) -> Any:
        return self.app.config

    def load(self, path: Path) -> Any:
        from callcore.campaigns.catalog import conflict_message, conflicts
        from callcore.config import load_config
        from callcore.config.loader import ConfigError, ConfigIssue
        from callcore.ivr.registry import CODE_FLOWS

        cfg = load_config(path, known_flows=set(CODE_FLOWS) | set(self.app._flows or {}))
        # A reload would refuse it: validate and dry-run say so too.
        catalog = getattr(self.app, "campaign_catalog", None)
        taken = conflicts(cfg.campaigns, catalog.stored) if catalog is not None else []
        if taken:
            raise ConfigError([ConfigIssue(str(path), None, "campaigns", conflict_message(taken))])
        return cfg

    async def reload(self) -> Any:
        return await self.app.reload()


__all__ = ["CONFIG_CONTROL", "AppConfig", "ConfigControl", "routes"]
