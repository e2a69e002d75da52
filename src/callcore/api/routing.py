"""A small declarative route registry: one :class:`Route` per operation, used twice.

1. :meth:`RouteTable.register` adds an aiohttp handler per route that authenticates, checks the role (and the
   agent an agent token may act on), validates path parameters, query and JSON body with pydantic, honours
   ``Idempotency-Key`` where the route says so, calls the handler and serialises its result with the declared
   response model.
2. :func:`callcore.api.openapi.build_openapi` turns the same routes into the OpenAPI 3.1 document.

A handler is ``async def handler(req: ApiRequest) -> Model | Reply | web.StreamResponse``; it holds no
telephony logic: it calls the services of :mod:`callcore.api.services` found in ``req.services``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from callcore.api.auth import GRANTS, Authenticator, Principal, Role, authorize
from callcore.api.errors import ApiError, bad_request, validation_error
from callcore.api.idempotency import IdempotencyStore, check_key, fingerprint, run_idempotent
from callcore.api.services import ApiServices

SERVICES = web.AppKey("services", ApiServices)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyStore)
ROUTES = web.AppKey("routes", list)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


@dataclass
class ApiRequest:
    """What a handler gets: the validated inputs and who is asking."""

    request: web.Request
    principal: Principal | None
    path: dict[str, Any]
    query: Any
    body: Any

    @property
    def services(self) -> ApiServices:
        return self.request.app[SERVICES]

    def url_with(self, **params: object) -> str:
        """This request's path with the query parameters replaced (for ``next`` links)."""
        query = {k: v for k, v in self.request.query.items() if k not in params}
        query.update({k: str(v) for k, v in params.items() if v is not None})
        return str(self.request.rel_url.with_query(query))


