"""The HTTP control API (aiohttp): bearer tokens with roles, pydantic-validated bodies, one error shape, an
OpenAPI 3.1 document, health and Prometheus metrics. It calls services (:mod:`callcore.api.services`), never ARI.

Entry points: :func:`callcore.api.server.create_app`, :class:`callcore.api.server.ApiServer`. See docs/api.md.
"""
