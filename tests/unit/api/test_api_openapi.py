"""The OpenAPI 3.1 document: structurally valid (checked by hand: no validator dependency), served, kept in the
repository up to date, and rendered as a self-contained page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from callcore.api.docs_page import render_page
from callcore.api.openapi import build_openapi, render
from callcore.api.server import api_routes
from callcore.cli import main
from tests.unit.api.apifakes import CALL1, Api

REPO_SPEC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_openapi(api_routes().routes)


def operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert method in METHODS, (path, method)
            yield path, method, op


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def walk(node: Any, where: str = "#"):
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}/{i}")


def test_document_header(spec):
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"][
            "description"]}


def test_every_ref_resolves_and_no_local_defs_are_left(spec):
    refs = [(where, node["$ref"]) for where, node in walk(spec) if "$ref" in node]
    assert refs
    for where, ref in refs:
        resolve(spec, ref)
    assert not [where for where, node in walk(spec) if "$defs" in node]


def test_every_schema_is_used(spec):
    used = {ref.rsplit("/", 1)[-1] for _, node in walk(spec) if isinstance(node.get("$ref"), str)
            for ref in [node["$ref"]]}
    assert set(spec["components"]["schemas"]) <= used


def test_every_operation_is_complete(spec):
    ids = []
    for path, method, op in operations(spec):
        ids.append(op["operationId"])
        assert op["summary"] and op["tags"], (path, method)
        responses = op["responses"]
        assert responses and any(code.startswith("2") for code in responses), (path, method)
        for code, resp in responses.items():
            assert code == "default" or re.fullmatch(r"[1-5]\d\d", code), code
            assert resp["description"], (path, method, code)
            if code.startswith(("4", "5")) or code == "default":
                assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
        if "requestBody" in op:
            assert method in ("post", "put", "patch")
            assert "$ref" in op["requestBody"]["content"]["application/json"]["schema"]
            assert {"400", "413", "415", "422"} <= set(responses)
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_path_parameters_match_the_templates(spec):
    for path, method, op in operations(spec):
        in_template = re.findall(r"\{([^}]+)\}", path)
        declared = [p for p in op.get("parameters", []) if p["in"] == "path"]
        assert [p["name"] for p in declared] == in_template, (path, method)
        assert all(p["required"] is True and "schema" in p for p in declared)
        names = [(p["in"], p["name"]) for p in op.get("parameters", [])]
        assert len(names) == len(set(names)), (path, method)


def test_security_is_declared_everywhere(spec):
    schemes = spec["components"]["securitySchemes"]
    assert spec["security"] == [{"bearerAuth": []}]
    public = set()
    for path, method, op in operations(spec):
        assert "security" in op, (path, method)
        for requirement in op["security"]:
            assert set(requirement) <= set(schemes)
        if op["security"]:
            assert op["x-roles"] and "admin" in op["x-roles"], (path, method)
            assert {"401", "403"} <= set(op["responses"])
            assert "Roles:" in op["description"]
        else:
            public.add(path)
    assert public == {"/healthz", "/readyz", "/metrics", "/openapi.json", "/api", "/wallboard"}


def test_posts_document_the_idempotency_key(spec):
    for path, method, op in operations(spec):
        headers = [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]
        assert headers == (["Idempotency-Key"] if method == "post" else []), (path, method)


def test_query_parameters_are_never_null(spec):
    for path, method, op in operations(spec):
        for p in op.get("parameters", []):
            if p["in"] == "query":
                assert "null" not in json.dumps(p["schema"]), (path, p)


def test_the_repository_copy_is_current(spec):
    assert REPO_SPEC.exists(), "docs/openapi.json is missing: run `callcore api openapi > docs/openapi.json`"
    assert REPO_SPEC.read_text() == render(spec), \
        "docs/openapi.json is stale: run `callcore api openapi > docs/openapi.json`"


def test_cli_prints_the_document(capsys, spec):
    assert main(["api", "openapi"]) == 0
    assert json.loads(capsys.readouterr().out) == spec


async def test_served_document_is_the_same(api: Api, spec):
    status, body, headers = await api.call("GET", "/openapi.json", None)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body == json.loads(render(spec))


async def test_responses_carry_exactly_the_documented_fields(api: Api, spec):
    """Real bodies against the document: required fields present, no undocumented ones."""
    api.world.acd.on_call("a1", CALL1)
    checks = [("/agents", "get", "/agents"), ("/agents/{agent_id}", "get", "/agents/a1"),
              ("/queues/{name}", "get", "/queues/sales"), ("/calls/{call_id}", "get", f"/calls/{CALL1}"),
              ("/agents/{agent_id}", "get", "/agents/ghost")]
    for template, method, path in checks:
        status, body, _ = await api.call(method.upper(), path)
        schema = resolve(spec, spec["paths"][template][method]["responses"][str(status)]["content"][
            "application/json"]["schema"]["$ref"])
        assert set(schema["required"]) <= set(body) <= set(schema["properties"]), path


def test_the_page_is_self_contained(spec):
    page = render_page(spec)
    assert page.startswith("<!doctype html>")
    assert "<script" not in page
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page), "nothing may be fetched from elsewhere"
    assert "@import" not in page and "url(" not in page
    for path, _, op in operations(spec):
        assert f'id="{op["operationId"]}"' in page
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in page


async def test_the_page_is_served_at_api(api: Api):
    status, body, headers = await api.call("GET", "/api", None)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "/agents/{agent_id}/wrap-up/end" in body
