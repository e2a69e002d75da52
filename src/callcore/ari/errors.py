"""Typed ARI errors: callers catch the meaning (not found, conflict), not HTTP status codes."""

from __future__ import annotations


class AriError(Exception):
    """An ARI request failed. ``status`` is the HTTP status (0 when Asterisk could not be reached)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path} -> {status or 'unreachable'}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class AriBadRequest(AriError):
    """400: the request itself was wrong (missing or invalid parameter)."""


class AriNotFound(AriError):
    """404: the channel, bridge, playback or recording no longer exists (often: the caller hung up)."""


class AriConflict(AriError):
    """409/412/422: the resource is in the wrong state for this (e.g. channel not in Stasis, not answered)."""


class AriUnavailable(AriError):
    """Asterisk could not be reached, timed out or answered 5xx: retryable."""


class AriAuthError(AriError):
    """401/403: wrong ARI credentials. Not retryable: a configuration error."""


class ApplicationReplaced(Exception):
    """Another client took over our Stasis app. Fatal by design: never fight another instance for it."""


def error_for_status(method: str, path: str, status: int, message: str) -> AriError:
    if status == 400:
        return AriBadRequest(method, path, status, message)
    if status in (401, 403):
        return AriAuthError(method, path, status, message)
    if status == 404:
        return AriNotFound(method, path, status, message)
    if status in (409, 412, 422):
        return AriConflict(method, path, status, message)
    if status >= 500:
        return AriUnavailable(method, path, status, message)
    return AriError(method, path, status, message)
