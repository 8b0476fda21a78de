"""A corrupt cache layer is a miss and one warning, never a failed request (issue 13).

Real files (a truncated or overwritten ``cache.db``), real Redis with garbage values, the
memory layer holding bytes a validating codec refuses, and the fake OpenAI server.
"""

from __future__ import annotations

import logging
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from director_llm import Director
from director_llm.cache.classification import ClassificationCodec
from director_llm.cache.identity import SECRET_ENV
from director_llm.cache.tiered import KEY_PREFIX, TieredCache
from director_llm.config.loading import parse_config_text
from director_llm.testing import Reply
from director_llm.testing.pytest_plugin import delete_prefix

KEY_ENV = "TEST_SECURITY_KEY"
ANSWER = {"flow": "cancel", "confidence": 0.93, "reasoning": "wants to cancel", "entities": {}}
TEXTS = [f"quero cancelar o pedido {i}" for i in range(4)]


def config_text(base: str, *, token: str, disk: Path | None, redis_url: str | None = None) -> str:
    caching = ["redis_timeout_ms = 3000"]
    if disk:
        caching.append(f'disk_cache_path = "{disk}"')
    if redis_url:
        caching.append(f'redis_url = "{redis_url}"')
    return (
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        [providers.openai]
        models = ["gpt-4o-mini"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [intents]
        system_prompt = "corrupt {token}"
        """)
        + "[caching]\n"
        + "\n".join(caching)
        + "\n"
    )


@pytest.fixture
def make(fake_provider, monkeypatch) -> Iterator[Callable[..., Director]]:
    monkeypatch.setenv(KEY_ENV, "sk-test-security-0123456789")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    fake_provider.set_default(Reply(json=ANSWER))
    token = uuid.uuid4().hex[:12]

    def build(disk: Path | None, redis_url: str | None = None) -> Director:
        return Director(
            parse_config_text(config_text(fake_provider.base_url, token=token, disk=disk, redis_url=redis_url))
        )

    return build


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "director_llm.cache" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
async def test_corrupt_disk_database_is_moved_aside_and_rebuilt(make, fake_provider, tmp_path, caplog, damage):
    caplog.set_level(logging.WARNING, logger="director_llm.cache")
    disk = tmp_path / "cache"
    writer = make(disk)
    for text in TEXTS:
        await writer.classify_intent(text)
    await writer.aclose()
    db = disk / "cache.db"
    data = db.read_bytes()
    damaged = data[: len(data) // 3] if damage == "truncated" else b"\x00garbage" * 4096
    db.write_bytes(damaged)
    for name in ("cache.db-wal", "cache.db-shm"):
        (disk / name).unlink(missing_ok=True)

    reader = make(disk)
    results = [await reader.classify_intent(text) for text in TEXTS]  # every call works
    assert [(r.flow, r.route.cache) for r in results] == [("cancel", None)] * 4
    await reader.aclose()
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "corrupt" in warnings[0] and "moved it aside" in warnings[0], warnings
    aside = sorted(p.name for p in disk.glob("cache.db.corrupt-*"))
    assert len(aside) == 1
    assert (disk / aside[0]).read_bytes() == damaged  # kept for inspection, not deleted
    # The rebuilt database is a working cache: a new process is served from it.
    again = make(disk)
    assert [(await again.classify_intent(t)).route.cache for t in TEXTS] == ["disk"] * 4
    await again.aclose()
    assert len(fake_provider.requests) == 8


async def test_disk_database_corrupted_while_running(make, fake_provider, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="director_llm.cache")
    disk = tmp_path / "cache"
    d = make(disk)
    await d.classify_intent(TEXTS[0])
    await d.cache.tiered().flush()
    (disk / "cache.db").write_bytes(b"\x00garbage" * 4096)  # under the open connections
    results = [await d.classify_intent(t) for t in TEXTS[1:] * 3]
    await d.cache.tiered().flush()
    assert {r.flow for r in results} == {"cancel"}
    warnings = cache_warnings(caplog)
    assert len(warnings) == 1 and "corrupt" in warnings[0], warnings
    assert list(disk.glob("cache.db.corrupt-*"))
    # Writes after the rebuild land in the new database.
    await d.classify_intent("um texto novo depois da reconstrução")
    await d.aclose()
    again = make(disk)
    assert (await again.classify_intent("um texto novo depois da reconstrução")).route.cache == "disk"
    await again.aclose()


async def test_unusable_disk_path_leaves_the_layer_out(make, fake_provider, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="director_llm.cache")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    d = make(blocker / "cache")
    results = [await d.classify_intent(t) for t in TEXTS]
    assert [r.route.cache for r in results] == [None] * 4
    assert "disk" in d.cache.layer_errors
    assert len(cache_warnings(caplog)) == 1
    await d.aclose()


async def test_garbage_redis_values_are_misses_with_one_warning(make, fake_provider, redis_url, caplog):
    caplog.set_level(logging.WARNING, logger="director_llm.cache")
    writer = make(None, redis_url)
    for text in TEXTS:
        await writer.classify_intent(text)
    await writer.aclose()
    prefix = f"{KEY_PREFIX}{writer.cache.namespace}:"
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        assert len(keys) == 4
        garbage = [b"", b"D", b"D\x01\x00", b"\xff" * 64]
        for key, value in zip(keys, garbage, strict=True):
            client.set(key, value, px=60_000)
        reader = make(None, redis_url)
        results = [await reader.classify_intent(t) for t in TEXTS]
        assert [r.route.cache for r in results] == [None] * 4
        await reader.aclose()
        assert all(client.get(k).startswith(b"D\x01") for k in keys)  # overwritten with real entries
    finally:
        client.close()
        delete_prefix(redis_url, prefix)
    assert len(cache_warnings(caplog)) == 1


async def test_memory_entry_refused_by_the_codec_is_dropped(caplog):
    caplog.set_level(logging.WARNING, logger="director_llm.cache")
    cache = TieredCache(memory_bytes=2**20, redis_url=None, disk_path=None, ttl_seconds=60, namespace="n")
    # Written as plain JSON (any writer), read as a classification of a config without that flow.
    await cache.set("k", {**ANSWER, "flow": "admin_delete_everything"})
    codec = ClassificationCodec({"cancel", "out_of_scope"})
    assert await cache.get("k", codec=codec) is None
    assert cache.stats().layers["memory"].corrupt == 1
    assert await cache.get("k") is None  # deleted, not just skipped
    assert len(cache_warnings(caplog)) == 1
    await cache.aclose()
