"""The OpenAPI 3.1 document, generated from the route registry and the pydantic models' JSON Schemas.

Served at ``/openapi.json``; a copy is kept in the repository (``docs/openapi.json``, regenerated with
``callcore api openapi > docs/openapi.json``; a unit test fails when it is stale).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from callcore import __version__
from callcore.api.errors import ErrorBody
from callcore.api.pagination import PageQuery
from callcore.api.routing import IDEMPOTENCY_HEADER, ApiRequest, Route, RouteTable, routes_of

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"

TAG_DESCRIPTIONS = {
    "agents": "Agents' live state and commands (login, pause, ready, ...), skills, dispositions",
    "queues": "Queues' live statistics",
    "calls": "Live calls, call history, and actions on calls",
    "health": "Liveness, readiness, metrics",
    "meta": "This document and the API page",
}

ERROR_TEXT = {
    400: "Malformed request: invalid JSON, cursor or Idempotency-Key",
    401: "Missing, invalid or revoked bearer token",
    403: "The token's role may not do this, or an agent token acts on another agent",
    404: "Not found",
    409: "Conflict: the current state does not allow it, or an Idempotency-Key was reused for another request",
    413: "Request body too large",
    415: "The body is not JSON",
    422: "Validation failed: `error.details` lists every invalid field with its location",
    501: "Not implemented yet",
    503: "Not ready / a service is unavailable",
}

DESCRIPTION = """\
callcore's HTTP control API. Authenticate with `Authorization: Bearer <token>`; each operation lists the roles
that may call it (`x-roles`). Every error has the body `{"error": {"code", "message", "details"}}`. Lists are
paginated (`limit`, `cursor`; follow `next`). POSTs honour `Idempotency-Key`. See docs/api.md.
"""


def _error(status: int) -> dict[str, Any]:
    return {"description": ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}}


def _error_statuses(route: Route) -> list[int]:
    codes = set(route.errors)
    if route.roles:
        codes |= {401, 403}
    if route.path_params:
        codes.add(422)
    if route.query is not None:
        codes.add(422)
        if issubclass(route.query, PageQuery):
            codes.add(400)
    if route.body is not None:
        codes |= {400, 413, 415, 422}
    if route.idempotent:
        codes |= {400, 409}
    return sorted(codes)


def _schema_of(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(tp).json_schema(ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    return schema


def _parameters(route: Route, defs: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in route.param_names:
        params.append({"name": name, "in": "path", "required": True,
                       "schema": _schema_of(route.path_params.get(name, str), defs)})
    if route.query is not None:
        schema = route.query.model_json_schema(ref_template=REF)
        defs.update(schema.pop("$defs", {}))
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = _without_null(prop)
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if route.idempotent:
        params.append({"name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                       "description": "a unique key (e.g. a UUID) per request: a retry with the same key and body "
                                      "gets the first response; with another body a 409",
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}})
    return params


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never JSON null: ``anyOf [X, null]`` becomes X."""
    options = [o for o in prop.get("anyOf", []) if o != {"type": "null"}]
    if "anyOf" not in prop or len(options) != 1:
        return prop
    out = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**options[0], **out}


def build_openapi(routes: Sequence[Route]) -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for r in routes:
        if r.body is not None and (r.body, "validation") not in pairs:
            pairs.append((r.body, "validation"))
        if r.response is not None and (r.response, "serialization") not in pairs:
            pairs.append((r.response, "serialization"))
    refs, top = models_json_schema(pairs, ref_template=REF)
    defs: dict[str, Any] = dict(top.get("$defs", {}))

    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"operationId": r.operation_id, "summary": r.summary, "tags": list(r.tags)}
        description = r.description
        if r.roles:
            roles = ", ".join(x.value for x in r.allowed_roles)
            scoped = " (an agent token: only for its own agent)" if "agent" in roles else ""
            description = f"{description}\n\nRoles: {roles}{scoped}.".strip()
            op["security"] = [{SECURITY_SCHEME: []}]
            op["x-roles"] = [x.value for x in r.allowed_roles]
        else:
            description = f"{description}\n\nNo token needed.".strip()
            op["security"] = []
        op["description"] = description
        params = _parameters(r, defs)
        if params:
            op["parameters"] = params
        if r.body is not None:
            required = bool(r.body.model_json_schema().get("required"))
            op["requestBody"] = {"required": required,
                                 "content": {"application/json": {"schema": refs[(r.body, "validation")]}}}
        responses: dict[str, Any] = {}
        if r.raw is not None:
            responses[str(r.status)] = {"description": "OK", "content": {r.raw.split(";")[0]: {"schema": {
                "type": "object" if r.raw.startswith("application/json") else "string"}}}}
        elif r.response is None:
            responses["204"] = {"description": "No content"}
        else:
            for status in sorted({r.status, *r.other_statuses}):
                responses[str(status)] = {
                    "description": "Created" if status == 201 else "OK",
                    "content": {"application/json": {"schema": refs[(r.response, "serialization")]}},
                }
        for status in _error_statuses(r):
            responses[str(status)] = _error(status)
        responses["default"] = {"description": "Unexpected error (logged with the request id in `details`)",
                                "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}}
        op["responses"] = responses
        paths.setdefault(r.path, {})[r.method.lower()] = op

    used_tags = [t for t in TAG_DESCRIPTIONS if any(t in r.tags for r in routes)]
    return {
        "openapi": "3.1.0",
        "info": {"title": "callcore API", "version": __version__, "description": DESCRIPTION,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "tags": [{"name": t, "description": TAG_DESCRIPTIONS[t]} for t in used_tags],
        "security": [{SECURITY_SCHEME: []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(defs.items())),
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "http", "scheme": "bearer",
                "description": "A token from the config (api.tokens) or `callcore api token create`",
            }},
        },
    }


def render(spec: dict[str, Any]) -> str:
    """The document as the repository keeps it (stable key order, 2-space indent, final newline)."""
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


OPENAPI_CACHE = web.AppKey("openapi_cache", dict)

routes = RouteTable()


def spec_of(app: web.Application) -> dict[str, Any]:
    cache = app.get(OPENAPI_CACHE)
    if cache is None or "spec" not in cache:
        spec = build_openapi(routes_of(app))
        if cache is not None:
            cache["spec"] = spec
        return spec
    return cache["spec"]  # type: ignore[no-any-return]


@routes.get("/openapi.json", summary="This OpenAPI 3.1 document", tags=("meta",), raw="application/json")
async def openapi_document(req: ApiRequest) -> web.Response:
    return web.Response(text=render(spec_of(req.request.app)), content_type="application/json")


__all__ = ["build_openapi", "render", "routes", "spec_of"]
