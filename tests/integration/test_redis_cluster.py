"""Redis Cluster (``redis+cluster://``) through real Directors on the fake provider servers,
against a private 3-node cluster this module starts (no replicas, free ports): the cache is
shared and cleared across the nodes (also by ``director-llm cache stats|clear``), the budget ledger, the breaker and the rate limits (all
multi-key Lua scripts, their keys hash-tagged into one slot) work as on one Redis.

Skips when redis-server / redis-cli are missing; fails instead under DIRECTOR_REQUIRE_REDIS=1.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from director_llm.budget import BudgetExceededError
from director_llm.cache.director import DirectorCache
from director_llm.cli.app import app
from director_llm.config.loading import load_config, parse_config_text
from director_llm.director import Director
from director_llm.errors import ProviderError, RateLimitedError, RedisUnavailableError
from director_llm.testing import Fault, Reply
from director_llm.testing.pytest_plugin import require_redis
from director_llm.testing.redis import RedisCluster

KEY_ENV = "TEST_CLUSTER_KEY"
USAGE = (10, 20)
COST = USAGE[0] * 1e-6 + USAGE[1] * 2e-6  # 1.0 / 2.0 USD per million tokens
ASK = [{"role": "user", "content": "Compare TCP and UDP in two sentences, please."}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    nodes = RedisCluster()
    try:
        nodes.start()
    except RedisUnavailableError as exc:
        require_redis(f"no local Redis Cluster: {exc}")
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-cluster-test-0123456789")


@pytest.fixture(autouse=True)
def _no_outage(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test must have talked to the cluster, not fallen back to local state."""
    yield
    outages = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert not outages, outages


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


def config(base: str, url: str, *, models: dict[str, str] | None = None, llm: str = "") -> Any:
    """One openai provider on the fake server; ``models`` maps a model to its extra override lines."""
    models = models or {"a-model": ""}
    overrides = "".join(
        f"[providers.openai.overrides.{m}]\ninput_price_per_million = 1.0\noutput_price_per_million = 2.0\n{more}\n"
        for m, more in models.items()
    )
    text = textwrap.dedent(f"""
        [llm]
        num_retries = 0
        timeout_seconds = 20
        default_max_tokens = 50
        {llm}
        [llm.circuit_breaker]
        failure_threshold = 2
        [providers.openai]
        models = {json.dumps(list(models))}
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        tier = "balanced"
        [caching]
        redis_url = "{url}"
    """)
    return parse_config_text(text + overrides)


async def test_the_cache_is_shared_and_cleared_across_the_cluster(fake_provider, cluster: RedisCluster) -> None:
    fake_provider.set_default(Reply("cached answer", usage=USAGE))
    cfg = config(fake_provider.base_url, cluster.url)
    asks = [[{"role": "user", "content": f"question number {i}?"}] for i in range(24)]
    async with Director(cfg) as writer:
        for ask in asks:
            await writer.acompletion(ask, temperature=0)
        await writer.cache.tiered().flush()
    sent = len(fake_provider.requests)
    assert sent == len(asks)
    async with Director(cfg) as reader:
        routes = [Director.route_of(await reader.acompletion(ask, temperature=0)) for ask in asks]
        assert {r["cache"] for r in routes} == {"redis"}
        assert len(fake_provider.requests) == sent  # every answer came from the cluster
        tiered = reader.cache.tiered()
        # 24 single-key entries spread over the slots of several nodes: counting and clearing
        # must scan every primary, not the node a SCAN happens to land on.
        holders = await _nodes_holding(cluster, f"*{reader.cache.namespace}:*")
        assert len(holders) >= 2, holders
        assert (await tiered.count_entries())["redis"] == len(asks)
        await tiered.clear()
        assert (await tiered.count_entries())["redis"] == 0
        assert await _nodes_holding(cluster, f"*{reader.cache.namespace}:*") == {}
        assert Director.route_of(await reader.acompletion(asks[0], temperature=0))["cache"] in (None, "miss")
    assert len(fake_provider.requests) == sent + 1


