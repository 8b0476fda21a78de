"""TieredCache with the memory and disk layers (no sockets; Redis is in tests/integration)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import diskcache
import pytest
from pydantic import BaseModel

from director_llm.cache import PydanticCodec, TieredCache
from director_llm.cache.tiered import KEY_PREFIX
from director_llm.errors import ConfigError

UNPICKLED: list[str] = []


def _record(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class _Exploit:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _record, ("unpickled!",)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Intent(BaseModel):
    flow: str
    confidence: float


def make(tmp_path: Path, *, memory: int | None = 2**20, disk: bool = True, ns: str = "ns1", **kw: Any) -> TieredCache:
    return TieredCache(
        memory_bytes=memory,
        redis_url=None,
        disk_path=tmp_path / "disk" if disk else None,
        ttl_seconds=kw.pop("ttl_seconds", 60),
        namespace=ns,
        **kw,
    )


async def test_disk_hit_is_promoted_to_memory(tmp_path: Path) -> None:
    writer = make(tmp_path, memory=None)
    await writer.set("k", {"flow": "billing"})
    await writer.aclose()  # flushes the background disk write

    reader = make(tmp_path)
    first = await reader.get("k")
    second = await reader.get("k")
    assert first is not None and first.layer == "disk" and first.value == {"flow": "billing"}
    assert second is not None and second.layer == "memory" and second.value == {"flow": "billing"}
    stats = reader.stats()
    assert stats.layers["disk"].hits == 1 and stats.layers["memory"].hits == 1
    assert stats.layers["memory"].misses == 1 and stats.hit_rate == 1.0
    await reader.aclose()


async def test_promotion_keeps_the_remaining_lifetime(tmp_path: Path) -> None:
    clock = Clock()
    writer = make(tmp_path, memory=None, clock=clock, ttl_seconds=10)
    await writer.set("k", "v")
    await writer.aclose()
    clock.now += 8
    reader = make(tmp_path, clock=clock, ttl_seconds=10)
    assert (await reader.get("k")).layer == "disk"  # type: ignore[union-attr]
    clock.now += 2.5  # 10.5 s after the write: expired, though promoted only 2.5 s ago
    assert await reader.get("k") is None
    await reader.aclose()


async def test_memory_entries_expire_after_ttl(tmp_path: Path) -> None:
    clock = Clock()
    cache = make(tmp_path, disk=False, clock=clock, ttl_seconds=5)
    await cache.set("k", 1)
    clock.now += 4.9
    assert (await cache.get("k")) is not None
    clock.now += 0.2
    assert await cache.get("k") is None
    assert cache.stats().memory_bytes == 0


async def test_single_flight_calls_compute_once_for_100_concurrent_misses(tmp_path: Path) -> None:
    cache = make(tmp_path)
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"flow": "billing", "n": calls}

    results = await asyncio.gather(*(cache.get_or_compute("same", compute) for _ in range(100)))
    assert calls == 1
    assert all(r == ({"flow": "billing", "n": 1}, None) for r in results)
    assert len({id(value) for value, _ in results}) == 100  # every caller has its own copy
    stats = cache.stats()
    assert stats.computes == 1 and stats.coalesced == 99

    again = await cache.get_or_compute("same", compute)
    assert again == ({"flow": "billing", "n": 1}, "memory") and calls == 1
    await cache.aclose()


async def test_single_flight_shares_a_failure_and_caches_nothing(tmp_path: Path) -> None:
    cache = make(tmp_path)
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("provider down")

    results = await asyncio.gather(*(cache.get_or_compute("k", failing) for _ in range(10)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)

    async def works() -> str:
        return "ok"

    assert await cache.get_or_compute("k", works) == ("ok", None)
    await cache.aclose()


async def test_cancelling_the_first_caller_does_not_cancel_the_others(tmp_path: Path) -> None:
    cache = make(tmp_path)
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(0.05)
        return "done"

    leader = asyncio.create_task(cache.get_or_compute("k", slow))
    await started.wait()
    follower = asyncio.create_task(cache.get_or_compute("k", slow))
    await asyncio.sleep(0)
    leader.cancel()
    assert await follower == ("done", None)
    assert leader.cancelled()
    await cache.aclose()


async def test_corrupt_disk_entries_are_misses_and_deleted(tmp_path: Path) -> None:
    cache = make(tmp_path, memory=None)
    raw = diskcache.Cache(str(tmp_path / "disk"))
    prefix = f"{KEY_PREFIX}ns1:"
    raw.set(prefix + "garbage", b"\x00\x01 definitely not an entry")
    raw.set(prefix + "text", "a str value")
    raw.set(prefix + "pickle", _Exploit())  # diskcache pickles non-bytes values

    for key in ("garbage", "text", "pickle"):
        assert await cache.get(key) is None
    await cache.flush()
    assert UNPICKLED == []  # refused, never executed
    for key in ("garbage", "text", "pickle"):
        assert prefix + key not in raw
    assert cache.stats().layers["disk"].corrupt == 3
    raw.close()
    await cache.aclose()


async def test_namespaces_are_isolated_and_clear_only_touches_its_own(tmp_path: Path) -> None:
    old = make(tmp_path, memory=None, ns="cfg-aaaa")
    new = make(tmp_path, memory=None, ns="cfg-bbbb")
    await old.set("k", "old answer")
    await new.set("other", "kept")
    await old.flush()
    await new.flush()
    assert await new.get("k") is None  # a config change never serves the old answer
    await new.set("k", "new answer")
    await new.flush()  # memory is off here: the disk write is the only copy
    await old.clear()
    assert await old.get("k") is None
    assert (await new.get("k")).value == "new answer"  # type: ignore[union-attr]
    assert (await new.get("other")).value == "kept"  # type: ignore[union-attr]
    await old.aclose()
    await new.aclose()


async def test_pydantic_codec_round_trips_models_per_call(tmp_path: Path) -> None:
    cache = make(tmp_path)
    codec = PydanticCodec(Intent)

    async def classify() -> Intent:
        return Intent(flow="billing", confidence=0.8)

    value, layer = await cache.get_or_compute("k", classify, codec=codec)
    assert layer is None and isinstance(value, Intent)
    hit = await cache.get("k", codec=codec)
    assert hit is not None and hit.value == Intent(flow="billing", confidence=0.8)
    # Read with a codec the entry does not fit: corrupt for that reader, never a crash.
    assert await cache.get("k", codec=PydanticCodec(list[int])) is None
    await cache.aclose()


async def test_unencodable_values_are_returned_but_not_cached(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = make(tmp_path)

    async def compute() -> object:
        return object()

    with caplog.at_level(logging.WARNING, logger="director_llm.cache"):
        value, layer = await cache.get_or_compute("k", compute)
        await cache.set("k2", {1, 2, 3} | {object()})
    assert layer is None and type(value) is object
    assert await cache.get("k") is None and await cache.get("k2") is None
    assert cache.stats().encode_errors == 2
    assert len([r for r in caplog.records if "cannot encode" in r.message]) == 2
    await cache.aclose()


async def test_delete_removes_from_every_layer_even_with_a_write_pending(tmp_path: Path) -> None:
    cache = make(tmp_path)
    await cache.set("k", "v")  # disk write still queued
    await cache.delete("k")
    assert await cache.get("k") is None
    reader = make(tmp_path, memory=None)
    assert await reader.get("k") is None
    await cache.aclose()
    await reader.aclose()


def test_misconfiguration_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make(tmp_path, ns="bad namespace*")
    with pytest.raises(ConfigError):
        make(tmp_path, ttl_seconds=0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="disk_cache_path"):
        TieredCache(memory_bytes=None, redis_url=None, disk_path=blocker / "sub", ttl_seconds=1, namespace="n")


async def test_all_layers_off_is_a_cache_that_never_hits(tmp_path: Path) -> None:
    cache = TieredCache(memory_bytes=None, redis_url=None, disk_path=None, ttl_seconds=1, namespace="n")
    await cache.set("k", 1)
    assert await cache.get("k") is None
    assert cache.stats().layers == {}
    await cache.aclose()


async def test_memory_budget_is_honoured_through_the_cache(tmp_path: Path) -> None:
    limit = 50_000
    cache = make(tmp_path, memory=limit, disk=False)
    for i in range(500):
        await cache.set(f"k{i}", {"answer": "x" * (50 + i % 400)})
        assert cache.stats().memory_bytes <= limit
    stats = cache.stats()
    assert 0.8 * limit < stats.memory_bytes <= limit  # full, not over
    assert stats.layers["memory"].entries < 500
    assert await cache.get("k0") is None and await cache.get("k499") is not None
    await cache.aclose()
