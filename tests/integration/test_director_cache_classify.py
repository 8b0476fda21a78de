"""classify_intent through the cache: route.cache per layer, cache=False, keys, stream hits.

Real Redis, real disk, the fake provider's request log. Each test has its own namespace
(a unique ``system_prompt``).
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from director_llm import Director
from director_llm.cache.tiered import KEY_PREFIX
from director_llm.config.loading import parse_config_text
from director_llm.testing import Reply
from director_llm.testing.pytest_plugin import delete_prefix

KEY_ENV = "TEST_OPENAI_KEY"
ANSWER = {"flow": "cancel", "confidence": 0.93, "reasoning": "wants to cancel", "entities": {}}


def config_text(base: str, *, token: str, redis_url: str | None, disk: Path | None) -> str:
    caching = ["memory_size_mb = 4"]
    if redis_url:
        caching.append(f'redis_url = "{redis_url}"')
    if disk:
        caching.append(f'disk_cache_path = "{disk}"')
    return (
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        [providers.openai]
        models = ["gpt-4o-mini"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [intents]
        system_prompt = "test {token}"
        """)
        + "[caching]\n"
        + "\n".join(caching)
        + "\n"
    )


@pytest.fixture
def make(fake_provider, monkeypatch, redis_url) -> Iterator[Callable[..., Director]]:
    monkeypatch.setenv(KEY_ENV, "sk-test-cache-0123456789")
    token = uuid.uuid4().hex[:12]
    fake_provider.set_default(Reply(json=ANSWER))
    made: list[Director] = []

    def build(*, redis: bool = True, disk: Path | None = None) -> Director:
        text = config_text(fake_provider.base_url, token=token, redis_url=redis_url if redis else None, disk=disk)
        made.append(Director(parse_config_text(text)))
        return made[-1]

    yield build
    for d in made:
        delete_prefix(redis_url, f"{KEY_PREFIX}{d.cache.namespace}:")


async def test_classification_is_served_by_each_layer(make, fake_provider, tmp_path):
    a = make(disk=tmp_path / "d")
    first = await a.classify_intent("Quero cancelar minha assinatura")
    second = await a.classify_intent("  quero CANCELAR   minha assinatura ")  # same intent, other spelling
    assert (first.route.cache, second.route.cache) == (None, "memory")
    assert (second.flow, second.confidence) == (first.flow, first.confidence) == ("cancel", 0.93)
    assert second.route.calls == 0 and second.route.cost_usd == 0
    assert second.route.deployment == first.route.deployment  # who answered originally is kept
    await a.aclose()
    b = make(disk=tmp_path / "d")
    assert (await b.classify_intent("quero cancelar minha assinatura")).route.cache == "redis"
    await b.aclose()
    c = make(redis=False, disk=tmp_path / "d")
    assert (await c.classify_intent("quero cancelar minha assinatura")).route.cache == "disk"
    assert (await c.classify_intent("quero cancelar minha assinatura")).route.cache == "memory"
    await c.aclose()
    assert len(fake_provider.requests) == 1


async def test_no_cache_and_what_the_key_covers(make, fake_provider):
    d = make()
    await d.classify_intent("cancel my plan")
    assert (await d.classify_intent("cancel my plan", cache=False)).route.cache is None
    assert len(fake_provider.requests) == 2
    misses = [
        await d.classify_intent("cancel my plan", history=[{"role": "user", "content": "hello"}]),
        await d.classify_intent("cancel my plan", strategy="quality"),
        await d.classify_intent("cancel my plans"),
    ]
    assert [r.route.cache for r in misses] == [None, None, None]
    hits = [
        await d.classify_intent("cancel my plan", strategy=d.config.llm.default_strategy),
        await d.classify_intent("cancel my plan", history=[{"role": "user", "content": "hello"}]),
    ]
    assert [r.route.cache for r in hits] == ["memory", "memory"]
    assert len(fake_provider.requests) == 5
    stats = d.cache_stats()
    assert stats.hits == 2 and stats.layers["memory"].hits == 2
    await d.aclose()


async def test_stream_intent_reports_a_cache_hit(make, fake_provider):
    d = make(redis=False)
    await d.classify_intent("cancel my plan")
    items: list[Any] = [item async for item in d.stream_intent("cancel my plan")]
    assert items[0].type == "cache_hit" and items[0].layer == "memory"
    assert items[-1].done and items[-1].result.route.cache == "memory"
    assert len(fake_provider.requests) == 1
    await d.aclose()


async def test_concurrent_identical_classifications_make_one_upstream_call(make, fake_provider) -> None:
    import asyncio

    d = make(redis=False)
    fake_provider.set_default(Reply(json=ANSWER, delay=0.2))  # slow enough for all to overlap
    results = await asyncio.gather(*(d.classify_intent("quero cancelar o pedido") for _ in range(100)))
    assert {r.flow for r in results} == {"cancel"}
    assert len(fake_provider.requests_for("gpt-4o-mini")) == 1
    paid = [r for r in results if r.route.calls]
    assert len(paid) == 1 and paid[0].route.cost_usd > 0
    shared = [r for r in results if not r.route.calls]
    assert len(shared) == 99 and all(r.route.cost_usd == 0 for r in shared)
    # Failures are shared too, and the next call runs again (nothing poisoned).
    fake_provider.set_default(Reply(json={"nonsense": True}))
    errors = await asyncio.gather(
        *(d.classify_intent("outra coisa", cache=True) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(e, Exception) for e in errors)
    await d.aclose()


async def test_plain_lookup_and_store_methods(make, fake_provider):
    # The request engine calls these directly, with plain values instead of a ClassifyRequest.
    from director_llm.intents.models import IntentClassification, Route

    d = make(redis=False)
    flows = d.classifier.flows
    material = {"history": ["user: oi"], "tier": None, "strategy": None, "flows_fingerprint": flows.fingerprint}
    answer = IntentClassification(
        flow="cancel",
        confidence=0.8,
        reasoning="r",
        route=Route(deployment="openai/gpt-4o-mini", calls=1, cost_usd=0.01),
    )
    assert await d.cache.lookup_classification("Cancela tudo", valid_flows=flows.names, **material) is None
    await d.cache.store_classification(answer, "Cancela tudo", valid_flows=flows.names, **material)
    hit = await d.cache.lookup_classification("  cancela   TUDO", valid_flows=flows.names, **material)
    assert hit is not None and (hit.flow, hit.route.cache, hit.route.calls, hit.route.cost_usd) == (
        "cancel",
        "memory",
        0,
        0.0,
    )
    assert answer.route.calls == 1  # the caller's object is untouched
    # Same key, but a config (or flow subset) where "cancel" is not answerable: a miss.
    assert await d.cache.lookup_classification("cancela tudo", valid_flows=["greeting"], **material) is None
    # A result outside the valid flows is never stored.
    bogus = answer.model_copy(update={"flow": "admin_delete_everything"})
    await d.cache.store_classification(bogus, "outra coisa", valid_flows=flows.names, **material)
    assert (
        await d.cache.lookup_classification(
            "outra coisa", valid_flows=[*flows.names, "admin_delete_everything"], **material
        )
        is None
    )
    # The classifier's own path agrees on the key: same text, no history, default strategy.
    await d.cache.store_classification(
        answer, "quero cancelar", valid_flows=flows.names, flows_fingerprint=flows.fingerprint
    )
    assert (await d.classify_intent("Quero cancelar")).route.cache == "memory"
    assert len(fake_provider.requests) == 0
    await d.aclose()
