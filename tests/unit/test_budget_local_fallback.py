"""LocalFallbackLedger without sockets: a MemoryLedger that can be switched "unreachable"
stands for Redis (the real outage runs are in tests/integration/test_budget_outage.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from director_llm.budget import BudgetLimits, MemoryLedger
from director_llm.budget.outage import LocalFallbackLedger
from director_llm.errors import BudgetBackendError, BudgetExceededError

T0 = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)


class Flaky(MemoryLedger):
    """A store that fails every operation while ``down``."""

    def __init__(self, **limits: Any) -> None:
        super().__init__(limits=BudgetLimits(**limits), clock=lambda: T0)
        self.down = False

    async def _hold(self, *a: Any) -> Any:
        self._check()
        return await super()._hold(*a)

    async def _book(self, *a: Any) -> Any:
        self._check()
        return await super()._book(*a)

    async def _read_windows(self, *a: Any) -> Any:
        self._check()
        return await super()._read_windows(*a)

    def _check(self) -> None:
        if self.down:
            raise BudgetBackendError("budget store unavailable (ConnectionError: refused)")


async def test_outage_spends_a_share_of_the_last_known_remaining_then_writes_it_back() -> None:
    store = Flaky(per_hour=1.0)
    led = LocalFallbackLedger(store, expected_processes=4, retry_after_s=0.0)
    res = await led.reserve(amount_usd=0.2, provider="openai", model="m")
    await led.settle(res, actual_usd=0.2, prompt_tokens=1, completion_tokens=1)
    assert await led.remaining() == pytest.approx({"hour": 0.8})  # remembered
    store.down = True
    # Allowance: 0.8 / 4 = 0.2 for this process.
    a = await led.reserve(amount_usd=0.15, provider="openai", model="m")
    with pytest.raises(BudgetExceededError, match="unreachable"):
        await led.reserve(amount_usd=0.1, provider="openai", model="m")
    await led.settle(a, actual_usd=0.05, prompt_tokens=3, completion_tokens=4)
    b = await led.reserve(amount_usd=0.1, provider="openai", model="m")  # 0.05 + 0.1 <= 0.2
    await led.release(b)
    assert led.outages == 1 and led.local_reservations == 2 and led.pending == 2
    assert (await led.remaining())["hour"] == pytest.approx(0.15)
    store.down = False
    assert await led.reconcile() == 2
    report = await store.snapshot()
    assert report.windows["hour"].spent_usd == pytest.approx(0.25)
    assert report.windows["hour"].reserved_usd == 0
    assert report.total.requests == 2  # the release books no request
    assert report.total.completion_tokens == 5


async def test_never_reached_store_allows_a_share_of_the_limit_and_aclose_writes_back() -> None:
    store = Flaky(per_hour=0.4)
    store.down = True
    led = LocalFallbackLedger(store, expected_processes=4, retry_after_s=0.0)
    res = await led.reserve(amount_usd=0.1, provider="openai", model="m")  # 0.4 / 4
    with pytest.raises(BudgetExceededError):
        await led.reserve(amount_usd=0.01, provider="openai", model="m")
    await led.settle(res, actual_usd=0.1, prompt_tokens=1, completion_tokens=1)
    store.down = False
    await led.aclose()
    assert led.pending == 0
    assert (await store.snapshot()).windows["hour"].spent_usd == pytest.approx(0.1)


async def test_a_settle_that_fails_is_written_back_once() -> None:
    store = Flaky(per_hour=1.0)
    led = LocalFallbackLedger(store, expected_processes=2, retry_after_s=0.0)
    res = await led.reserve(amount_usd=0.3, provider="openai", model="m")
    store.down = True
    await led.settle(res, actual_usd=0.2, prompt_tokens=1, completion_tokens=1)
    assert res.state == "settled" and led.pending == 1
    store.down = False
    await led.reconcile()
    await led.reconcile()
    report = await store.snapshot()
    assert report.windows["hour"].spent_usd == pytest.approx(0.2)
    assert report.windows["hour"].reserved_usd == 0  # the write-back dropped Redis's hold