async def test_the_budget_is_reserved_settled_and_refused_across_directors(
    fake_provider, cluster: RedisCluster, prefix: str
) -> None:
    fake_provider.set_default(Reply("fine", usage=USAGE))
    budget = COST * 3.5
    cfg = config(fake_provider.base_url, cluster.url, llm=f"budget_per_hour = {budget}")
    served, refused = 0, 0
    async with Director(cfg, state_prefix=prefix) as one, Director(cfg, state_prefix=prefix) as two:
        for i in range(8):
            d = (one, two)[i % 2]
            try:
                route = Director.route_of(await d.acompletion(ASK))
                assert route["reserved_cost_usd"] >= route["cost_usd"] > 0
                served += 1
            except BudgetExceededError:
                refused += 1
            await d.budget.drain()  # settled before the next reservation
        report = await one.spend()
    hour = report.windows["hour"]
    assert served >= 1 and refused >= 1 and served + refused == 8
    assert served == len(fake_provider.requests)
    assert hour.spent_usd == pytest.approx(served * COST, abs=1e-12)
    assert hour.spent_usd <= budget and hour.reserved_usd == 0


async def test_the_breaker_opened_by_one_director_is_open_for_another(
    fake_provider, cluster: RedisCluster, prefix: str
) -> None:
    fake_provider.script("a-model", [Fault.status(500)], repeat=True)
    cfg = config(fake_provider.base_url, cluster.url)
    async with Director(cfg, state_prefix=prefix) as one, Director(cfg, state_prefix=prefix) as two:
        assert two.breaker.state("openai/a-model") == "closed"
        for _ in range(2):
            with pytest.raises(ProviderError):
                await one.acompletion(ASK)
        assert one.breaker.state("openai/a-model") == "open"
        await two.breaker.refresh()
        assert two.breaker.state("openai/a-model") == "open"
    assert len(fake_provider.requests) == 2  # the second Director never sent one


