"""/config over a real config loader: the config in use, validate and dry-run a candidate, reload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callcore.api.config_routes import CONFIG_CONTROL
from callcore.config import load_config
from callcore.ivr.registry import CODE_FLOWS
from tests.unit.api.apifakes import start_api

# The control is attached after the test server started (the app's key is read per request).
pytestmark = pytest.mark.filterwarnings("ignore:Changing state of started or joined application")

BASE = """\
state_dir: state
ari: {password: x}
inbound: {dids: {"1000": sales}}
skills: [sales]
agents:
  a1: {endpoint: PJSIP/a1, skills: {sales: 5}, queues: [sales]}
queues:
  sales: {required_skills: {sales: 1}}
flows:
  sales: {start: q, nodes: {q: {type: queue, queue: sales}}}
"""


@dataclass
class Result:
    ok: bool
    version: str
    errors: list[str]
    warnings: list[str]


class Control:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.config = load_config(path, known_flows=set(CODE_FLOWS))
        self.reloads = 0

    def current(self) -> Any:
        return self.config

    def load(self, path: Path) -> Any:
        return load_config(path, known_flows=set(CODE_FLOWS))

    async def reload(self) -> Result:
        self.reloads += 1
        return Result(True, "v2", [], [])


async def api_with_config(tmp_path: Path):
    path = tmp_path / "callcore.yaml"
    path.write_text(BASE)
    control = Control(path)
    api = await start_api(max_body_bytes=65536)
    api.client.server.app[CONFIG_CONTROL] = control
    return api, control


async def test_the_config_in_use_lists_its_sections(tmp_path: Path):
    api, control = await api_with_config(tmp_path)
    try:
        status, body, _ = await api.call("GET", "/config")
        assert status == 200 and body["version"] == control.config.version
        assert body["sections"]["queues"] == ["sales"] and body["sections"]["agents"] == ["a1"]
    finally:
        await api.client.close()


async def test_a_broken_candidate_gets_every_error_with_its_line_and_nothing_changes(tmp_path: Path):
    api, control = await api_with_config(tmp_path)
    try:
        broken = BASE.replace("queue: sales}", "queue: nope}").replace("skills: {sales: 5}", "skills: {sales: 50}")
        status, body, _ = await api.call("POST", "/config/validate", json={"yaml": broken})
        assert status == 200 and body["valid"] is False and len(body["errors"]) >= 2
        assert all(":" in e for e in body["errors"])  # file:line: path: message
        assert any("nope" in e for e in body["errors"])
        assert control.reloads == 0 and (tmp_path / "callcore.yaml").read_text() == BASE
    finally:
        await api.client.close()


async def test_a_dry_run_says_what_would_change(tmp_path: Path):
    api, control = await api_with_config(tmp_path)
    try:
        candidate = BASE.replace("  sales: {required_skills: {sales: 1}}",
                                 "  sales: {required_skills: {sales: 2}}\n  billing: {required_skills: {sales: 1}}")
        status, body, _ = await api.call("POST", "/config/dry-run", json={"yaml": candidate})
        assert status == 200 and body["valid"] is True
        assert body["changes"]["queues"] == {"added": ["billing"], "removed": [], "changed": ["sales"]}
        assert body["restart_needed"] == []
        status, body, _ = await api.call("POST", "/config/dry-run", json={"yaml": BASE.replace("x}", "y}")})
        assert body["restart_needed"] == ["ari"]  # a new ARI password needs a restart
        status, body, _ = await api.call("POST", "/config/reload", json={})
        assert status == 200 and body["ok"] is True and control.reloads == 1
    finally:
        await api.client.close()
