"""BudgetGuard without sockets: drain waits for settlements in flight, abandoned calls are
settled by what was generated (never silently released), each hold closes exactly once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from director_llm.budget import BudgetLimits, MemoryLedger, Reservation
from director_llm.budget.guard import BudgetGuard
from director_llm.config.loading import parse_config_text
from director_llm.errors import AttemptOverBudgetError
from director_llm.providers import build_deployments

PRICE = (2.5e-6, 10e-6)
NAME = "openai/gpt-4o"


class SlowLedger(MemoryLedger):
    """A ledger whose settlements take a while (a busy network)."""

    def __init__(self, delays: list[float]) -> None:
        super().__init__(limits=BudgetLimits(per_hour=1.0))
        self.delays = delays

    async def settle(self, reservation: Reservation, **kw: Any) -> None:
        await asyncio.sleep(self.delays.pop(0) if self.delays else 0.0)
        await super().settle(reservation, **kw)


def deployment() -> Any:
    cfg = parse_config_text(f"""
[providers.openai]
models = ["gpt-4o"]
api_key_env = "UNUSED_KEY"
[providers.openai.overrides.gpt-4o]
input_price_per_million = {PRICE[0] * 1e6}
output_price_per_million = {PRICE[1] * 1e6}
""")
    return {d.name: d for d in build_deployments(cfg)}[NAME]


async def spent(ledger: MemoryLedger) -> tuple[float, float, int]:
    report = await ledger.snapshot()
    return report.windows["hour"].spent_usd, report.windows["hour"].reserved_usd, report.total.requests


async def test_reserve_holds_the_worst_case_and_settle_books_the_usage() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    guard = BudgetGuard(ledger, default_max_tokens=100)
    info = deployment()
    hold = await guard.reserve(info, prompt_tokens=200, max_tokens=100)
    assert hold.amount_usd == pytest.approx(200 * PRICE[0] + 100 * PRICE[1])
    assert (await spent(ledger))[1] == pytest.approx(hold.amount_usd)
    cost = guard.settle(hold, 150, 20)
    assert cost == pytest.approx(150 * PRICE[0] + 20 * PRICE[1])
    assert guard.settle(hold, 999, 999) == 0.0  # closed: a second settle books nothing
    await guard.drain(timeout=5.0)
    assert await spent(ledger) == (pytest.approx(cost), 0.0, 1)


async def test_a_refused_reservation_is_attempt_over_budget() -> None:
    guard = BudgetGuard(MemoryLedger(limits=BudgetLimits(per_hour=0.0001)), default_max_tokens=100)
    with pytest.raises(AttemptOverBudgetError) as info:
        await guard.reserve(deployment(), prompt_tokens=1000, max_tokens=1000)
    assert info.value.window == "hour" and guard.open_holds == 0


async def test_drain_waits_for_a_settlement_still_in_flight() -> None:
    # The root cause of lost settlements: the first settle is slow, the second quick; drain()
    # must wait for both, not return once no hold is open.
    ledger = SlowLedger([0.3, 0.0])
    guard = BudgetGuard(ledger, default_max_tokens=100)
    info = deployment()
    a = await guard.reserve(info, prompt_tokens=100, max_tokens=50)
    b = await guard.reserve(info, prompt_tokens=100, max_tokens=50)
    guard.settle(a, 100, 50)
    await asyncio.sleep(0.01)
    guard.settle(b, 100, 50)
    assert guard.open_holds == 0 and guard.settling >= 1
    await guard.drain(timeout=2.0)
    assert guard.settling == 0
    assert await spent(ledger) == (pytest.approx(2 * (100 * PRICE[0] + 50 * PRICE[1])), 0.0, 2)


async def test_a_cancelled_caller_does_not_cut_a_settlement() -> None:
    ledger = SlowLedger([0.2])
    guard = BudgetGuard(ledger, default_max_tokens=100)
    hold = await guard.reserve(deployment(), prompt_tokens=10, max_tokens=10)

    async def caller() -> None:
        guard.settle(hold, 10, 5)
        await asyncio.sleep(10)

    task = asyncio.create_task(caller())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await guard.drain(timeout=2.0)
    assert (await spent(ledger))[2] == 1


async def test_abandon_settles_delivered_text_within_the_reservation() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    guard = BudgetGuard(ledger, default_max_tokens=100)
    hold = await guard.reserve(deployment(), prompt_tokens=50, max_tokens=100)
    cost = guard.abandon(hold, prompt_tokens=0, completion_tokens=0, delivered_text="alpha beta gamma delta")
    assert guard.open_holds == 0
    guard.release(hold)  # late: the hold is closed once
    await guard.drain(timeout=5.0)
    booked, reserved, requests = await spent(ledger)
    assert reserved == 0 and requests == 1 and booked == pytest.approx(cost)
    assert 0 < cost <= hold.amount_usd
    assert cost >= 50 * PRICE[0] + 4 * PRICE[1]  # the prompt and at least a token per word


async def test_abandon_prefers_reported_usage_and_caps_at_the_reservation() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    guard = BudgetGuard(ledger, default_max_tokens=100)
    info = deployment()
    a = await guard.reserve(info, prompt_tokens=30, max_tokens=100)
    b = await guard.reserve(info, prompt_tokens=30, max_tokens=5)
    guard.abandon(a, prompt_tokens=30, completion_tokens=7, delivered_text="ignored")
    guard.abandon(b, prompt_tokens=0, completion_tokens=0, delivered_text=" ".join(["word"] * 500))
    await guard.drain(timeout=5.0)
    report = await ledger.snapshot(by="model")
    usage = report.usage["openai:gpt-4o"]
    assert usage.requests == 2 and usage.completion_tokens == 7 + 5
    assert report.windows["hour"].spent_usd <= a.amount_usd + b.amount_usd


async def test_abandon_without_text_books_the_prompt() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    guard = BudgetGuard(ledger, default_max_tokens=100)
    hold = await guard.reserve(deployment(), prompt_tokens=40, max_tokens=10)
    assert guard.abandon(hold, prompt_tokens=0, completion_tokens=0, delivered_text="") == pytest.approx(40 * PRICE[0])
    await guard.drain(timeout=5.0)
    booked, reserved, requests = await spent(ledger)
    assert reserved == 0 and requests == 1 and booked == pytest.approx(40 * PRICE[0])


async def test_release_gives_the_hold_back_and_unlimited_budgets_reserve_nothing() -> None:
    ledger = MemoryLedger(limits=BudgetLimits(per_hour=1.0))
    guard = BudgetGuard(ledger, default_max_tokens=100)
    hold = await guard.reserve(deployment(), prompt_tokens=40, max_tokens=10)
    guard.release(hold)
    await guard.drain(timeout=5.0)
    assert await spent(ledger) == (0.0, 0.0, 0)
    free = BudgetGuard(MemoryLedger(limits=BudgetLimits()), default_max_tokens=100)
    hold = await free.reserve(deployment(), prompt_tokens=40, max_tokens=10)
    assert hold.reservation is None and hold.amount_usd == 0
    free.settle(hold, 40, 10)  # the spend is still booked for reports
    await free.drain(timeout=5.0)
    assert (await free.ledger.snapshot()).total.cost_usd == pytest.approx(40 * PRICE[0] + 10 * PRICE[1])


async def test_drain_returns_at_once_when_idle() -> None:
    guard = BudgetGuard(MemoryLedger(limits=BudgetLimits(per_hour=1.0)), default_max_tokens=100)
    started = time.perf_counter()
    await guard.drain(timeout=5.0)
    assert time.perf_counter() - started < 0.5
