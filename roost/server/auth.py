"""API and admin keys: FastAPI dependencies the routers put in front of their routes.

Keys come as ``Authorization: Bearer KEY`` (the admin key also as ``X-Admin-Key``)
and are compared in constant time against every allowed key.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from roost.server.errors import APIError


def keys_match(given: str | None, allowed: list[str]) -> bool:
    """Constant-time comparison against every allowed key."""
    if given is None:
        return False
    ok = False
    for key in allowed:
        ok |= hmac.compare_digest(given.encode(), key.encode())
    return ok


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def require_api_key(request: Request) -> None:
    config = request.app.state.roost.config
    if config.api_keys and not keys_match(bearer(request), config.api_keys):
        raise APIError(
            401,
            "Incorrect or missing API key. Pass it as 'Authorization: Bearer KEY'.",
            type="authentication_error",
            code="invalid_api_key",
        )


def require_admin_key(request: Request) -> None:
    config = request.app.state.roost.config
    given = bearer(request) or request.headers.get("x-admin-key")
    if not config.admin_key or not keys_match(given, [config.admin_key]):
        raise APIError(
            401,
            "Admin routes need the admin key: 'Authorization: Bearer ADMIN_KEY'.",
            type="authentication_error",
            code="invalid_admin_key",
        )
