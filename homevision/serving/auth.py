"""Who may call which route: API keys sent as a bearer token (homevision.api_keys).

- `value` routes (valuations, model info) need a `value` or `admin` key; with no key configured
  they answer callers on the loopback interface only (`serve` also refuses to listen beyond it),
  and never a request that names a forwarding proxy (X-Forwarded-For, Forwarded, X-Real-IP):
  behind a proxy on this machine every caller is loopback, and uvicorn, when told to trust
  forwarded headers from anywhere (FORWARDED_ALLOW_IPS=*), takes the caller's address from them,
  so "X-Forwarded-For: 127.0.0.1" would pass for this machine.
  Once the server has seen a key it keeps requiring one (KeyRing fails closed): a key file that
  disappears answers 503, and revoking every key lets nobody in.
- `admin` routes (reload) need an `admin` key; with no key configured they are off (403, with a
  sentence saying how to create one).
- /metrics needs a `metrics` (or `admin`) key, as a Prometheus scraper sends it; with no key
  configured it answers loopback callers only. It is not data-free: the price histogram's sum
  moves by each valuation's price and the model's run id is a label, so a caller who could
  scrape it freely would learn what other callers were told.
- The health probes carry no data and stay open, as do the API's own description (/docs,
  /redoc, /openapi.json): the shape of the requests, no model and no valuation.

401 means no key or an unknown one (with `WWW-Authenticate: Bearer`), 403 a key whose scope does
not reach the route. A key never appears in an answer or a log line. The check runs before the
request's body is read (KeyCheckedRoute): FastAPI reads and parses a body before it resolves a
route's dependencies, so a caller without a key could otherwise make a worker take in and parse
up to the body cap on every request.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from homevision.api_keys import KeyRing, Scope, match_key

log = logging.getLogger(__name__)
CREATE_HINT = "homevision keys create --scope {scope}"
SCHEME = "APIKey"
SCHEME_DESCRIPTION = (
    "An API key (`homevision keys create --scope value|metrics|admin`), sent as "
    "`Authorization: Bearer hv_...`. With no key configured, valuations are open to loopback "
    "callers only and the admin routes are off."
)


# Set in the ASGI scope by KeyCheckedRoute once a request has passed a route's Requirement, so
# the same check, resolved again as the route's dependency, does not run twice.
CHECKED = "homevision.key_checked"
# ASGI header names are lower-case bytes: read from the scope, no Headers object is built.
FORWARDING_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and the test client's `testclient` host name."""
    if host == "testclient":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class Requirement(HTTPBearer):
    """The bearer scheme of a `scope` route and its check in one dependency: lets a request
    through or answers 401/403 with one sentence. One FastAPI dependency, not a check that
    depends on the scheme: FastAPI resolves every level on every request (under a profiler,
    the route's three levels cost as much as its valuation). Being the scheme itself, it puts
    the scheme in the OpenAPI document."""

    def __init__(self, scope: Scope, ring: KeyRing):
        super().__init__(auto_error=False, scheme_name=SCHEME, description=SCHEME_DESCRIPTION)
        self.scope, self.ring = scope, ring

    # async: a stat and a hash, no blocking work, so it never waits for a pool thread.
    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        if request.scope.get(CHECKED) is self:  # KeyCheckedRoute let it through already
            return
        scope = self.scope
        try:
            keys = self.ring.keys()
        except (OSError, ValueError) as err:  # unreadable, unsafe or corrupt key file
            log.error("API keys unavailable: %s", err)
            detail = "the API key file cannot be used; see the server log"
            raise HTTPException(503, detail) from None
        if not keys and not self.ring.required:  # keyless mode: never had a key
            if scope is Scope.admin:
                raise HTTPException(
                    403,
                    "the admin routes are off: no API key is configured; create one with "
                    f"`{CREATE_HINT.format(scope='admin')}` and send it as a bearer token",
                )
            proxied = any(name in FORWARDING_HEADERS for name, _ in request.scope["headers"])
            if not proxied and is_loopback(request.client.host if request.client else None):
                return
            raise _unauthorized(
                "an API key is required from beyond this machine"
                + (" (this request came through a proxy)" if proxied else "")
            )
        credentials = await super().__call__(request)
        if credentials is None:
            raise _unauthorized(
                "an API key is required: send `Authorization: Bearer <key>` "
                f"(`{CREATE_HINT.format(scope=scope.value)}`)"
            )
        record = match_key(credentials.credentials, keys)
        if record is None:
            raise _unauthorized("the API key is not valid (unknown or revoked)")
        if not record.allows(scope):
            raise HTTPException(
                403, f"this key's scope is {record.scope!r}; this route needs {scope.value!r}"
            )


class KeyCheckedRoute(APIRoute):
    """An APIRoute that runs its Requirement on the request's headers before the body is read.

    FastAPI reads and parses the body first and only then resolves dependencies: a keyless
    caller could make a worker read and parse up to the body cap (5.7 MB took 72-91 ms) for a
    401. Here the check answers first and the body is never read. The Requirement stays the
    route's dependency too: it documents the scheme in OpenAPI and still guards the route if
    this class is not used (it returns at once when this class has passed the request)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Return FastAPI's handler, preceded by the route's key check when it has one."""
        handler = super().get_route_handler()
        checks = [d.dependency for d in self.dependencies if isinstance(d.dependency, Requirement)]
        if not checks:
            return handler
        (check,) = checks

        async def checked(request: Request) -> Response:
            await check(request)
            request.scope[CHECKED] = check
            return await handler(request)

        return checked
