"""The gateway's error mapping (``director_llm.serve.errors``): status, OpenAI shape, headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from director_llm.errors import (
    BudgetExceededError,
    BudgetStoreDownError,
    ClassificationError,
    DirectorClosedError,
    InputError,
    ProviderError,
)
from director_llm.route import Attempt, Route
from director_llm.serve.body import Rejected
from director_llm.serve.errors import error_info


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (InputError("bad"), 400, "invalid_input"),
        (Rejected(404, "model_not_found", "unknown model"), 404, "model_not_found"),
        (BudgetStoreDownError("redis down"), 503, "budget_store_unavailable"),
        (DirectorClosedError("closed"), 503, "shutting_down"),
        (
            ProviderError("all failed", attempts=[Attempt("a/x", "InternalServerError", "", 0.1, 500)]),
            502,
            "upstream_failed",
        ),
        (
            ProviderError("none callable", attempts=[Attempt("a/x", "skipped", "circuit open")]),
            503,
            "no_deployment_available",
        ),
        (
            ClassificationError("no valid answer", attempts=[Attempt("a/x", "InvalidAnswer", "", 0.1)]),
            502,
            "upstream_failed",
        ),
        (RuntimeError("secret internals sk-abcdefghijklmnop"), 500, "internal_error"),
    ],
)
def test_status_and_shape(exc: BaseException, status: int, code: str) -> None:
    info = error_info(exc)
    assert info.status == status
    assert set(info.body["error"]) == {"message", "type", "code", "param"}
    assert info.body["error"]["code"] == code
    assert "sk-abcdefghijklmnop" not in info.body["error"]["message"]


def test_budget_is_402_with_retry_after_to_the_reset() -> None:
    exc = BudgetExceededError(
        window="hour", limit_usd=1.0, spent_usd=1.0, resets_at=datetime.now(UTC) + timedelta(seconds=90)
    )
    info = error_info(exc)
    assert info.status == 402 and info.body["error"]["type"] == "insufficient_quota"
    assert 88 <= int(info.headers["Retry-After"]) <= 91


def test_upstream_429_keeps_the_retry_after_and_the_route() -> None:
    exc = ProviderError(
        "rate limited",
        attempts=[Attempt("a/x", "RateLimitError", "", 0.1, 429)],
        status_code=429,
        retry_after=7.2,
        route=Route(cost_usd=0.00125, tier="small"),
    )
    info = error_info(exc)
    assert info.status == 429 and info.headers["Retry-After"] == "8"
    assert info.headers["x-director-cost-usd"] == "0.00125" and info.headers["x-director-tier"] == "small"
