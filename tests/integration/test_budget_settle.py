"""Settlements are never lost and holds never leak.

* Ledger level, against a real Redis: a reply lost after Redis ran the script (a TCP proxy
  drops it), a request lost before Redis saw it, a connection killed with ``CLIENT KILL``
  between reserve and settle, and a ledger used from two event loops. Each settlement must
  be booked exactly once.
* Director level: the original bug (``Director.aclose()`` closed the ledger while
  settlements were still on the wire: "Connection closed by server" and lost spend), streams
  broken off or abandoned at the first-token timeout (their holds are settled, not leaked),
  and budget refusals not counted as deployment failures.
"""

from __future__ import annotations

import asyncio
import hashlib
import textwrap
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from director_llm import budget_lua
from director_llm.budget import BudgetLimits, RedisLedger
from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import BudgetExceededError
from director_llm.streaming import StreamEnd, TextDelta
from director_llm.testing import Reply
from director_llm.tokens import prompt_tokens

KEY_ENV = "TEST_SETTLE_KEY"
GPT4O = (2.5e-6, 10e-6)  # USD per input / output token
USAGE = (100, 50)
COST = USAGE[0] * GPT4O[0] + USAGE[1] * GPT4O[1]
ASK = [{"role": "user", "content": "Explain step by step why TCP and UDP differ, and compare them?"}]


# --------------------------------------------------------------------------- a faulty link


