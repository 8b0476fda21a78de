"""Optional bearer-token authentication (``[serve] api_keys_env``).

The tokens are read once, when the app is built, from the environment variable the config
names (comma separated). Every request except ``GET /health`` must then send
``Authorization: Bearer <token>``; a missing or wrong one gets 401 in the OpenAI error shape.
Tokens are compared in constant time (``hmac.compare_digest`` against every token, so the
time does not say which one nearly matched) and are never logged or echoed.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from director_llm.config.models import DirectorConfig
from director_llm.errors import ConfigError

__all__ = ["BearerAuth", "tokens_from_config"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
"""Paths served without a token (a load balancer's health check has none)."""


def tokens_from_config(config: DirectorConfig, source: str | None = None) -> tuple[bytes, ...]:
    """The accepted tokens; () when ``[serve] api_keys_env`` is unset. ``ConfigError`` when it
    names a variable that is missing or holds no token: auth was asked for, so refuse to run open."""
    name = config.serve.api_keys_env
    if name is None:
        return ()
    tokens = tuple(t.strip().encode() for t in os.environ.get(name, "").split(",") if t.strip())
    if not tokens:
        raise ConfigError(
            f"[serve] api_keys_env = {name!r}, but ${name} is not set or holds no token: set it to the "
            "accepted bearer tokens (comma separated), or remove api_keys_env to serve without authentication",
            path=source,
            key="serve.api_keys_env",
        )
    return tokens


class BearerAuth:
    """ASGI middleware: 401 unless ``Authorization: Bearer <one of tokens>``."""

    def __init__(self, app: ASGIApp, tokens: tuple[bytes, ...]) -> None:
        self.app = app
        self.tokens = tokens

    def allowed(self, header: bytes | None) -> bool:
        if header is None:
            return False
        scheme, _, token = header.partition(b" ")
        token = token.strip()
        ok = False
        for accepted in self.tokens:  # no early exit: the time must not depend on which matched
            ok |= hmac.compare_digest(token, accepted)
        return ok and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        if self.allowed(header):
            await self.app(scope, receive, send)
            return
        message = (
            "missing bearer token: send 'Authorization: Bearer <token>'" if header is None else "invalid bearer token"
        )
        body = json.dumps(
            {"error": {"message": message, "type": "authentication_error", "code": "invalid_api_key", "param": None}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
