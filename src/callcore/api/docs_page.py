"""The human-readable API page at ``/api``: one self-contained HTML file generated from the OpenAPI document
(inline CSS, no scripts, nothing fetched from elsewhere)."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from callcore.api.openapi import spec_of
from callcore.api.routing import ApiRequest, RouteTable

routes = RouteTable()

CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d232a;background:#fafafa}
main{max-width:1000px;margin:0 auto;padding:1.5rem}
h1{margin:.2rem 0}h2{margin-top:2.2rem;border-bottom:2px solid #dde;padding-bottom:.2rem}
code,pre{font:13px/1.4 ui-monospace,monospace}pre{background:#f0f1f4;padding:.6rem;overflow:auto}
.op{background:#fff;border:1px solid #dde;border-radius:6px;margin:.8rem 0;padding:.2rem .9rem .6rem}
.op summary{cursor:pointer;padding:.4rem 0;list-style:none}.m{display:inline-block;min-width:4.2em;font-weight:700}
.GET{color:#0a6}.POST{color:#05c}.PUT{color:#a60}.DELETE{color:#c22}.path{font-family:ui-monospace,monospace}
.roles{color:#666;font-size:13px;margin-left:.5rem}table{border-collapse:collapse;width:100%;margin:.3rem 0}
th,td{text-align:left;border-bottom:1px solid #eee;padding:.2rem .4rem;vertical-align:top}th{font-weight:600}
nav a{margin-right:1rem}
"""


def _type(schema: dict[str, Any]) -> str:
    """A short, linked type description of a JSON Schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f"<code>{escape(repr(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{escape(repr(schema['const']))}</code>"
    t = schema.get("type", "any")
    if t == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if t == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return f"map of {_type(schema['additionalProperties'])}"
    out = escape(str(t))
    if "format" in schema:
        out += f" ({escape(schema['format'])})"
    limits = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength", "maxLength", "pattern") if k in schema]
    return out + (f" <small>{escape(', '.join(limits))}</small>" if limits else "")


def _fields(schema: dict[str, Any]) -> str:
    props = schema.get("properties", {})
    if not props:
        return f"<p>{_type(schema)}</p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{escape(n)}</code>{'' if n in required else ' <small>optional</small>'}</td>"
        f"<td>{_type(p)}</td><td>{escape(p.get('description', ''))}</td></tr>"
        for n, p in props.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th></th></tr>{rows}</table>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f'<details class="op" id="{escape(op["operationId"])}"><summary>'
             f'<span class="m {method.upper()}">{method.upper()}</span> <span class="path">{escape(path)}</span> '
             f'— {escape(op.get("summary", ""))}'
             f'<span class="roles">{escape(", ".join(op.get("x-roles", [])) or "public")}</span></summary>']
    if op.get("description"):
        parts.append("".join(f"<p>{escape(p)}</p>" for p in op["description"].split("\n\n")))
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
            f"<td>{_type(p.get('schema', {}))}</td><td>{'required' if p.get('required') else ''}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>" for p in params)
        head = "<tr><th>name</th><th>in</th><th>type</th><th></th><th></th></tr>"
        parts.append(f"<h4>Parameters</h4><table>{head}{rows}</table>")
    body = op.get("requestBody")
    if body:
        schema = body["content"]["application/json"]["schema"]
        parts.append(f"<h4>Body (JSON{'' if body.get('required') else ', may be empty'})</h4><p>{_type(schema)}</p>")
    rows = ""
    for status, resp in op.get("responses", {}).items():
        content = resp.get("content", {})
        schema = next(iter(content.values()), {}).get("schema") if content else None
        rows += (f"<tr><td><code>{escape(status)}</code></td><td>{escape(resp.get('description', ''))}</td>"
                 f"<td>{_type(schema) if schema else ''}</td></tr>")
    parts.append(f"<h4>Responses</h4><table>{rows}</table></details>")
    return "".join(parts)


def render_page(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    by_tag: dict[str, list[str]] = {}
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append(_operation(path, method, op))
    tags = [t["name"] for t in spec.get("tags", [])] + [t for t in by_tag if t not in {
        x["name"] for x in spec.get("tags", [])}]
    descriptions = {t["name"]: t.get("description", "") for t in spec.get("tags", [])}
    sections = "".join(
        f'<h2 id="tag-{escape(t)}">{escape(t)}</h2><p>{escape(descriptions.get(t, ""))}</p>{"".join(by_tag[t])}'
        for t in tags if t in by_tag
    )
    schemas = "".join(
        f'<details class="op" id="schema-{escape(name)}"><summary><b>{escape(name)}</b> '
        f'{escape(s.get("description", "").splitlines()[0] if s.get("description") else "")}</summary>'
        f"{_fields(s)}</details>"
        for name, s in spec.get("components", {}).get("schemas", {}).items()
    )
    nav = "".join(f'<a href="#tag-{escape(t)}">{escape(t)}</a>' for t in tags if t in by_tag)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(info.get('title', 'API'))}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{escape(info.get('title', 'API'))} <small>{escape(info.get('version', ''))}</small></h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>'
        f'<nav>{nav}<a href="#schemas">schemas</a></nav>{sections}'
        f'<h2 id="schemas">Schemas</h2>{schemas}</main></body></html>'
    )


@routes.get("/api", summary="This API, as a web page", tags=("meta",), raw="text/html")
async def api_page(req: ApiRequest) -> web.Response:
    return web.Response(text=render_page(spec_of(req.request.app)), content_type="text/html")


__all__ = ["render_page", "routes"]
