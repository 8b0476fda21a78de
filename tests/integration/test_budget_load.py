"""The Redis ledger holds load: 500 concurrent requests on one process, and 4 x 200 across
processes, against a real healthy Redis: every request served, no ``BudgetStoreDownError``,
and the ledger books exactly what the fake server billed (the issue saw 400 of 500 fail with
``MaxConnectionsError: Too many connections``).

The shared client factory (``director_llm.redis_clients``) gives the ledger a blocking,
bounded pool: a burst waits for a connection instead of failing, and a wait is not an outage.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.testing import Reply

KEY_ENV = "TEST_OPENAI_KEY"
USAGE = (100, 20)
PRICE = (2.5e-6, 10e-6)
COST = USAGE[0] * PRICE[0] + USAGE[1] * PRICE[1]
LIMIT = 5.0  # ample: no request is refused for budget


def config_text(base: str, redis: str) -> str:
    return textwrap.dedent(f"""
        [llm]
        budget_per_hour = {LIMIT}
        default_max_tokens = 50
        state_redis_url = "{redis}"
        timeout_seconds = 60
        attempt_timeout_seconds = 50
        [llm.circuit_breaker]
        failure_threshold = 1000
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
    monkeypatch.setenv(KEY_ENV, "sk-test-load-0123456789")


@pytest.fixture
def provider(fake_provider):  # type: ignore[no-untyped-def]
    fake_provider.set_default(Reply(text="fine", usage=USAGE))
    return fake_provider


def ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question number {i}: why do TCP and UDP differ?"}]


async def ledger(base: str, redis: str, prefix: str) -> tuple[float, float, int]:
    async with Director(parse_config_text(config_text(base, redis)), state_prefix=prefix) as d:
        report = await d.spend()
    return report.windows["hour"].spent_usd, report.windows["hour"].reserved_usd, report.total.requests


async def test_five_hundred_concurrent_requests_on_one_process(provider, redis_url: str, redis_prefix: str) -> None:
    cfg = parse_config_text(config_text(provider.base_url, redis_url))
    async with Director(cfg, state_prefix=redis_prefix) as d:
        await d.warmup()

        async def one(i: int) -> str:
            try:
                await d.acompletion(ask(i))
                return "ok"
            except Exception as exc:  # the test counts every failure by class
                return f"{type(exc).__name__}: {str(exc)[:200]}"

        results = await asyncio.gather(*(one(i) for i in range(500)))
        ledger_state = d.budget.ledger
        print("ledger operations retried while Redis was busy:", getattr(ledger_state, "busy", 0))
    failures = [r for r in results if r != "ok"]
    assert not failures, (len(failures), failures[:3])
    assert getattr(ledger_state, "outages", 0) == 0  # a busy pool is not an outage
    served = len(provider.requests_for("gpt-4o"))
    assert served == 500
    spent, held, requests = await ledger(provider.base_url, redis_url, redis_prefix)
    assert spent == pytest.approx(500 * COST, abs=1e-9) and requests == 500 and held == 0


WORKER = textwrap.dedent("""
    import asyncio, json, os, sys
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from director_llm.director import Director

    async def main(path, prefix, n, worker):
        async with Director.from_file(path, state_prefix=prefix) as d:
            await d.warmup()
            async def one(i):
                ask = [{"role": "user", "content": f"Question {worker}-{i}: why do TCP and UDP differ?"}]
                try:
                    await d.acompletion(ask)
                    return "ok"
                except Exception as exc:
                    return type(exc).__name__ + ": " + str(exc)[:200]
            results = await asyncio.gather(*(one(i) for i in range(n)))
            led = d.budget.ledger
            stats = {k: getattr(led, k, 0) for k in ("outages", "busy", "local_reservations", "reconciled", "pending")}
        print(json.dumps({"results": results, "outages": stats["outages"], "stats": stats}))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
""")


@pytest.mark.slow  # four processes import LiteLLM
async def test_four_processes_of_two_hundred_concurrent_requests(
    provider, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    cfg_path, script = tmp_path / "director.toml", tmp_path / "worker.py"
    cfg_path.write_text(config_text(provider.base_url, redis_url))
    script.write_text(WORKER)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(cfg_path),
            redis_prefix,
            "200",
            str(w),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for w in range(4)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout=600)
    results: list[str] = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
        data = json.loads(out.decode().strip().splitlines()[-1])
        results += data["results"]
        print(data["stats"])
        assert data["outages"] == 0
    failures = [r for r in results if r != "ok"]
    assert not failures, (len(failures), failures[:3])
    assert len(results) == len(provider.requests_for("gpt-4o")) == 800
    spent, held, requests = await ledger(provider.base_url, redis_url, redis_prefix)
    # A reserve sent again after a late reply keeps its id: held once, settled once.
    assert spent == pytest.approx(800 * COST, abs=1e-9) and requests == 800 and held == 0