@dataclass(frozen=True)
class Reply:
    """A handler result with a status (and headers) other than the route's default."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[ApiRequest], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: tuple[str, ...] = ()
    roles: tuple[Role, ...] = ()  # empty: public (no token needed)
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None  # None: 204 No Content (unless raw)
    status: int = 200
    other_statuses: tuple[int, ...] = ()  # success statuses a handler may answer (with a Reply) besides ``status``
    path_params: dict[str, Any] = field(default_factory=dict)  # name -> type (pydantic-validated)
    errors: tuple[int, ...] = ()  # error statuses this route may answer besides the standard ones
    agent_param: str | None = None  # path parameter naming the agent: agent tokens only for their own
    idempotent: bool = False  # honours Idempotency-Key
    description: str = ""
    raw: str | None = None  # the handler returns its own web.Response of this media type (docs, metrics)
    operation_id: str = ""

    @property
    def param_names(self) -> list[str]:
        return _PARAM_RE.findall(self.path)

    @property
    def allowed_roles(self) -> list[Role]:
        """Every role whose tokens may call this route (admin included wherever anyone is)."""
        return [r for r in Role if GRANTS[r] & set(self.roles)]


class RouteTable:
    """Routes declared with decorators, in declaration order."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self.routes: list[Route] = list(routes)

    def add(self, method: str, path: str, *, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            route = Route(method.upper(), path, handler, summary, **options)
            if not route.operation_id:
                route = replace(route, operation_id=handler.__name__)
            missing = set(route.param_names) - set(route.path_params)
            if missing:
                route = replace(route, path_params={**route.path_params, **{n: str for n in missing}})
            self.routes.append(route)
            return handler

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        options.setdefault("idempotent", True)
        return self.add("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("DELETE", path, **options)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def __add__(self, other: RouteTable) -> RouteTable:
        return RouteTable([*self.routes, *other.routes])

    def check(self) -> None:
        """Unique (method, path) and operation ids: a clash is a programming error."""
        seen: set[tuple[str, str]] = set()
        ids: set[str] = set()
        for r in self.routes:
            if (r.method, r.path) in seen:
                raise ValueError(f"route declared twice: {r.method} {r.path}")
            if r.operation_id in ids:
                raise ValueError(f"operation id used twice: {r.operation_id}")
            seen.add((r.method, r.path))
            ids.add(r.operation_id)

    def register(self, app: web.Application) -> None:
        self.check()
        for route in self.routes:
            app.router.add_route(route.method, route.path, make_handler(route), name=route.operation_id)
        app[ROUTES] = list(self.routes)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(tp)
    if adapter is None:
        adapter = _ADAPTERS[tp] = TypeAdapter(tp)
    return adapter


def _validate_path(route: Route, request: web.Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for name, tp in route.path_params.items():
        raw = request.match_info.get(name, "")
        try:
            out[name] = _adapter(tp).validate_python(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                problems.append({"loc": ["path", name, *err.get("loc", ())], "message": err["msg"],
                                 "type": err["type"]})
    if problems:
        first = problems[0]
        raise ApiError(422, "validation_error", f"path.{first['loc'][1]}: {first['message']}", problems)
    return out


def _validate_query(route: Route, request: web.Request) -> Any:
    if route.query is None:
        return None
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise ApiError(422, "validation_error", f"query.{key}: given {len(values)} times; give it once",
                           [{"loc": ["query", key], "message": "repeated parameter", "type": "repeated"}])
        data[key] = values[0]
    try:
        return route.query.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "query") from None


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def _read_body(route: Route, request: web.Request) -> tuple[Any, Any]:
    """(validated model, parsed JSON) of the request body; an empty body is ``{}``."""
    assert route.body is not None
    raw = await request.read()  # over client_max_size: aiohttp raises 413, which the middleware shapes
    if not raw.strip():
        data: Any = {}
    else:
        if request.content_type and request.content_type != "application/octet-stream" and not _is_json(
            request.content_type
        ):
            raise ApiError(415, "unsupported_media_type",
                           f"the body must be JSON (Content-Type: application/json), not {request.content_type}")
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request("invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        return route.body.model_validate(data), data
    except ValidationError as exc:
        raise validation_error(exc, "body") from None


def _serialize(route: Route, result: Any) -> tuple[int, Any, dict[str, str]]:
    status, headers = route.status, {}
    if isinstance(result, Reply):
        status, headers, result = result.status, dict(result.headers), result.body
    if route.response is None or result is None:
        return (204 if status == 200 else status), None, headers
    if not isinstance(result, route.response):
        result = route.response.model_validate(result, from_attributes=True)
    return status, result.model_dump(mode="json"), headers


def _json(status: int, payload: Any, headers: dict[str, str]) -> web.Response:
    if payload is None:
        return web.Response(status=status, headers=headers)
    return web.json_response(payload, status=status, headers=headers,
                             dumps=lambda o: json.dumps(o, separators=(",", ":")))


def make_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal: Principal | None = None
        if route.roles:
            principal = await request.app[AUTHENTICATOR].authenticate(request)
            authorize(principal, route.roles)
        path = _validate_path(route, request)
        if principal is not None and route.agent_param is not None:
            authorize(principal, route.roles, agent_id=str(path[route.agent_param]))
        query = _validate_query(route, request)
        body, raw_body = (await _read_body(route, request)) if route.body is not None else (None, None)
        req = ApiRequest(request, principal, path, query, body)

        async def run() -> tuple[int, Any, dict[str, str]]:
            result = await route.handler(req)
            if isinstance(result, web.StreamResponse):
                raise TypeError("raw responses cannot be idempotent")
            return _serialize(route, result)

        key = request.headers.get(IDEMPOTENCY_HEADER)
        if route.idempotent and key is not None:
            check_key(key)
            owner = principal.name if principal is not None else "-"
            route_key = f"{route.method} {request.path}"
            status, payload, headers, replayed = await run_idempotent(
                request.app[IDEMPOTENCY], owner=owner, key=key, route=route_key,
                body_hash=fingerprint(route_key, raw_body), run=run,
            )
            headers = {**headers, IDEMPOTENCY_HEADER: key}
            if replayed:
                headers[REPLAY_HEADER] = "true"
            return _json(status, payload, headers)
        if route.raw is not None:
            result = await route.handler(req)
            if isinstance(result, web.StreamResponse):
                return result
            return web.Response(text=str(result), content_type=route.raw)
        return _json(*(await run()))

    handle.__name__ = route.operation_id or route.handler.__name__
    return handle


def routes_of(app: web.Application) -> Sequence[Route]:
    return app.get(ROUTES, [])


__all__ = [
    "AUTHENTICATOR",
    "IDEMPOTENCY",
    "IDEMPOTENCY_HEADER",
    "REPLAY_HEADER",
    "SERVICES",
    "ApiRequest",
    "Reply",
    "Route",
    "RouteTable",
    "make_handler",
    "routes_of",
]