async def test_rate_limits_are_shared_by_directors_on_the_cluster(
    fake_provider, cluster: RedisCluster, prefix: str
) -> None:
    # A deployment's scope and the global scope in one script: their keys share one slot.
    fake_provider.set_default(Reply("ok"))
    limits = "[llm.rate_limits]\nrpm = 5\nmax_wait_seconds = 0.2"
    cfg = config(fake_provider.base_url, cluster.url, models={"a-model": "rpm = 3", "b-model": ""}, llm=limits)
    async with Director(cfg, state_prefix=prefix) as one, Director(cfg, state_prefix=prefix) as two:
        assert one.limiter.shared and two.limiter.shared
        results = await asyncio.gather(
            *(d.acompletion(ASK) for d in (one, two) for _ in range(6)), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(results) - len(refused) == 5 and len(refused) == 7
    assert all(isinstance(r, RateLimitedError) for r in refused), refused
    assert len(fake_provider.requests) == 5
    assert len(fake_provider.requests_for("a-model")) <= 3


async def test_an_unreachable_cluster_is_an_outage_not_a_failure(
    fake_provider, caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py raises RedisClusterException (not a RedisError) when no node answers; the
    # factory turns it into a ConnectionError, so cache, breaker and limiter skip Redis.
    fake_provider.set_default(Reply("served anyway", usage=USAGE))
    cfg = config(fake_provider.base_url, "redis+cluster://127.0.0.1:1", models={"a-model": "rpm = 100"})
    started = time.monotonic()
    async with Director(cfg) as d:
        for _ in range(3):
            reply = await d.acompletion(ASK, temperature=0)
            assert reply.choices[0].message.content == "served anyway"
    assert time.monotonic() - started < 10
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    caplog.clear()  # the outage was the point here


def test_cache_stats_and_clear_cli_count_every_node(cluster: RedisCluster, tmp_path: Path) -> None:
    path = tmp_path / "director.toml"
    path.write_text(
        '[providers.openai]\nmodels = ["gpt-4o-mini"]\napi_key_env = "UNSET_TEST_KEY"\n'
        f'[caching]\nredis_url = "{cluster.url}"\n'
    )
    cache = DirectorCache(load_config(path))

    async def fill() -> dict[int, int]:
        tiered = cache.tiered()
        for i in range(30):
            await tiered.set(f"k{i}", {"i": i})
        await cache.aclose()
        return await _nodes_holding(cluster, f"*{cache.namespace}:*")

    assert len(asyncio.run(fill())) >= 2  # the entries are spread over several nodes
    runner = CliRunner()
    stats = runner.invoke(app, ["cache", "stats", "-c", str(path), "--json"])
    assert stats.exit_code == 0, stats.output
    redis_layer = json.loads(stats.stdout)["layers"]["redis"]
    assert (redis_layer["entries"], redis_layer["state"]) == (30, "up")
    assert redis_layer["url"].startswith("redis+cluster://127.0.0.1:")
    cleared = runner.invoke(app, ["cache", "clear", "-c", str(path), "--json"])
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.stdout)["removed"] == {"redis": 30}
    assert asyncio.run(_nodes_holding(cluster, f"*{cache.namespace}:*")) == {}


async def _nodes_holding(cluster: RedisCluster, pattern: str) -> dict[int, int]:
    """Keys matching ``pattern`` per node port (plain clients, one per node)."""
    import redis.asyncio as aioredis

    found: dict[int, int] = {}
    for port in cluster.ports:
        client = aioredis.Redis(host=cluster.host, port=port)
        try:
            n = len([k async for k in client.scan_iter(match=pattern, count=1000)])
        finally:
            await client.aclose()
        if n:
            found[port] = n
    return found


def test_the_litellm_proxy_export_names_the_cluster_nodes() -> None:
    from director_llm.export import litellm_proxy_config, unexpressed

    url = "redis+cluster://10.0.0.1:7000"
    cfg = parse_config_text(f'[providers.openai]\nmodels = ["gpt-4o-mini"]\n[caching]\nredis_url = "{url}"\n')
    exported = litellm_proxy_config(cfg)
    params = exported["litellm_settings"]["cache_params"]
    assert params["redis_startup_nodes"] == [{"host": "10.0.0.1", "port": 7000}] and "host" not in params
    assert not any(k.startswith("redis_") for k in exported["router_settings"])  # one host would be wrong
    assert any("Redis Cluster" in line for line in unexpressed(cfg))


def test_a_node_out_of_connections_is_a_busy_moment_not_an_outage() -> None:
    # A cluster node has no blocking pool: past max_connections it raises MaxConnectionsError
    # (a ConnectionError); that must not mark the whole store down.
    from redis.exceptions import MaxConnectionsError

    from director_llm.redis_clients import RedisClients

    hub = RedisClients("redis+cluster://127.0.0.1:7000")
    assert hub.cluster and RedisClients.is_slow(MaxConnectionsError())
    hub.mark_up()
    hub.mark_down(MaxConnectionsError())
    assert not hub.down and hub.busy == 1 and hub.outages == 0


async def test_a_ledger_on_a_cluster_url_without_the_factory(cluster: RedisCluster, prefix: str) -> None:
    # The path of tools that build a RedisLedger from the URL alone (its own cluster client):
    # the window scripts span the hour, day and provider windows, the report a pipeline.
    from director_llm.budget import BudgetLimits, RedisLedger

    async with RedisLedger(
        cluster.url, prefix=prefix, limits=BudgetLimits(per_hour=1.0, per_provider={"openai": (0.5, None)})
    ) as led:
        res = await led.reserve(amount_usd=0.4, provider="openai", model="gpt-4o")
        await led.settle(res, actual_usd=0.25, prompt_tokens=100, completion_tokens=20)
        held = await led.reserve(amount_usd=0.25, provider="openai", model="gpt-4o")
        with pytest.raises(BudgetExceededError):
            await led.reserve(amount_usd=0.01, provider="openai", model="gpt-4o")
        await led.release(held)
        assert await led.remaining() == pytest.approx({"hour": 0.75, "provider:openai:hour": 0.25})
        report = await led.snapshot(by="model")
    assert report.usage["openai:gpt-4o"].requests == 1
    assert report.usage["openai:gpt-4o"].cost_usd == pytest.approx(0.25)
