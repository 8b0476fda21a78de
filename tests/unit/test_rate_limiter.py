"""The rate limiter's arithmetic, in memory with a fake clock (the Redis script mirrors it:
tests/integration/test_rate_limits.py runs the same cases against a real Redis)."""

from __future__ import annotations

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.errors import ProviderError, RateLimitedError
from director_llm.providers import build_deployments
from director_llm.resilience.rate_limits import GLOBAL, LimitReached, Limits, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(deployments: dict[str, Limits], global_limits: Limits | None = None) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(deployments, global_limits, clock=clock), clock


async def test_rpm_is_a_sliding_window_and_says_when_it_frees() -> None:
    lim, clock = limiter({"p/a": Limits(rpm=2)})
    await lim.acquire("p/a")
    clock.now += 10
    await lim.acquire("p/a")
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/a")
    assert (hit.value.scope, hit.value.limit, hit.value.value) == ("p/a", "rpm", 2)
    assert hit.value.retry_after == pytest.approx(50.0)  # the first call leaves the window at 60 s
    assert "rpm limit of p/a (2 requests per minute) reached; frees up in 50.0s" in str(hit.value)
    clock.now += 49.9
    with pytest.raises(LimitReached):
        await lim.acquire("p/a")
    clock.now += 0.2
    await lim.acquire("p/a")  # the first left; the second is still in
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/a")
    assert hit.value.retry_after == pytest.approx(9.9)


async def test_a_refused_call_leaves_no_trace() -> None:
    lim, _ = limiter({"p/a": Limits(rpm=1), "p/b": Limits()}, Limits(rpm=3))
    await lim.acquire("p/a")
    for _ in range(20):
        with pytest.raises(LimitReached):
            await lim.acquire("p/a")  # refused by p/a's own limit: not counted globally
    await lim.acquire("p/b")
    await lim.acquire("p/b")
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/b")
    assert hit.value.scope == GLOBAL


async def test_tpm_counts_prompt_tokens_then_the_usage() -> None:
    lim, clock = limiter({"p/a": Limits(tpm=1000)})
    assert lim.counts_tokens("p/a")
    first = await lim.acquire("p/a", tokens=400)
    await lim.acquire("p/a", tokens=400)
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/a", tokens=300)
    assert hit.value.limit == "tpm" and hit.value.retry_after == pytest.approx(60.0)
    # The first call used fewer tokens than admitted (prompt 100 + completion 50 after all).
    await lim.finish(first, tokens=150)
    await lim.acquire("p/a", tokens=300)
    # ... and a call that used more than admitted counts what it used.
    clock.now += 61
    big = await lim.acquire("p/a", tokens=100)
    await lim.finish(big, tokens=900)
    with pytest.raises(LimitReached):
        await lim.acquire("p/a", tokens=200)


async def test_a_prompt_larger_than_the_tpm_never_fits() -> None:
    lim, _ = limiter({"p/a": Limits(tpm=100)})
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/a", tokens=101)
    assert hit.value.retry_after is None
    assert "larger than the limit" in str(hit.value)


async def test_tpm_frees_when_enough_tokens_left_the_window() -> None:
    lim, clock = limiter({"p/a": Limits(tpm=1000)})
    await lim.acquire("p/a", tokens=300)  # t=0
    clock.now += 5
    await lim.acquire("p/a", tokens=300)  # t=5
    clock.now += 5
    await lim.acquire("p/a", tokens=300)  # t=10
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/a", tokens=500)  # needs 400 more room: the first two must leave
    assert hit.value.retry_after == pytest.approx(55.0)


async def test_max_parallel_requests_are_leases() -> None:
    lim, clock = limiter({"p/a": Limits(max_parallel_requests=2)})
    a = await lim.acquire("p/a", lease_s=30)
    await lim.acquire("p/a", lease_s=30)
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/a", lease_s=30)
    assert hit.value.limit == "max_parallel_requests" and not hit.value.exact
    assert hit.value.retry_after == pytest.approx(30.0)  # an upper bound: the lease
    await lim.finish(a)
    await lim.finish(a)  # twice is harmless
    c = await lim.acquire("p/a", lease_s=30)
    assert c is not None
    with pytest.raises(LimitReached):
        await lim.acquire("p/a", lease_s=30)
    clock.now += 31  # holders that never finished (a killed process): their leases expire
    await lim.acquire("p/a", lease_s=30)


async def test_global_limits_span_deployments_and_are_taken_with_the_deployments() -> None:
    lim, _ = limiter({"p/a": Limits(rpm=2), "p/b": Limits(), "p/c": Limits()}, Limits(rpm=4))
    await lim.acquire("p/a")
    await lim.acquire("p/b")
    await lim.acquire("p/a")
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/a")
    assert hit.value.scope == "p/a"  # its own limit is checked first
    await lim.acquire("p/c")
    with pytest.raises(LimitReached) as hit:
        await lim.acquire("p/b")
    assert hit.value.scope == GLOBAL
    assert "[llm.rate_limits]" in str(hit.value)


async def test_no_limits_no_permit() -> None:
    lim, _ = limiter({"p/a": Limits(), "p/b": Limits(rpm=1)})
    assert lim.enabled and not lim.applies("p/a") and lim.applies("p/b")
    assert await lim.acquire("p/a") is None
    assert await lim.acquire("local/x") is None  # not a limited deployment
    await lim.finish(None)
    empty, _ = limiter({"p/a": Limits()})
    assert not empty.enabled


def test_limits_come_from_the_config() -> None:
    config = parse_config_text(
        """
        [llm.rate_limits]
        rpm = 100
        max_parallel_requests = 8
        max_wait_seconds = 2.5
        [providers.openai]
        models = ["gpt-4o", "gpt-4o-mini"]
        [providers.openai.overrides.gpt-4o]
        rpm = 3
        tpm = 1000
        max_parallel_requests = 2
        """
    )
    assert config.llm.rate_limits.max_wait_seconds == 2.5
    lim = RateLimiter.from_config(config, build_deployments(config))
    assert lim.describe() == {
        "global": {"rpm": 100, "tpm": None, "max_parallel_requests": 8},
        "deployments": {"openai/gpt-4o": {"rpm": 3, "tpm": 1000, "max_parallel_requests": 2}},
        "store": "memory",
    }
    assert lim.applies("openai/gpt-4o-mini")  # the global limits apply to every deployment
    assert lim.counts_tokens("openai/gpt-4o") and not lim.counts_tokens("openai/gpt-4o-mini")


def test_rate_limited_error_is_a_provider_error_naming_the_limit() -> None:
    exc = RateLimitedError("at a limit", limit="rpm", scope="openai/gpt-4o", retry_after=12.5)
    assert isinstance(exc, ProviderError)
    assert (exc.limit, exc.scope, exc.retry_after, exc.exit_code) == ("rpm", "openai/gpt-4o", 12.5, 1)
    import director_llm

    assert director_llm.RateLimitedError is RateLimitedError