class FlakyLink:
    """A TCP proxy in front of Redis that can lose the next EVALSHA's request (the
    connection dies before Redis sees it) or its reply (Redis ran the script, the client
    never hears back). Either way the client sees its connection closed."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.lose_request = 0
        self.lose_reply = 0
        self.slow_settle_s = 0.0  # hold the next SETTLE back this long before Redis gets it
        self.evalshas = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        drop_next_reply = asyncio.Event()
        settle_sha = hashlib.sha1(budget_lua.SETTLE.encode()).hexdigest().encode()

        def cut() -> None:
            cw.close()
            sw.close()

        async def up() -> None:
            while data := await cr.read(65536):
                if b"EVALSHA" in data.upper():
                    self.evalshas += 1
                    if self.lose_request:
                        self.lose_request -= 1
                        cut()
                        return
                    if self.lose_reply:
                        self.lose_reply -= 1
                        drop_next_reply.set()
                    if self.slow_settle_s and settle_sha in data:
                        delay, self.slow_settle_s = self.slow_settle_s, 0.0
                        try:
                            more = await asyncio.wait_for(cr.read(65536), delay)
                        except TimeoutError:
                            more = None
                        if more == b"":  # the client hung up meanwhile: the request is lost
                            cut()
                            return
                        data += more or b""
                sw.write(data)
                await sw.drain()
            sw.close()

        async def down() -> None:
            while data := await sr.read(65536):
                if drop_next_reply.is_set():
                    cut()  # Redis has run the script; its answer goes nowhere
                    return
                cw.write(data)
                await cw.drain()
            cw.close()

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)


@pytest.fixture
async def link(redis_url: str) -> AsyncIterator[FlakyLink]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = FlakyLink(port)
    proxy.url = await proxy.start()  # type: ignore[attr-defined]
    yield proxy
    await proxy.close()


async def _ledger_through(link: FlakyLink, prefix: str, **limits: float) -> RedisLedger:
    led = RedisLedger(link.url, prefix=prefix, limits=BudgetLimits(**limits))  # type: ignore[attr-defined]
    # Load every script first, so a lost EVALSHA below is the script itself, not NOSCRIPT.
    warm = await led.reserve(amount_usd=0.001, provider="p", model="m")
    await led.release(warm)
    await led.can_afford(0.001, "p")
    return led


async def test_settle_whose_reply_was_lost_is_retried_and_booked_once(link: FlakyLink, redis_prefix: str) -> None:
    led = await _ledger_through(link, redis_prefix, per_hour=1.0)
    try:
        res = await led.reserve(amount_usd=0.3, provider="p", model="m")
        link.lose_reply = 1
        sent = link.evalshas
        await led.settle(res, actual_usd=0.25, prompt_tokens=100, completion_tokens=20)
        assert link.evalshas - sent == 2 and led.retries == 1  # the first run's answer was lost
        report = await led.snapshot(by="provider")
        hour = report.windows["hour"]
        assert hour.spent_usd == pytest.approx(0.25) and hour.reserved_usd == 0
        assert report.usage["p"].requests == 1 and report.usage["p"].prompt_tokens == 100
    finally:
        await led.aclose()


async def test_settle_whose_request_was_lost_is_retried_and_booked_once(link: FlakyLink, redis_prefix: str) -> None:
    led = await _ledger_through(link, redis_prefix, per_hour=1.0)
    try:
        res = await led.reserve(amount_usd=0.3, provider="p", model="m")
        link.lose_request = 1
        await led.settle(res, actual_usd=0.25, prompt_tokens=100, completion_tokens=20)
        assert led.retries == 1
        hour = (await led.snapshot()).windows["hour"]
        assert hour.spent_usd == pytest.approx(0.25) and hour.reserved_usd == 0
    finally:
        await led.aclose()


async def test_release_and_reserve_with_lost_replies_hold_once(link: FlakyLink, redis_prefix: str) -> None:
    led = await _ledger_through(link, redis_prefix, per_hour=1.0)
    try:
        link.lose_reply = 1
        res = await led.reserve(amount_usd=0.4, provider="p", model="m")  # granted twice = one hold
        assert (await led.snapshot()).windows["hour"].reserved_usd == pytest.approx(0.4)
        link.lose_reply = 1
        await led.release(res)
        hour = (await led.snapshot()).windows["hour"]
        assert hour.reserved_usd == 0 and hour.spent_usd == 0
        assert led.retries == 2
    finally:
        await led.aclose()


async def test_settling_the_same_reservation_twice_in_redis_books_it_once(redis_url: str, redis_prefix: str) -> None:
    # What a retry after a lost reply does, at the script level: the second run is a no-op.
    async with RedisLedger(redis_url, prefix=redis_prefix, limits=BudgetLimits(per_hour=1.0)) as led:
        res = await led.reserve(amount_usd=0.3, provider="p", model="m")
        await led.settle(res, actual_usd=0.2, prompt_tokens=5, completion_tokens=5)
        res.state = "open"  # pretend this process never heard back
        await led.settle(res, actual_usd=0.2, prompt_tokens=5, completion_tokens=5)
        res.state = "open"
        await led.release(res)  # a release of a settled id changes nothing either
        report = await led.snapshot()
        assert report.windows["hour"].spent_usd == pytest.approx(0.2)
        assert report.total.requests == 1
        assert await led._redis.hget(led.done_key(res.hour), res.id) == "s1"
        assert 0 < await led._redis.pttl(led.done_key(res.hour)) <= 3 * 3600 * 1000


async def test_settle_after_client_kill_lands_exactly_once(redis_url: str, redis_prefix: str) -> None:
    async with RedisLedger(redis_url, prefix=redis_prefix, limits=BudgetLimits(per_hour=1.0)) as led:
        res = await led.reserve(amount_usd=0.3, provider="p", model="m")
        client_id = await led._redis.client_id()  # the pooled connection the settle will reuse
        admin = redis.Redis.from_url(redis_url)
        try:
            assert admin.client_kill_filter(_id=str(client_id)) == 1
        finally:
            admin.close()
        await led.settle(res, actual_usd=0.125, prompt_tokens=10, completion_tokens=10)
        report = await led.snapshot()
        assert report.windows["hour"].spent_usd == pytest.approx(0.125)
        assert report.windows["hour"].reserved_usd == 0 and report.total.requests == 1


def test_one_ledger_used_from_two_event_loops(redis_url: str, redis_prefix: str) -> None:
    # LiteLLM may run a settlement callback on a later loop than the one that reserved.
    led = RedisLedger(redis_url, prefix=redis_prefix, limits=BudgetLimits(per_hour=1.0))
    res = asyncio.run(led.reserve(amount_usd=0.3, provider="p", model="m"))
    asyncio.run(led.settle(res, actual_usd=0.1, prompt_tokens=1, completion_tokens=1))

    async def check() -> float:
        try:
            return (await led.snapshot()).windows["hour"].spent_usd
        finally:
            await led.aclose()

    assert asyncio.run(check()) == pytest.approx(0.1)


# --------------------------------------------------------------------------- in the Director


def config_text(
    base: str, redis_url: str, *, per_hour: float = 5.0, first_token: float = 4.0, mini_strong: bool = False
) -> str:
    text = f"""
        [llm]
        num_retries = 0
        default_max_tokens = 200
        default_strategy = "quality"
        attempt_timeout_seconds = 5
        first_token_timeout_seconds = {first_token}
        timeout_seconds = 8
        budget_per_hour = {per_hour}
        state_redis_url = "{redis_url}"
        [providers.openai]
        models = ["gpt-4o"{', "gpt-4o-mini"' if mini_strong else ""}]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [providers.openai.overrides.gpt-4o]
        tier = "strong"
        input_price_per_million = {GPT4O[0] * 1e6}
        output_price_per_million = {GPT4O[1] * 1e6}
    """
    if mini_strong:
        text += f"""
        [providers.openai.overrides.gpt-4o-mini]
        tier = "strong"
        input_price_per_million = {GPT4O[0] * 1e6}
        output_price_per_million = {GPT4O[1] * 1e6}
        """
    return textwrap.dedent(text)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-settle-0123456789")


async def _spent(redis_url: str, prefix: str) -> tuple[float, float, int]:
    async with RedisLedger(redis_url, prefix=prefix, limits=BudgetLimits()) as led:
        report = await led.snapshot()
    hour = report.windows["hour"]
    return hour.spent_usd, hour.reserved_usd, report.total.requests


async def test_aclose_waits_for_a_slow_settlement(fake_provider, link: FlakyLink, redis_prefix: str) -> None:
    # The original bug, made deterministic: the first call's settlement is slow on the wire,
    # the second call's is quick. drain() used to return as soon as the second one finished
    # (no hold left in the table) and aclose() closed the Redis pool under the first one:
    # "Connection closed by server", its spend never booked and its hold left to the TTL.
    fake_provider.set_default(Reply(text="fine", usage=USAGE))
    cfg = parse_config_text(config_text(fake_provider.base_url, link.url))  # type: ignore[attr-defined]
    d = Director(cfg, state_prefix=redis_prefix)
    await d.acompletion(ASK)  # warm: scripts loaded, so the next SETTLE on the wire is the one slowed
    await d.budget.drain()
    link.slow_settle_s = 0.4
    await d.acompletion(ASK)
    await d.acompletion(ASK)
    started = time.perf_counter()
    await d.aclose()
    assert time.perf_counter() - started < 2.0
    spent, reserved, requests = await _spent(link.url, redis_prefix)  # type: ignore[attr-defined]
    assert (spent, reserved, requests) == (pytest.approx(3 * COST), 0.0, 3)


async def test_aclose_right_after_calls_books_every_settlement(fake_provider, redis_url: str) -> None:
    # The same race at full speed, as test_cli_costs hit it (sequential, then concurrent calls).
    fake_provider.set_default(Reply(text="fine", usage=USAGE))
    cfg = parse_config_text(config_text(fake_provider.base_url, redis_url))
    for round_ in range(6):
        prefix = f"director-test-settle-{uuid.uuid4().hex[:10]}:"
        d = Director(cfg, state_prefix=prefix)
        if round_ % 2:
            await asyncio.gather(*(d.acompletion(ASK) for _ in range(3)))
        else:
            for _ in range(3):
                await d.acompletion(ASK)
        await d.aclose()
        try:
            spent, reserved, requests = await _spent(redis_url, prefix)
            assert (spent, reserved, requests) == (pytest.approx(3 * COST), 0.0, 3), f"round {round_}"
        finally:
            r = redis.Redis.from_url(redis_url)
            keys = list(r.scan_iter(match=f"{prefix}*"))
            if keys:
                r.delete(*keys)
            r.close()


async def test_stream_broken_off_books_its_cost_and_leaves_no_hold(
    fake_provider, redis_url: str, redis_prefix: str
) -> None:
    words = " ".join(f"w{i}" for i in range(150))
    fake_provider.script("gpt-4o", Reply(words, usage=(100, 150), token_delay=0.01))
    d = Director(parse_config_text(config_text(fake_provider.base_url, redis_url)), state_prefix=redis_prefix)
    got: list[str] = []
    async with d.stream_response(ASK, tier="strong") as stream:
        async for chunk in stream:
            assert isinstance(chunk, TextDelta)
            got.append(chunk.text)
            if len(got) == 1:
                worst = (await d.spend()).windows["hour"].reserved_usd  # the open hold
            if len(got) == 5:
                break
    assert d.budget.open_holds == 0  # settled as the stream closed, not left to the TTL
    started = time.perf_counter()
    await d.aclose()
    closing = time.perf_counter() - started
    assert closing < 1.0, closing
    spent, reserved, requests = await _spent(redis_url, redis_prefix)
    assert reserved == 0 and requests == 1
    # The prompt (as counted for the reservation) plus the five delivered chunks, estimated
    # at one or two tokens each; never more than the reservation.
    prompt = prompt_tokens("openai/gpt-4o", ASK)
    assert prompt * GPT4O[0] + 5 * GPT4O[1] <= spent + 1e-12
    assert spent <= prompt * GPT4O[0] + 10 * GPT4O[1] + 1e-12
    assert spent < worst


async def test_stream_task_cancelled_mid_answer_settles_its_hold(
    fake_provider, redis_url: str, redis_prefix: str
) -> None:
    fake_provider.script("gpt-4o", Reply(" ".join(["w"] * 200), token_delay=0.02))
    d = Director(parse_config_text(config_text(fake_provider.base_url, redis_url)), state_prefix=redis_prefix)
    seen = asyncio.Event()

    async def consume() -> None:
        async for chunk in d.stream_response(ASK, tier="strong"):
            if isinstance(chunk, TextDelta):
                seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(seen.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.perf_counter()
    await d.aclose()
    assert time.perf_counter() - started < 1.0
    assert d.budget.open_holds == 0
    spent, reserved, _ = await _spent(redis_url, redis_prefix)
    assert spent > 0 and reserved == 0


async def test_first_token_timeout_settles_the_abandoned_attempt(
    fake_provider, redis_url: str, redis_prefix: str
) -> None:
    fake_provider.script("gpt-4o", Reply("late answer", usage=USAGE, first_token_delay=3.0))
    fake_provider.script("gpt-4o-mini", Reply("quick answer", usage=USAGE))
    cfg = parse_config_text(config_text(fake_provider.base_url, redis_url, first_token=0.5, mini_strong=True))
    d = Director(cfg, state_prefix=redis_prefix)
    # strategy "cost": equal prices keep the config's order, so gpt-4o is asked first.
    chunks = [c async for c in d.stream_response(ASK, tier="strong", strategy="cost")]
    end = chunks[-1]
    assert isinstance(end, StreamEnd) and end.route.deployment == "openai/gpt-4o-mini"
    assert [a.outcome for a in end.route.attempts] == ["FirstTokenTimeout", "ok"]
    started = time.perf_counter()
    await d.aclose()
    assert time.perf_counter() - started < 1.0  # no "reservations still open after 5.0s"
    assert d.budget.open_holds == 0
    spent, reserved, requests = await _spent(redis_url, redis_prefix)
    # The answer, plus the prompt the abandoned deployment read (it may bill it), no output.
    assert reserved == 0 and requests == 2
    assert COST < spent < COST + 200 * GPT4O[0]


async def test_budget_refusal_is_not_a_deployment_failure(fake_provider, redis_url: str, redis_prefix: str) -> None:
    # Room for one worst case but not two: four calls at once all plan on the same fresh read
    # (nothing is held yet), then the reservations race and the losers are refused. A refusal
    # is the budget's decision, not a failure of the deployment: no breaker, no failure count.
    fake_provider.set_default(Reply(text="fine", usage=USAGE, delay=0.3))
    cfg = parse_config_text(config_text(fake_provider.base_url, redis_url, per_hour=0.0025))
    async with Director(cfg, state_prefix=redis_prefix) as d:
        results = await asyncio.gather(
            *(d.acompletion(ASK, model="openai/gpt-4o") for _ in range(4)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 3 and all(isinstance(r, BudgetExceededError) for r in refused), results
        await d.budget.drain()
        stats = d.metrics.for_deployment("openai/gpt-4o")
        assert stats.failures == 0 and stats.requests == 1, stats
        assert d.breaker.state("openai/gpt-4o") == "closed"
    assert len(fake_provider.requests_for("gpt-4o")) == 1
