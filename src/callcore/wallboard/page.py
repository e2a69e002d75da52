"""``GET /wallboard``: the supervisors' live wallboard, one self-contained HTML file (inline CSS and vanilla JS,
nothing fetched from elsewhere, no build step) shipped as package data (``static/wallboard.html``).

Loading the page needs no token: it holds no data. The page asks for a supervisor or integrator token, keeps it in
``sessionStorage`` and calls the API with it (``/queues``, ``/agents``, the KPI endpoints, the ``/events``
WebSocket); see docs/wallboard.md.

The response carries a Content-Security-Policy that allows exactly the page's own inline ``<script>`` and
``<style>`` (by their SHA-256, computed when the file is first read) and connections to this origin only.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib import resources

from aiohttp import web

from callcore.api.routing import ApiRequest, RouteTable

routes = RouteTable()

PAGE_FILE = "wallboard.html"
_BLOCK_RE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)
_HOST_RE = re.compile(r"[A-Za-z0-9.\-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")


def page_source() -> str:
    """The page as shipped (``callcore/wallboard/static/wallboard.html``)."""
    return resources.files("callcore.wallboard").joinpath("static", PAGE_FILE).read_text(encoding="utf-8")


def _hashes(html: str, tag: str) -> list[str]:
    out = []
    for found, body in _BLOCK_RE.findall(html):
        if found == tag:
            digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
            out.append(f"'sha256-{digest}'")
    return out


def content_security_policy(html: str, host: str | None = None) -> str:
    """Only the page's own inline script and style run; it connects to its own origin only (HTTP and WebSocket:
    ``'self'`` covers ws(s) to the same host in current browsers; the host is also named for older ones)."""
    connect = ["'self'"]
    if host and _HOST_RE.fullmatch(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    return "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(_hashes(html, "script")),
        "style-src " + " ".join(_hashes(html, "style")),
        "connect-src " + " ".join(connect),
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])


@lru_cache(maxsize=1)
def _page() -> str:
    return page_source()


@lru_cache(maxsize=64)
def _policy(host: str) -> str:
    return content_security_policy(_page(), host)


@routes.get("/wallboard", summary="The live wallboard for supervisors (a web page)", tags=("wallboard",),
            raw="text/html",
            description="A self-contained page (inline CSS and JavaScript, nothing loaded from elsewhere) showing "
                        "queues, agents, today's KPIs and calls per interval, live. The page itself holds no data "
                        "and needs no token; it asks for a supervisor or integrator token, keeps it in the "
                        "browser's sessionStorage and calls the API with it. See docs/wallboard.md.")
async def wallboard_page(req: ApiRequest) -> web.Response:
    host = req.request.host if _HOST_RE.fullmatch(req.request.host) else ""
    return web.Response(text=_page(), content_type="text/html", charset="utf-8", headers={
        "Content-Security-Policy": _policy(host),
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    })


__all__ = ["content_security_policy", "page_source", "routes"]
