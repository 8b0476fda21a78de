"""Errors in the OpenAI shape: ``{"error": {"message", "type", "code", "param"}}`` + status.

| error | status | ``type`` / ``code`` | headers |
| --- | --- | --- | --- |
| ``InputError``, a malformed JSON body | 400 | ``invalid_request_error`` / ``invalid_input``, ``invalid_json`` | |
| a body over the limit | 413 | ``invalid_request_error`` / ``request_too_large`` | |
| an unknown ``model`` | 404 | ``invalid_request_error`` / ``model_not_found`` | |
| no or a wrong bearer token | 401 | ``authentication_error`` / ``invalid_api_key`` | ``WWW-Authenticate`` |
| ``BudgetExceededError`` | 402 | ``insufficient_quota`` / ``budget_exceeded`` | ``Retry-After`` (window reset) |
| ``RateLimitedError`` (our own rate limits) | 429 | ``rate_limit_error`` / ``rate_limit_exceeded`` | ``Retry-After`` |
| ``ProviderError`` whose last answer was a 429 | 429 | ``rate_limit_error`` / ``rate_limit_exceeded`` | ``Retry-After`` |
| ``ProviderError`` (every deployment failed) | 502 | ``api_error`` / ``upstream_failed`` | |
| ``ProviderError`` (nothing could be called: breakers open) | 503 | ``api_error`` / ``no_deployment_available`` | |
| ``BudgetBackendError`` (the ledger's Redis is down) | 503 | ``api_error`` / ``budget_store_unavailable`` | |
| ``DirectorClosedError`` (shutting down) | 503 | ``api_error`` / ``shutting_down`` | |
| anything else | 500 | ``api_error`` / ``internal_error`` (no detail, no traceback) | |

Messages are ``DirectorError`` messages (redacted at creation) redacted once more.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from director_llm.errors import (
    BudgetBackendError,
    BudgetExceededError,
    DirectorClosedError,
    DirectorError,
    InputError,
    ProviderError,
    RateLimitedError,
    redact,
)
from director_llm.serve.body import Rejected
from director_llm.serve.headers import route_headers

__all__ = ["ErrorInfo", "error_info", "error_response", "openai_error"]

log = logging.getLogger("director_llm.serve")


class ErrorInfo:
    """Status, OpenAI error body and headers of one error."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, message: str, type_: str, code: str, headers: dict[str, str] | None = None):
        self.status = status
        self.body = openai_error(message, type_, code)
        self.headers = headers or {}


def openai_error(message: str, type_: str, code: str) -> dict[str, Any]:
    """The OpenAI error body."""
    return {"error": {"message": redact(message), "type": type_, "code": code, "param": None}}


def _retry_after(seconds: float | None) -> dict[str, str]:
    if seconds is None or not math.isfinite(seconds):
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def error_info(exc: BaseException) -> ErrorInfo:
    """Map an exception to its status, body and headers (see the module docstring)."""
    headers = route_headers(getattr(exc, "route", None)) if isinstance(exc, DirectorError) else {}
    if isinstance(exc, Rejected):
        return ErrorInfo(exc.status, str(exc), exc.type, exc.code)
    if isinstance(exc, InputError):
        return ErrorInfo(400, str(exc), "invalid_request_error", "invalid_input", headers)
    if isinstance(exc, BudgetExceededError):
        wait = None
        if exc.resets_at is not None:
            resets = exc.resets_at if exc.resets_at.tzinfo else exc.resets_at.replace(tzinfo=UTC)
            wait = (resets - datetime.now(UTC)).total_seconds()
        return ErrorInfo(402, str(exc), "insufficient_quota", "budget_exceeded", {**headers, **_retry_after(wait)})
    if isinstance(exc, BudgetBackendError):
        return ErrorInfo(503, str(exc), "api_error", "budget_store_unavailable", headers)
    if isinstance(exc, DirectorClosedError):
        return ErrorInfo(503, "the server is shutting down; retry", "api_error", "shutting_down", headers)
    if isinstance(exc, RateLimitedError):  # our own limits ([llm.rate_limits], rpm/tpm/...)
        return ErrorInfo(
            429, str(exc), "rate_limit_error", "rate_limit_exceeded", {**headers, **_retry_after(exc.retry_after)}
        )
    if isinstance(exc, ProviderError):
        if exc.status_code == 429:
            return ErrorInfo(
                429, str(exc), "rate_limit_error", "rate_limit_exceeded", {**headers, **_retry_after(exc.retry_after)}
            )
        if not any(a.called for a in exc.attempts):
            return ErrorInfo(503, str(exc), "api_error", "no_deployment_available", headers)
        return ErrorInfo(502, str(exc), "api_error", "upstream_failed", headers)
    if isinstance(exc, DirectorError):
        return ErrorInfo(500, str(exc), "api_error", "internal_error", headers)
    # Not ours: never echo it (it may quote a request); the class name goes to the log.
    log.error("unexpected %s while serving a request", type(exc).__name__)
    return ErrorInfo(500, "internal error", "api_error", "internal_error")


def error_response(exc: BaseException) -> JSONResponse:
    """``error_info(exc)`` as a response."""
    info = error_info(exc)
    return JSONResponse(info.body, status_code=info.status, headers=info.headers)
