"""Director + tiered cache end to end: real Redis, real disk, the fake provider's request log.

Each test gets its own cache namespace (a unique ``[intents] system_prompt`` changes the
config fingerprint), so tests never see each other's entries; its Redis keys are deleted
afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from director_llm import Director
from director_llm.cache.director import chat_cache_key
from director_llm.cache.tiered import KEY_PREFIX
from director_llm.config.loading import parse_config_text
from director_llm.testing import Reply
from director_llm.testing.pytest_plugin import delete_prefix

KEY_ENV = "TEST_OPENAI_KEY"
MODEL = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "hi"}]


def config_text(
    base: str,
    *,
    token: str,
    redis_url: str | None = None,
    disk: Path | None = None,
    memory_mb: float | None = 4,
    ttl: float = 60,
    extra: str = "",
    llm: str = "",
) -> str:
    caching = [f"ttl_seconds = {ttl}"]
    if memory_mb:
        caching.append(f"memory_size_mb = {memory_mb}")
    if redis_url:
        caching.append(f'redis_url = "{redis_url}"')
    if disk:
        caching.append(f'disk_cache_path = "{disk}"')
    return (
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        attempt_timeout_seconds = 5
        {llm}
        [providers.openai]
        models = ["gpt-4o-mini", "gpt-4o"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [intents]
        system_prompt = "test {token}"
        """)
        + "[caching]\n"
        + "\n".join(caching)
        + "\n"
        + extra
    )


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def make(fake_provider, monkeypatch, token, redis_url) -> Iterator[Callable[..., Director]]:
    """Build Directors for this test (same token: same namespace unless the config differs)."""
    monkeypatch.setenv(KEY_ENV, "sk-test-cache-0123456789")
    made: list[Director] = []

    def build(**kw: Any) -> Director:
        d = Director(parse_config_text(config_text(fake_provider.base_url, token=token, **kw)))
        made.append(d)
        return d

    yield build
    for d in made:
        delete_prefix(redis_url, f"{KEY_PREFIX}{d.cache.namespace}:")


def layer_of(response: Any) -> str | None:
    return response._hidden_params["director_route"]["cache"]


def text_of(response: Any) -> str:
    return response.choices[0].message.content


async def test_deterministic_chat_is_served_by_each_layer_and_promoted(make, fake_provider, redis_url, tmp_path):
    fake_provider.script("gpt-4o-mini", [Reply(text="cached answer")], then=Reply(text="second call"))
    writer = make(redis_url=redis_url, disk=tmp_path / "d")
    first = await writer.acompletion(HI, model=MODEL, temperature=0)
    second = await writer.acompletion(HI, model=MODEL, temperature=0)
    assert (layer_of(first), layer_of(second)) == (None, "memory")
    assert text_of(second) == text_of(first) == "cached answer"
    assert second.usage.total_tokens == first.usage.total_tokens
    await writer.aclose()  # flushes the background writes to Redis and disk

    # A new process' Director (empty memory) finds it in Redis, then in memory.
    reader = make(redis_url=redis_url, disk=tmp_path / "d")
    assert [layer_of(await reader.acompletion(HI, model=MODEL, temperature=0)) for _ in range(2)] == ["redis", "memory"]
    await reader.aclose()
    # Without Redis: disk answers, and the hit is promoted to memory.
    disk_only = make(disk=tmp_path / "d")
    assert [layer_of(await disk_only.acompletion(HI, model=MODEL, temperature=0)) for _ in range(2)] == [
        "disk",
        "memory",
    ]
    stats = disk_only.cache_stats()
    assert (stats.layers["disk"].hits, stats.layers["memory"].hits, stats.layers["memory"].misses) == (1, 1, 1)
    assert stats.hit_rate == 1.0 and stats.memory_bytes > 0
    await disk_only.aclose()
    assert len(fake_provider.requests) == 1


async def test_only_deterministic_or_opted_in_calls_are_cached(make, fake_provider):
    d = make()
    for _ in range(2):
        await d.acompletion(HI, model=MODEL)  # provider's default temperature: not cached
        await d.acompletion(HI, model=MODEL, temperature=0.7)
    assert len(fake_provider.requests) == 4
    opted = [layer_of(await d.acompletion(HI, model=MODEL, temperature=0.7, cache=True)) for _ in range(2)]
    assert opted == [None, "memory"]
    refused = [layer_of(await d.acompletion(HI, model=MODEL, temperature=0, cache=False)) for _ in range(2)]
    assert refused == [None, None]
    assert len(fake_provider.requests) == 7
    await d.aclose()

    off = make(extra="cache_chat = false\n")
    for _ in range(2):
        assert layer_of(await off.acompletion(HI, model=MODEL, temperature=0, cache=True)) is None
    assert len(fake_provider.requests) == 9
    await off.aclose()


