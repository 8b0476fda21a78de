"""TieredCache against a real Redis (shared 127.0.0.1:6379, or a private one to break).

Each test uses its own namespace, so its keys are ``director:v1:<namespace>:*`` and are
deleted afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
import redis.asyncio as aioredis

from director_llm.cache import TieredCache
from director_llm.cache.codec import pack
from director_llm.cache.tiered import KEY_PREFIX
from director_llm.errors import ConfigError
from director_llm.testing.pytest_plugin import delete_prefix
from director_llm.testing.redis import RedisServer

LOGGER = "director_llm.cache"


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    delete_prefix(redis_url, f"{KEY_PREFIX}{ns}:")


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def cache(
    namespace: str, *, memory: int | None = None, redis_url: str | None = None, disk: Path | None = None, **kw: Any
) -> TieredCache:
    return TieredCache(
        memory_bytes=memory,
        redis_url=redis_url,
        disk_path=disk,
        ttl_seconds=kw.pop("ttl_seconds", 60),
        namespace=namespace,
        # These tests check what is stored, not how fast: a generous timeout keeps a busy CI
        # machine from looking like a Redis outage. The outage tests pass their own 0.1 s.
        redis_timeout_s=kw.pop("redis_timeout_s", 2.0),
        **kw,
    )


async def test_redis_hit_is_promoted_to_memory(redis_url: str, namespace: str) -> None:
    async with cache(namespace, redis_url=redis_url) as writer:
        await writer.set("k", {"flow": "billing", "confidence": 0.9})
    async with cache(namespace, memory=2**20, redis_url=redis_url) as reader:
        first, second = await reader.get("k"), await reader.get("k")
        assert first is not None and first.layer == "redis"
        assert second is not None and second.layer == "memory"
        assert first.value == second.value == {"flow": "billing", "confidence": 0.9}
        stats = reader.stats()
        assert stats.layers["redis"].hits == 1 and stats.layers["memory"].hits == 1
        assert stats.memory_bytes > 0 and stats.layers["memory"].entries == 1


async def test_disk_hit_is_promoted_to_redis_and_memory(redis_url: str, namespace: str, tmp_path: Path) -> None:
    async with cache(namespace, disk=tmp_path) as writer:
        await writer.set("k", "from disk")
    async with cache(namespace, memory=2**20, redis_url=redis_url, disk=tmp_path) as both:
        assert (await both.get("k")).layer == "disk"  # type: ignore[union-attr]
        assert (await both.get("k")).layer == "memory"  # type: ignore[union-attr]
    async with cache(namespace, redis_url=redis_url) as redis_only:
        hit = await redis_only.get("k")
        assert hit is not None and hit.layer == "redis" and hit.value == "from disk"


async def test_entries_expire_in_every_layer(redis_url: str, namespace: str, tmp_path: Path, raw_redis: Any) -> None:
    writer = cache(namespace, memory=2**20, redis_url=redis_url, disk=tmp_path, ttl_seconds=1)
    await writer.set("k", "short-lived")
    await writer.flush()
    full = f"{KEY_PREFIX}{namespace}:k"
    # The layers' own TTLs are set, not only our envelope's expiry.
    assert 0 < await raw_redis.pttl(full) <= 1000
    raw_disk = diskcache.Cache(str(tmp_path))
    _, expire_time = raw_disk.get(full, expire_time=True)
    assert expire_time is not None and 0 < expire_time - time.time() <= 1.0
    redis_only = cache(namespace, redis_url=redis_url, ttl_seconds=1)
    disk_only = cache(namespace, disk=tmp_path, ttl_seconds=1)
    assert (await writer.get("k")).layer == "memory"  # type: ignore[union-attr]
    assert (await redis_only.get("k")).layer == "redis"  # type: ignore[union-attr]
    assert (await disk_only.get("k")).layer == "disk"  # type: ignore[union-attr]

    await asyncio.sleep(1.1)
    assert await writer.get("k") is None
    assert await redis_only.get("k") is None
    assert await disk_only.get("k") is None
    assert await raw_redis.exists(full) == 0  # Redis dropped it itself
    assert raw_disk.get(full) is None  # and so did diskcache
    raw_disk.close()
    for c in (writer, redis_only, disk_only):
        await c.aclose()


@pytest.mark.parametrize(
    "garbage",
    [b"\x00garbage", pack(b"{not json", time.time() + 3600), pickle.dumps({"a": 1})],
    ids=["no-envelope", "bad-json", "pickle"],
)
async def test_corrupt_redis_entry_is_a_miss_and_removed(
    redis_url: str, namespace: str, raw_redis: Any, garbage: bytes
) -> None:
    full = f"{KEY_PREFIX}{namespace}:k"
    await raw_redis.set(full, garbage)
    async with cache(namespace, memory=2**20, redis_url=redis_url) as c:
        assert await c.get("k") is None
        await c.flush()
        assert await raw_redis.exists(full) == 0
        assert c.stats().layers["redis"].corrupt == 1
        assert c.stats().layers["memory"].entries == 0  # garbage is never promoted


async def test_envelope_expiry_wins_over_a_longer_redis_ttl(redis_url: str, namespace: str, raw_redis: Any) -> None:
    # An entry whose envelope says "expired" is a miss even if Redis still holds it
    # (e.g. written by a host whose clock ran ahead).
    full = f"{KEY_PREFIX}{namespace}:k"
    await raw_redis.set(full, pack(b'"stale"', time.time() - 1), px=60_000)
    async with cache(namespace, redis_url=redis_url) as c:
        assert await c.get("k") is None


CHILD = """
import asyncio, os, sys
from director_llm.cache import TieredCache
from director_llm.cache.codec import pack

