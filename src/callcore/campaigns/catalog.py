"""Campaigns created and changed through the API, kept in PostgreSQL (``campaigns`` table, sql/0009).

Two owners, one namespace: the config file owns its campaigns (changed by editing it and reloading), the API
owns the ones it created (changed with ``PUT /campaigns/{name}``). A name belongs to one of them only: the API
refuses a name the file has, and a reload refuses a file that takes a name the API has (:func:`conflicts`).

An API campaign is checked exactly like one in the file (pydantic, then ``validate_campaigns`` against the ACD
config of the running process) before anything is stored; the store and the running dialer change together
(the row is written in a transaction that commits only if the dialer took the change).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog

from callcore.api.outbound_services import Invalid
from callcore.api.services import NotFound, Rejected
from callcore.campaigns.model import CampaignConfig
from callcore.campaigns.validate import validate_campaigns

log = structlog.get_logger("callcore.campaigns")

Source = Literal["config", "api"]
CONFIG_OWNED = "defined in the config file; change it there and reload"


@dataclass(frozen=True)
class StoredCampaign:
    name: str
    config: CampaignConfig
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


def definition_of(config: CampaignConfig) -> dict[str, Any]:
    """What is stored: the fields the client gave (defaults stay defaults, so a later release's better default
    reaches campaigns that never chose a value), in JSON form."""
    return config.model_dump(mode="json", exclude_unset=True)


def _stored(row: Any) -> StoredCampaign:
    return StoredCampaign(row["name"], CampaignConfig.model_validate(row["definition"]), row["version"],
                          row["created_at"], row["created_by"], row["updated_at"], row["updated_by"])


async def load_api_campaigns(db: Any) -> dict[str, StoredCampaign]:
    """Every API campaign, by name (at start, before the dialer is built)."""
    rows = await db.fetch("SELECT * FROM campaigns ORDER BY name")
    return {r["name"]: _stored(r) for r in rows}


def conflicts(config_names: Iterable[str], api_names: Iterable[str]) -> list[str]:
    """Names both the config file and the API define (sorted); a config with any is refused."""
    return sorted(set(config_names) & set(api_names))


def conflict_message(names: list[str]) -> str:
    return (f"campaign{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)} "
            f"{'are' if len(names) > 1 else 'is'} managed through the API (PUT /campaigns/{{name}}): rename the "
            "config file's campaign, or delete the API one first")


class CampaignCatalog:
    """Creates and updates API campaigns: validated, stored, handed to the running dialer.

    ``config_campaigns`` and ``acd`` are read at each request, so a reload's new file is what counts."""

    def __init__(self, db: Any, dialer: Any, *, config_campaigns: Callable[[], Mapping[str, CampaignConfig]],
                 acd: Callable[[], Any], known_sounds: Callable[[], set[str] | None] = lambda: None,
                 stored: Mapping[str, StoredCampaign] | None = None,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.on_change = on_change  # told after a campaign was created or changed (e.g. KPI definitions follow)
        self.dialer = dialer
        self.config_campaigns = config_campaigns
        self.acd = acd
        self.known_sounds = known_sounds
        self.stored: dict[str, StoredCampaign] = dict(stored or {})

    def source(self, name: str) -> Source:
        return "api" if name in self.stored else "config"

    def version(self, name: str) -> int | None:
        s = self.stored.get(name)
        return s.version if s is not None else None

    def validate(self, name: str, config: CampaignConfig) -> list[str]:
        """The config file's checks; raises Invalid with every error. Returns the warnings."""
        errors, warnings = validate_campaigns({name: config}, lines={}, file="body", acd=self.acd(),
                                              known_sounds=self.known_sounds(), root=())

        def where(path: str) -> str:
            # Paths relative to the body ("" for the campaign as a whole).
            return path[len(name) + 1:] if path.startswith(name + ".") else ("" if path == name else path)

        if errors:
            raise Invalid(f"campaign {name!r} is not valid: {len(errors)} problem(s)",
                          {"issues": [{"path": where(i.path), "message": i.message} for i in errors]})
        return [f"{where(i.path) or name}: {i.message}" for i in warnings]

    async def create(self, name: str, config: CampaignConfig, *, by: str) -> tuple[StoredCampaign, list[str]]:
        if name in self.config_campaigns():
            raise Rejected(f"campaign {name!r} is {CONFIG_OWNED}", {"campaign": name, "source": "config"})
        if name in self.stored:
            raise Rejected(f"campaign {name!r} exists already: change it with PUT /campaigns/{name}",
                           {"campaign": name, "source": "api", "version": self.stored[name].version})
        warnings = self.validate(name, config)
        added = False
        try:
            async with self.db.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "INSERT INTO campaigns (name, definition, created_by, updated_by) VALUES ($1, $2, $3, $3) "
                    "ON CONFLICT (name) DO NOTHING RETURNING *", name, definition_of(config), by)
                if row is None:  # another process (or request) took the name meanwhile
                    raise Rejected(f"campaign {name!r} exists already", {"campaign": name})
                stored = _stored(row)
                self.dialer.add_campaign(name, stored.config)  # DialerError (a name it has): the insert rolls back
                added = True
        except BaseException:
            if added:  # the commit failed after the dialer took the campaign: it is not stored, so it goes again
                self.dialer.discard_campaign(name)
                log.error("campaign not stored (commit failed); not created", campaign=name)
            raise
        self.stored[name] = stored
        self.on_change()
        log.info("campaign created through the API", campaign=name, by=by)
        return stored, warnings

    async def update(self, name: str, config: CampaignConfig, *, by: str,
                     expected_version: int | None = None) -> tuple[StoredCampaign, list[str]]:
        if name in self.config_campaigns() and name not in self.stored:
            raise Rejected(f"campaign {name!r} is {CONFIG_OWNED}", {"campaign": name, "source": "config"})
        current = self.stored.get(name)
        if current is None:
            raise NotFound(f"no campaign {name!r}", {"resource": "campaign", "id": name})
        if expected_version is not None and expected_version != current.version:
            raise Rejected(f"campaign {name!r} was changed meanwhile: it is at version {current.version}, not "
                           f"{expected_version}; read it again", {"campaign": name, "version": current.version})
        warnings = self.validate(name, config)
        self.dialer.check_config_change(name, config)  # DialerError before anything is written
        swapped = False
        try:
            async with self.db.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "UPDATE campaigns SET definition = $2, version = version + 1, updated_at = now(), updated_by = $3 "
                    "WHERE name = $1 AND ($4::int IS NULL OR version = $4) RETURNING *",
                    name, definition_of(config), by, expected_version)
                if row is None:
                    raise Rejected(f"campaign {name!r} was changed meanwhile; read it again", {"campaign": name})
                stored = _stored(row)
                # Synchronous: nothing can start the campaign between this check and the swap.
                self.dialer.replace_config(name, stored.config)
                swapped = True
        except BaseException:
            if swapped:  # the commit failed after the swap: the dialer goes back to the stored definition
                self.dialer.replace_config(name, current.config)
                log.error("campaign change not stored (commit failed); the previous definition stays", campaign=name)
            raise
        self.stored[name] = stored
        self.on_change()
        log.info("campaign changed through the API", campaign=name, by=by, version=stored.version)
        return stored, warnings


def all_campaigns(config_campaigns: Mapping[str, CampaignConfig],
                  stored: Mapping[str, StoredCampaign]) -> dict[str, CampaignConfig]:
    """The file's campaigns and those created through the API; a name in both is the file's (as at start)."""
    return {**{name: s.config for name, s in stored.items()}, **config_campaigns}


__all__ = ["CONFIG_OWNED", "CampaignCatalog", "StoredCampaign", "all_campaigns", "conflict_message", "conflicts",
           "definition_of", "load_api_campaigns"]
