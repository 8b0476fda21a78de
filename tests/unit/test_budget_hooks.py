"""BudgetHooks without sockets: drain waits for settlements in flight, abandoned attempts
are settled (never silently released), and each hold is closed exactly once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from director_llm.budget import BudgetLimits, MemoryLedger, Reservation
from director_llm.budget_hooks import BudgetHooks
from director_llm.config.loading import parse_config_text
from director_llm.providers import build_deployments

PRICE = (2.5e-6, 10e-6)
NAME = "openai/gpt-4o"
ASK = [{"role": "user", "content": "Explain step by step why TCP and UDP differ."}]


class SlowLedger(MemoryLedger):
    """A ledger whose settlements take a while (a busy network)."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__(limits=BudgetLimits(per_hour=1.0))
        self.delays = delays

    async def settle(self, reservation: Reservation, **kw: Any) -> None:
        await asyncio.sleep(self.delays.pop(0) if self.delays else 0.0)
        await super().settle(reservation, **kw)


def hooks(ledger: MemoryLedger) -> BudgetHooks:
    cfg = parse_config_text(f"""
[providers.openai]
models = ["gpt-4o"]
api_key_env = "UNUSED_KEY"
[providers.openai.overrides.gpt-4o]
input_price_per_million = {PRICE[0] * 1e6}
output_price_per_million = {PRICE[1] * 1e6}
""")
    deployments = {d.name: d for d in build_deployments(cfg)}
    return BudgetHooks(ledger, lambda: deployments, default_max_tokens=100)


def attempt(call_id: str, request_id: str = "req-1") -> dict[str, Any]:
    return {"litellm_call_id": call_id, "messages": ASK,
            "litellm_params": {"model_info": {"director_instance": "d1", "director_deployment": NAME}},
            "metadata": {"director": {"instance": "d1", "request_id": request_id}}}


def succeeded(call_id: str, pt: int = 100, ct: int = 50) -> dict[str, Any]:
    return {**attempt(call_id), "standard_logging_object": {"prompt_tokens": pt, "completion_tokens": ct}}


async def spent(ledger: MemoryLedger) -> tuple[float, float, int]:
    report = await ledger.snapshot()
    return report.windows["hour"].spent_usd, report.windows["hour"].reserved_usd, report.total.requests


async def test_drain_waits_for_a_settlement_still_in_flight() -> None:
    # The root cause of lost settlements: the first success is slow to settle, the second
    # quick; drain() used to return once the table of holds was empty.
    ledger = SlowLedger([0.3, 0.0])
    h = hooks(ledger)
    await h.guard(attempt("a"))
    await h.guard(attempt("b"))
    first = asyncio.create_task(h.attempt_succeeded(NAME, succeeded("a"), None, 0.1))
    await asyncio.sleep(0.01)
    await h.attempt_succeeded(NAME, succeeded("b"), None, 0.1)
    assert h.open_holds == 0 and h.settling == 1
    await h.drain(timeout=2.0)
    assert h.settling == 0
    assert await spent(ledger) == (pytest.approx(2 * (100 * PRICE[0] + 50 * PRICE[1])), 0.0, 2)
    await first


async def test_cancelled_callback_still_settles() -> None:
    # LiteLLM's logging worker cancels a callback that runs too long: the settle goes on.
    ledger = SlowLedger([0.2])
    h = hooks(ledger)
    await h.guard(attempt("a"))
    cb = asyncio.create_task(h.attempt_succeeded(NAME, succeeded("a"), None, 0.1))
    await asyncio.sleep(0.05)
    cb.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cb
    await h.drain(timeout=2.0)
    assert (await spent(ledger))[2] == 1


async def test_abandon_settles_delivered_text_within_the_reservation() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    h = hooks(ledger)
    await h.guard(attempt("a", request_id="stream-1"))
    worst = h.reserved_for("a")
    assert worst is not None and worst > 0
    assert h.abandon("stream-1", delivered_text="alpha beta gamma delta") == 1
    assert h.open_holds == 0
    # LiteLLM's late events for the same attempt change nothing: the hold is closed once.
    await h.attempt_failed(NAME, attempt("a"), RuntimeError("closed"), 0.1)
    await h.attempt_succeeded(NAME, succeeded("a"), None, 0.1)
    await h.drain(timeout=1.0)
    cost, reserved, requests = await spent(ledger)
    assert reserved == 0 and requests == 1
    assert 0 < cost <= worst
    assert cost >= 4 * PRICE[1]  # at least one token per delivered word


async def test_abandon_prefers_reported_usage_and_caps_at_the_reservation() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    h = hooks(ledger)
    await h.guard(attempt("a", request_id="r-usage"))
    await h.guard({**attempt("b", request_id="r-long"), "max_tokens": 5})
    h.abandon("r-usage", usage={"prompt_tokens": 30, "completion_tokens": 7}, delivered_text="ignored")
    h.abandon("r-long", delivered_text=" ".join(["word"] * 500))  # more than max_tokens=5
    await h.drain(timeout=1.0)
    report = await ledger.snapshot(by="model")
    usage = report.usage["openai:gpt-4o"]
    assert usage.requests == 2
    assert usage.completion_tokens == 7 + 5
    assert report.windows["hour"].spent_usd <= (h.reserved_for("a") or 0) + (h.reserved_for("b") or 0)


async def test_abandon_without_text_books_the_prompt_and_unknown_ids_are_ignored() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    h = hooks(ledger)
    await h.guard(attempt("a", request_id="timeout-1"))
    assert h.abandon("no-such-request") == 0 and h.abandon(None) == 0
    assert h.abandon("timeout-1") == 1
    await h.drain(timeout=1.0)
    cost, reserved, requests = await spent(ledger)
    assert reserved == 0 and requests == 1 and cost > 0


async def test_drain_returns_at_once_when_idle() -> None:
    h = hooks(MemoryLedger(limits=BudgetLimits(per_hour=1.0)))
    started = time.perf_counter()
    await h.drain(timeout=5.0)
    assert time.perf_counter() - started < 0.1
