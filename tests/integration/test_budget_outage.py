"""The budget store outage mode: a private redis-server stopped and restarted mid-run.

``[llm] budget_store_failure = "local"`` (the default): while Redis is down each process
spends from a local allowance (last known remaining / ``expected_processes``), books it in
memory and writes it back when Redis returns. ``"closed"``: priced deployments are refused.
Prices come from config overrides and the fake server reports fixed usage, so every dollar
amount is (requests the server saw) x (usage) x (price).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import BudgetExceededError, BudgetStoreDownError
from director_llm.testing import Reply
from director_llm.testing.pytest_plugin import require_redis
from director_llm.testing.redis import RedisServer, RedisUnavailableError

KEY_ENV = "TEST_OPENAI_KEY"
USAGE = (100, 50)
PRICE = (2.5e-6, 10e-6)
COST = USAGE[0] * PRICE[0] + USAGE[1] * PRICE[1]  # 0.00075 a call
ASK = [{"role": "user", "content": "Explain why TCP and UDP differ?"}]


def config_text(base: str, redis: str, *, per_hour: float, mode: str = "local", max_tokens: int = 100) -> str:
    return textwrap.dedent(f"""
        [llm]
        budget_per_hour = {per_hour}
        default_max_tokens = {max_tokens}
        state_redis_url = "{redis}"
        budget_store_failure = "{mode}"
        expected_processes = 4
        attempt_timeout_seconds = 5
        [providers.openai]
        models = ["gpt-4o"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [providers.openai.overrides.gpt-4o]
        input_price_per_million = {PRICE[0] * 1e6}
        output_price_per_million = {PRICE[1] * 1e6}
    """)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-outage-0123456789")


@pytest.fixture
def provider(fake_provider):  # type: ignore[no-untyped-def]
    fake_provider.set_default(Reply(text="fine", usage=USAGE))
    return fake_provider


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """A private redis-server that keeps its data across a restart (append-only file)."""
    server = RedisServer(persistent=True)
    try:
        server.start()
    except RedisUnavailableError as exc:
        require_redis(exc.reason)
    yield server
    server.close()


async def hour_window(base: str, redis: str, per_hour: float) -> tuple[float, float, int]:
    """(spent, held, requests) of the hour window as Redis has it."""
    cfg = parse_config_text(config_text(base, redis, per_hour=per_hour, mode="closed"))
    async with Director(cfg) as d:
        report = await d.spend()
    return report.windows["hour"].spent_usd, report.windows["hour"].reserved_usd, report.total.requests


WORKER = textwrap.dedent("""
    import asyncio, json, os, sys, time
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from director_llm.director import Director

    async def main(path, done):
        ask = [{"role": "user", "content": "Explain why TCP and UDP differ?"}]
        results = []
        async with Director.from_file(path) as d:
            await d.warmup()
            print("ready", flush=True)
            for _ in range(2000):
                if os.path.exists(done):
                    break
                t = time.time()
                try:
                    await d.acompletion(ask)
                    results.append(["ok", t])
                except Exception as exc:
                    results.append([type(exc).__name__ + ": " + str(exc)[:300], t])
                await asyncio.sleep(0.02)
            outages, local = d.budget.ledger.outages, d.budget.ledger.local_reservations
        print(json.dumps({"results": results, "outages": outages, "local": local}))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


async def wait_requests(provider, count: int, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while len(provider.requests_for("gpt-4o")) < count:
        assert time.monotonic() < deadline, f"only {len(provider.requests_for('gpt-4o'))} of {count} requests"
        await asyncio.sleep(0.05)


@pytest.mark.slow  # four processes import LiteLLM: ~10 s each on a quiet machine, minutes on a busy one
async def test_local_mode_serves_through_an_outage_and_writes_the_spend_back(
    provider, durable_redis: RedisServer, tmp_path: Path
) -> None:
    limit = 1.0  # ample: the run needs ~$0.2 and each process's outage allowance is ~$0.24
    cfg_path = tmp_path / "director.toml"
    cfg_path.write_text(config_text(provider.base_url, durable_redis.url, per_hour=limit))
    script, done = tmp_path / "worker.py", tmp_path / "done"
    script.write_text(WORKER)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(cfg_path),
            str(done),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(4)
    ]
    try:
        for p in procs:  # every worker imported LiteLLM and is about to send
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), timeout=120)
            assert line.strip() == b"ready", line
        await wait_requests(provider, 40)
        durable_redis.stop()
        stopped_at, before = time.time(), len(provider.requests_for("gpt-4o"))
        await asyncio.sleep(2.5)  # more than two probes of a down Redis (every 1 s)
        await wait_requests(provider, before + 40)
        durable_redis.start()
        started_at, back = time.time(), len(provider.requests_for("gpt-4o"))
        await wait_requests(provider, back + 40)
    finally:
        done.touch()
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=120)
    results, outages, local = [], 0, 0
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
        data = json.loads(out.decode().strip().splitlines()[-1])
        results += data["results"]
        outages += data["outages"]
        local += data["local"]
    failures = [r for r in results if r[0] != "ok"]
    assert not failures, failures[:5]
    during = [r for r in results if stopped_at + 0.1 < r[1] < started_at]
    assert len(during) >= 40 and outages >= 4 and local >= len(during)
    served = len(provider.requests_for("gpt-4o"))
    assert served == len(results)
    # Everything booked, during the outage too, is in Redis after it returns: exactly once.
    spent, held, requests = await hour_window(provider.base_url, durable_redis.url, limit)
    assert spent == pytest.approx(served * COST, abs=1e-9)
    assert requests == served and held == 0


async def test_local_allowance_bounds_the_spend_of_four_processes(provider, durable_redis: RedisServer) -> None:
    limit = 10 * COST  # worst case of a call (100 prompt-ish + 100 max tokens) is ~0.00105
    cfg = parse_config_text(config_text(provider.base_url, durable_redis.url, per_hour=limit))
    directors = [Director(cfg) for _ in range(4)]  # four ledgers: four processes' worth of state
    served, refused = 0, []
    try:
        for d in directors:  # each reads the shared budget once while Redis is up
            await d.acompletion(ASK)
            await d.budget.drain()
            served += 1
        durable_redis.stop()
        for d in directors:
            for _ in range(5):
                try:
                    await d.acompletion(ASK)
                    served += 1
                except BudgetExceededError as exc:  # the local allowance, not a store error
                    assert not isinstance(exc, BudgetStoreDownError)
                    refused.append(exc)
                await d.budget.drain()
        durable_redis.start()
    finally:
        for d in directors:
            await d.aclose()  # writes back what was booked during the outage
    assert refused and "unreachable" in str(refused[0])
    assert served > len(directors)  # some were served from the local allowance
    assert served == len(provider.requests_for("gpt-4o"))
    spent, held, _ = await hour_window(provider.base_url, durable_redis.url, limit)
    assert spent == pytest.approx(served * COST, abs=1e-9)
    # The documented bound: with at most expected_processes processes, within the limit
    # (each process spends at most its last known remaining / 4).
    assert spent <= limit + 1e-12 and held == 0


async def test_closed_mode_refuses_priced_calls_while_redis_is_down(provider, redis_server: RedisServer) -> None:
    cfg = parse_config_text(config_text(provider.base_url, redis_server.url, per_hour=1.0, mode="closed"))
    async with Director(cfg) as d:
        await d.acompletion(ASK)
        redis_server.stop()
        with pytest.raises(BudgetStoreDownError):
            await d.acompletion(ASK)
        redis_server.start()
    assert len(provider.requests_for("gpt-4o")) == 1