async def main():
    async with TieredCache(memory_bytes=None, redis_url=sys.argv[1], disk_path=None,
                           ttl_seconds=60, namespace=sys.argv[2]) as cache:
        await cache.set("shared", {"from": "child", "pid": os.getpid()})

asyncio.run(main())
"""


async def test_two_processes_share_the_redis_layer(redis_url: str, namespace: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        redis_url,
        namespace,
        cwd=Path(__file__).resolve().parents[2],
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()
    async with cache(namespace, memory=2**20, redis_url=redis_url) as c:
        hit = await c.get("shared")
        assert hit is not None and hit.layer == "redis"
        assert hit.value == {"from": "child", "pid": proc.pid}
        assert proc.pid != os.getpid()


async def test_single_flight_spans_the_redis_lookup(redis_url: str, namespace: str) -> None:
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return "answer"

    async with cache(namespace, memory=2**20, redis_url=redis_url) as c:
        results = await asyncio.gather(*(c.get_or_compute("k", compute) for _ in range(100)))
        assert calls == 1 and set(results) == {("answer", None)}
    async with cache(namespace, redis_url=redis_url) as other:
        assert await other.get_or_compute("k", compute) == ("answer", "redis") and calls == 1


async def test_a_burst_of_writes_is_stored_not_dropped(redis_url: str, namespace: str) -> None:
    # 1000 background SETs contend for 32 connections: they must queue, not be dropped.
    async with cache(namespace, redis_url=redis_url) as writer:
        for i in range(1000):
            await writer.set(f"k{i}", i)
        await writer.flush()
        assert writer.stats().layers["redis"].errors == 0
    async with cache(namespace, redis_url=redis_url) as reader:
        hits = [await reader.get(f"k{i}") for i in range(1000)]
        assert [h.value if h else None for h in hits] == list(range(1000))


async def test_clear_removes_only_this_namespace(redis_url: str, namespace: str, raw_redis: Any) -> None:
    other_ns = namespace + "-other"
    try:
        async with cache(namespace, redis_url=redis_url) as mine, cache(other_ns, redis_url=redis_url) as theirs:
            for i in range(30):
                await mine.set(f"k{i}", i)
            await theirs.set("k0", "keep")
            await mine.flush()
            await theirs.flush()
            await mine.clear()
            assert await raw_redis.keys(f"{KEY_PREFIX}{namespace}:*") == []
            assert (await theirs.get("k0")).value == "keep"  # type: ignore[union-attr]
    finally:
        delete_prefix(redis_url, f"{KEY_PREFIX}{other_ns}:")


async def test_redis_stopped_and_restarted_mid_run(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = cache("outage", redis_url=redis_server.url, disk=tmp_path, redis_timeout_s=0.1, redis_backoff_s=0.2)
    for i in range(20):
        await c.set(f"k{i}", i)
    await c.flush()
    assert (await c.get("k0")).layer == "redis"  # type: ignore[union-attr]

    latencies: list[float] = []
    with caplog.at_level(logging.INFO, logger=LOGGER):
        redis_server.stop()
        # A burst in flight when Redis goes away: every call fails, still one warning.
        burst = await asyncio.gather(*(c.get(f"k{i}") for i in range(20)))
        assert [hit.value for hit in burst if hit is not None] == list(range(20))
        for round_ in range(3):  # spans several back-off periods while Redis is gone
            for i in range(20):
                started = time.perf_counter()
                hit = await c.get(f"k{i}")
                await c.set(f"new{round_}-{i}", i)
                latencies.append(time.perf_counter() - started)
                assert hit is not None and hit.value == i and hit.layer == "disk"
            await asyncio.sleep(0.25)
        assert c.stats().redis_state == "down"

        redis_server.start()  # same port, empty (no persistence)
        deadline = time.monotonic() + 5
        while c.stats().redis_state != "up":
            assert time.monotonic() < deadline, "the Redis layer did not come back by itself"
            await asyncio.sleep(0.05)
        await c.set("after", "back")
        await c.flush()

    async with cache("outage", redis_url=redis_server.url) as redis_only:
        hit = await redis_only.get("after")
        assert hit is not None and hit.layer == "redis"
    await c.aclose()

    ours = [r for r in caplog.records if r.name == LOGGER]
    assert len([r for r in ours if r.levelno == logging.WARNING]) == 1
    assert len([r for r in ours if r.levelno == logging.INFO and "reachable again" in r.getMessage()]) == 1
    assert max(latencies) < 0.25, max(latencies)  # at most one (short) failure, never a stall
    assert statistics.median(latencies) < 0.005
    stats = c.stats()
    assert stats.layers["redis"].skipped >= 50 and stats.layers["redis"].errors >= 1


@pytest.fixture
def hung_redis_url() -> Iterator[str]:
    """A port that accepts TCP connections and never answers: a frozen or overloaded Redis."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)  # never accept(): the kernel completes handshakes, nobody replies
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


async def test_hung_redis_costs_one_timeout_then_is_skipped(
    hung_redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = cache("hung", redis_url=hung_redis_url, disk=tmp_path, redis_timeout_s=0.1, redis_backoff_s=10)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        started = time.perf_counter()
        assert await c.get("missing") is None
        first = time.perf_counter() - started
        await c.set("k", "v")
        await c.flush()
        rest = []
        for _ in range(50):
            started = time.perf_counter()
            hit = await c.get("k")
            rest.append(time.perf_counter() - started)
            assert hit is not None and hit.layer == "disk"
    assert 0.08 <= first < 0.35, first  # paid the timeout once, bounded (hard cap 2x)
    assert max(rest) < 0.05, max(rest)  # never again: well under one timeout
    assert c.stats().redis_state == "down"
    assert len([r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]) == 1
    await c.aclose()


def test_bad_redis_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        TieredCache(memory_bytes=None, redis_url="http://nope", disk_path=None, ttl_seconds=1, namespace="n")