async def test_key_covers_what_changes_the_answer_and_nothing_else(make, fake_provider):
    d = make()
    base = await d.acompletion(HI, model=MODEL, temperature=0, max_tokens=20)
    assert layer_of(base) is None
    same = [
        await d.acompletion(HI, model=MODEL, temperature=0, max_tokens=20, metadata={"trace": "x"}),
        await d.acompletion([{"role": "user", "content": "  hi\r\n"}], model=MODEL, temperature=0, max_tokens=20),
        await d.acompletion(HI, model=MODEL, temperature=0, max_tokens=20, user="someone", timeout=9),
    ]
    assert [layer_of(r) for r in same] == ["memory"] * 3
    different = [
        await d.acompletion(HI, model=MODEL, temperature=0, max_tokens=21),
        await d.acompletion(HI, model="openai/gpt-4o", temperature=0, max_tokens=20),
        await d.acompletion([{"role": "user", "content": "Hi"}], model=MODEL, temperature=0, max_tokens=20),
        await d.acompletion(HI, model=MODEL, temperature=0, max_tokens=20, seed=1),
        await d.acompletion(HI, model=MODEL, temperature=0, max_tokens=20, response_format={"type": "json_object"}),
        await d.acompletion(
            [{"role": "system", "content": "be brief"}, *HI], model=MODEL, temperature=0, max_tokens=20
        ),
    ]
    assert [layer_of(r) for r in different] == [None] * 6
    assert len(fake_provider.requests) == 7
    await d.aclose()


async def test_ttl_expires_entries_in_every_layer(make, fake_provider, redis_url, tmp_path):
    d = make(redis_url=redis_url, disk=tmp_path / "d", ttl=1)
    await d.acompletion(HI, model=MODEL, temperature=0)
    assert layer_of(await d.acompletion(HI, model=MODEL, temperature=0)) == "memory"
    await d.cache.tiered().flush()
    await asyncio.sleep(1.1)
    assert layer_of(await d.acompletion(HI, model=MODEL, temperature=0)) is None
    stats = d.cache_stats()
    # The expired lookup reached (and missed) every layer.
    assert (stats.layers["redis"].misses, stats.layers["disk"].misses) == (2, 2)
    assert len(fake_provider.requests) == 2
    await d.aclose()


async def test_config_change_uses_another_namespace(make, fake_provider, redis_url):
    a = make(redis_url=redis_url)
    await a.acompletion(HI, model=MODEL, temperature=0)
    await a.aclose()
    same = make(redis_url=redis_url)
    assert layer_of(await same.acompletion(HI, model=MODEL, temperature=0)) == "redis"
    assert same.cache.namespace == a.cache.namespace
    edited = Director(parse_config_text(config_text(fake_provider.base_url, token="other-prompt", redis_url=redis_url)))
    try:
        assert edited.cache.namespace != a.cache.namespace
        assert layer_of(await edited.acompletion(HI, model=MODEL, temperature=0)) is None
    finally:
        await edited.aclose()
        delete_prefix(redis_url, f"{KEY_PREFIX}{edited.cache.namespace}:")
    # Cache settings do not change answers, so they keep the namespace.
    assert make(redis_url=redis_url, ttl=5, memory_mb=1).cache.namespace == a.cache.namespace
    assert len(fake_provider.requests) == 2
    await same.aclose()


async def test_corrupt_redis_entry_is_a_miss_and_is_replaced(make, fake_provider, redis_url):
    d = make(redis_url=redis_url, memory_mb=None)
    key = chat_cache_key(HI, group=MODEL, params={"temperature": 0})
    full = f"{KEY_PREFIX}{d.cache.namespace}:{key}"
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.set(full, b"\x00not an entry", px=60_000)
        response = await d.acompletion(HI, model=MODEL, temperature=0)
        assert layer_of(response) is None and text_of(response)
        await d.cache.tiered().flush()
        assert (await raw.get(full)).startswith(b"D\x01")  # deleted, then rewritten with the answer
        assert d.cache_stats().layers["redis"].corrupt == 1
        assert layer_of(await d.acompletion(HI, model=MODEL, temperature=0)) == "redis"
        assert len(fake_provider.requests) == 1
    finally:
        await raw.aclose()
        await d.aclose()


