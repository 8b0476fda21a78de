"""Circuit breaker state machine, in memory (no sockets)."""

from __future__ import annotations

import asyncio

from director_llm.breaker import (
    BreakerPolicy,
    BreakerSnapshot,
    CircuitBreaker,
    after_failure,
    failure_kind,
    retry_after_of,
)


class _Err(Exception):
    def __init__(self, status: int | None = None, headers: dict | None = None) -> None:
        super().__init__(f"status {status}")
        self.status_code = status
        if headers is not None:
            self.response = type("R", (), {"headers": headers})()


def _dep(name: str) -> dict:
    return {"model_info": {"director_deployment": name}}


async def test_opens_after_threshold_and_filter_skips() -> None:
    b = CircuitBreaker(failure_threshold=3, cooldown_seconds=30)
    for _ in range(2):
        await b.record_failure("a", _Err(500))
    assert b.state("a") == "closed"
    assert await b.filter("g", [_dep("a"), _dep("b")], {}) == [_dep("a"), _dep("b")]
    await b.record_failure("a", ConnectionError("refused"))
    assert b.state("a") == "open"
    assert await b.filter("g", [_dep("a"), _dep("b")], {}) == [_dep("b")]
    assert await b.filter("g", [_dep("a")], {}) == []


async def test_success_resets_the_count() -> None:
    b = CircuitBreaker(failure_threshold=2)
    await b.record_failure("a", _Err(503))
    await b.record_success("a")
    await b.record_failure("a", _Err(503))
    assert b.state("a") == "closed"


async def test_half_open_lets_exactly_one_trial_through() -> None:
    b = CircuitBreaker(failure_threshold=1, cooldown_seconds=0.05)
    await b.record_failure("a", _Err(500))
    assert not await b.allow("a")
    await asyncio.sleep(0.07)
    assert b.state("a") == "half_open"
    results = [await b.allow("a") for _ in range(5)]
    assert results == [True, False, False, False, False]
    await b.record_success("a")
    assert b.state("a") == "closed" and await b.allow("a")


async def test_failed_trial_reopens_with_doubled_cooldown() -> None:
    b = CircuitBreaker(failure_threshold=1, cooldown_seconds=0.05, max_cooldown_seconds=1)
    await b.record_failure("a", _Err(500))
    await asyncio.sleep(0.07)
    assert await b.allow("a")
    await b.record_failure("a", _Err(500))
    s = b.snapshot_of("a")
    assert s.opens == 2 and b.state("a") == "open"
    assert b.describe("a")["retry_in_s"] > 0.07  # 0.1 s, not 0.05


def test_failure_while_open_restarts_cooldown() -> None:
    p = BreakerPolicy(1, 10.0, 100.0)
    s = after_failure(BreakerSnapshot(), 1000.0, p, False)
    assert s.open_until == 1010.0
    s2 = after_failure(s, 1005.0, p, False)
    assert s2.opens == 1 and s2.open_until == 1015.0


def test_cooldown_is_capped() -> None:
    p = BreakerPolicy(1, 10.0, 25.0)
    assert [p.cooldown(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 25.0, 25.0]


def test_failure_kinds() -> None:
    assert failure_kind(_Err(500)) == "trip"
    assert failure_kind(_Err(429)) == "trip"
    assert failure_kind(ConnectionError()) == "trip"
    assert failure_kind(_Err(401)) == "trip_now"
    assert failure_kind(_Err(403)) == "trip_now"
    assert failure_kind(_Err(400)) == "ignore"


async def test_401_opens_at_once_and_400_is_ignored() -> None:
    b = CircuitBreaker(failure_threshold=5)
    for _ in range(10):
        await b.record_failure("ctx", _Err(400))
    assert b.state("ctx") == "closed" and b.snapshot_of("ctx").failures == 0
    await b.record_failure("key", _Err(401))
    assert b.state("key") == "open"


async def test_retry_after_holds_the_deployment() -> None:
    assert retry_after_of(_Err(429, {"retry-after": "2"})) == 2.0
    assert retry_after_of(_Err(429, {})) is None
    b = CircuitBreaker(failure_threshold=5, cooldown_seconds=30)
    await b.record_failure("a", _Err(429, {"retry-after": "0.05"}))
    assert b.state("a") == "open"
    await asyncio.sleep(0.07)
    assert b.state("a") == "half_open"


# -- the failing state: one attempt at a time (``admit``) -------------------------------------


async def test_a_failing_deployment_admits_one_attempt_at_a_time() -> None:
    b = CircuitBreaker(failure_threshold=3)
    assert (await b.admit("a")).verdict == "go"
    await b.record_failure("a", _Err(503))
    first = await b.admit("a")
    assert first.verdict == "probe" and first.token
    assert [(await b.admit("a")).verdict for _ in range(3)] == ["busy"] * 3
    await b.release("a", first.token)
    second = await b.admit("a")
    assert second.verdict == "probe" and second.token != first.token
    await b.record_success("a")  # one success closes it: no claim needed any more
    assert [(await b.admit("a")).verdict for _ in range(3)] == ["go"] * 3


async def test_a_probe_failure_gives_the_claim_back_with_the_count() -> None:
    b = CircuitBreaker(failure_threshold=3)
    await b.record_failure("a", _Err(500))
    probe = await b.admit("a")
    await b.record_failure("a", _Err(500), token=probe.token)
    assert b.snapshot_of("a").failures == 2
    nxt = await b.admit("a")
    assert nxt.verdict == "probe"
    await b.record_failure("a", _Err(500), token=nxt.token)  # the third: open
    assert (await b.admit("a")).verdict == "open"


async def test_a_straggler_failure_does_not_free_someone_elses_claim() -> None:
    b = CircuitBreaker(failure_threshold=5)
    await b.record_failure("a", _Err(500))
    probe = await b.admit("a")
    await b.record_failure("a", _Err(500))  # an attempt admitted before the first failure
    assert (await b.admit("a")).verdict == "busy"
    await b.release("a", "not-the-token")
    assert (await b.admit("a")).verdict == "busy"
    await b.release("a", probe.token or "")
    assert (await b.admit("a")).verdict == "probe"


async def test_an_ignored_error_gives_the_claim_back_without_counting() -> None:
    b = CircuitBreaker(failure_threshold=3)
    await b.record_failure("a", _Err(500))
    probe = await b.admit("a")
    await b.record_failure("a", _Err(400), token=probe.token)  # the request's fault
    assert b.snapshot_of("a").failures == 1
    assert (await b.admit("a")).verdict == "probe"


async def test_the_half_open_trial_is_a_probe_too() -> None:
    b = CircuitBreaker(failure_threshold=1, cooldown_seconds=0.05)
    await b.record_failure("a", _Err(500))
    assert (await b.admit("a")).verdict == "open"
    await asyncio.sleep(0.07)
    trial = await b.admit("a")
    assert trial.verdict == "probe"
    assert (await b.admit("a")).verdict == "open"  # half-open and claimed: skip, don't queue