async def test_100_concurrent_identical_requests_make_one_upstream_call(make, fake_provider, redis_url, tmp_path):
    fake_provider.script("gpt-4o-mini", [Reply(text="only once", delay=0.3)], then=Reply(text="twice!"))
    d = make(redis_url=redis_url, disk=tmp_path / "d")
    responses = await asyncio.gather(*(d.acompletion(HI, model=MODEL, temperature=0) for _ in range(100)))
    assert len(fake_provider.requests) == 1
    assert {text_of(r) for r in responses} == {"only once"}
    assert len({id(r) for r in responses}) == 100  # each caller has its own object
    stats = d.cache_stats()
    assert (stats.computes, stats.coalesced) == (1, 99)
    await d.aclose()


SUBPROCESS = """
import asyncio, os, sys
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from director_llm import Director
from director_llm.config.loading import parse_config_text

async def main():
    async with Director(parse_config_text(sys.stdin.read())) as d:
        r = await d.acompletion([{"role": "user", "content": "hi"}], model="openai/gpt-4o-mini", temperature=0)
        print(r._hidden_params["director_route"]["cache"], r.choices[0].message.content)

asyncio.run(main())
"""


async def test_two_processes_share_the_redis_layer(make, fake_provider, redis_url, token):
    fake_provider.script("gpt-4o-mini", [Reply(text="from the other process")])
    text = config_text(fake_provider.base_url, token=token, redis_url=redis_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SUBPROCESS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, KEY_ENV: "sk-test-cache-0123456789"},
    )
    out, errout = await asyncio.wait_for(proc.communicate(text.encode()), 60)
    assert proc.returncode == 0, errout.decode()[-2000:]
    assert out.decode().strip() == "None from the other process"
    d = make(redis_url=redis_url)
    response = await d.acompletion(HI, model=MODEL, temperature=0)
    assert (layer_of(response), text_of(response)) == ("redis", "from the other process")
    assert len(fake_provider.requests) == 1
    await d.aclose()


async def test_redis_stopped_mid_run_and_restarted(make, fake_provider, redis_server, redis_url, caplog):
    caplog.set_level(logging.INFO, logger="director_llm.cache")
    # Budget and breaker state stay on the shared Redis: this test is about the cache layer
    # (they would otherwise share the Redis being stopped, and refuse priced calls by design).
    d = make(redis_url=redis_server.url, memory_mb=None, llm=f'state_redis_url = "{redis_url}"')
    d.cache.redis_backoff_s = 0.2

    async def ask(i: int) -> Any:
        return await d.acompletion([{"role": "user", "content": f"q{i % 5}"}], model=MODEL, temperature=0)

    assert [layer_of(await ask(i)) for i in range(10)] == [None] * 5 + ["redis"] * 5
    redis_server.stop()
    started = time.monotonic()
    during = await asyncio.gather(*(ask(i) for i in range(20)))  # a concurrent burst meets the outage
    during += [await ask(i) for i in range(20)]
    assert all(text_of(r) for r in during) and all(layer_of(r) is None for r in during)
    assert time.monotonic() - started < 5  # at most one short timeout, then Redis is skipped
    assert d.cache_stats().redis_state == "down"
    redis_server.start()  # empty: persistence is off
    deadline = time.monotonic() + 5
    while d.cache_stats().redis_state != "up" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert d.cache_stats().redis_state == "up"
    await ask(0)
    await d.cache.tiered().flush()
    assert layer_of(await ask(0)) == "redis"
    # One warning from the cache for the whole outage (the breaker, sharing this Redis, has its own).
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "director_llm.cache"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unreachable" in warnings[0].getMessage()
    await d.aclose()


async def test_cache_off_when_disabled_or_no_layer(make, fake_provider):
    for d in (make(memory_mb=None), make(extra="enabled = false\n")):
        assert not d.cache.enabled
        assert [layer_of(await d.acompletion(HI, model=MODEL, temperature=0)) for _ in range(2)] == [None, None]
        assert d.cache_stats() is None
        await d.aclose()
    assert len(fake_provider.requests) == 4
