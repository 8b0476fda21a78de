"""``director-llm metrics`` as deployed: a worker process serves real requests through the
fake provider server, an exporter process (the installed command) serves ``/metrics``, both
sharing prometheus-client's multiprocess directory and a Redis for the breaker and budget
state. The scrape must hold every family of the contract with the right labels and values.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from director_llm.testing import Fault, RecordedRequest, Reply

pytestmark = pytest.mark.slow

KEY_ENV = "TEST_METRICS_KEY"
KEY = "sk-metrics-secret-0123456789"
PROMPT = "meu cpf e 123.456.789-00"
INTENT = {"flow": "create_task", "confidence": 0.9, "reasoning": "asks for a task", "entities": {}}
FAMILIES = (
    "director_requests",
    "director_attempts",
    "director_request_duration_seconds",
    "director_time_to_first_token_seconds",
    "director_tokens",
    "director_cost_usd",
    "director_cache_requests",
    "director_budget_remaining_usd",
    "director_budget_reserved_usd",
    "director_breaker_state",
    "director_local_tier_decisions",
)

WORKER = """
import asyncio, json, sys
from director_llm import Director
from director_llm.errors import BudgetExceededError, ProviderError

async def main(main_cfg, local_cfg, prefix, prompt):
    routes = []
    messages = [{"role": "user", "content": prompt}]
    async with Director.from_file(main_cfg, state_prefix=prefix) as d:
        r = await d.acompletion(messages, model="openai/first", temperature=0)  # 500 -> second
        routes.append(d.route_of(r))
        r = await d.acompletion(messages, model="openai/first", temperature=0)  # memory cache
        routes.append(d.route_of(r))
        async with d.stream_response(messages, model="openai/second") as stream:
            async for chunk in stream:
                pass
        routes.append(chunk.route)
        try:
            await d.acompletion(messages, model="openai/limited")  # 429
        except ProviderError as exc:
            routes.append(exc.route)
        try:
            await d.acompletion(messages, model="openai/second", max_tokens=10_000_000)
        except BudgetExceededError as exc:
            routes.append(exc.route)
        routes.append((await d.classify_intent("quero criar uma tarefa para amanha", cache=False)).route)
        routes.append((await d.classify_intent("blorf zzq", cache=False)).route)  # LLM fails: last resort
    async with Director.from_file(local_cfg) as local_only:
        routes.append((await local_only.classify_intent("quero criar uma tarefa para amanha")).route)
    print(json.dumps([r.model_dump(mode="json") if r is not None else None for r in routes]))

asyncio.run(main(*sys.argv[1:]))
"""


def write_configs(tmp_path: Path, base: str, redis_url: str) -> tuple[Path, Path]:
    local = f'[providers.local]\nkind = "local"\nfeatures = "tfidf"\ncache_dir = "{tmp_path / "local"}"\n'
    main = tmp_path / "director.toml"
    main.write_text(
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        timeout_seconds = 20
        attempt_timeout_seconds = 10
        budget_per_hour = 1.0
        state_redis_url = "{redis_url}"
        [llm.circuit_breaker]
        failure_threshold = 1
        cooldown_seconds = 600
        [llm.fallbacks]
        "openai/first" = ["openai/second"]
        [providers.openai]
        models = ["first", "second", "limited"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        tier = "small"
        [providers.openai.overrides.first]
        input_price_per_million = 1.0
        output_price_per_million = 2.0
        [providers.openai.overrides.second]
        input_price_per_million = 3.0
        output_price_per_million = 4.0
        [providers.openai.overrides.limited]
        input_price_per_million = 3.0
        output_price_per_million = 4.0
        [caching]
        memory_size_mb = 4
        [intents]
        tier_thresholds = {{ local = 1.0 }}
        """)
        + local
    )
    local_only = tmp_path / "local.toml"
    local_only.write_text(local)
    return main, local_only


def second(request: RecordedRequest) -> Reply | Fault:
    if "blorf" in json.dumps(request.body):
        return Fault.status(500)
    return Reply(json=INTENT, usage=(11, 7))


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line.strip()
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no {prefix!r} line from the exporter: {proc.stderr.read() if proc.stderr else ''}")


def test_metrics_command_serves_every_family_after_real_requests(
    fake_provider, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    fake_provider.script("first", [Fault.status(500)], repeat=True)
    fake_provider.respond_with("second", second)
    fake_provider.script("limited", [Fault.status(429)], repeat=True)
    main_cfg, local_cfg = write_configs(tmp_path, fake_provider.base_url, redis_url)
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    env = {
        **os.environ,
        KEY_ENV: KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    worker = subprocess.run(
        [sys.executable, "-c", WORKER, str(main_cfg), str(local_cfg), redis_prefix, PROMPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    routes = json.loads(worker.stdout.strip().splitlines()[-1])
    fallback, hit, streamed, limited, refused, escalated, last_resort, answered = routes
    assert fallback["deployment"] == "openai/second" and hit["cache"] == "memory"
    assert limited["attempts"][0]["status_code"] == 429 and refused["calls"] == 0
    assert escalated["deployment"] == "openai/second"
    assert last_resort["tier"] == "local" and answered["tier"] == "local"

    cli = os.path.join(os.path.dirname(sys.executable), "director-llm")
    exporter = subprocess.Popen(
        [cli, "metrics", "--port", "0", "--config", str(main_cfg), "--state-prefix", redis_prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = wait_for_line(exporter, "serving ", timeout=120).split()[-1]
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read().decode()
    finally:
        exporter.terminate()
        exporter.wait(timeout=30)
    assert PROMPT not in body and KEY not in body and "blorf" not in body

    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert set(FAMILIES) <= set(families), set(FAMILIES) - set(families)
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}

    def value(name: str, **labels: str) -> float | None:
        return found.get((name, tuple(sorted(labels.items()))))

    small = {"provider": "openai", "model": "second", "tier": "small"}
    none = {"provider": "none", "model": "none", "tier": "none"}
    local = {"provider": "local", "model": last_resort["deployment"].split("/", 1)[1], "tier": "local"}
    assert value("director_requests_total", **small, entry="complete", outcome="fallback") == 1
    assert value("director_requests_total", **none, entry="complete", outcome="cache_hit") == 1
    assert value("director_requests_total", **small, entry="stream", outcome="ok") == 1
    assert value("director_requests_total", **none, entry="complete", outcome="rate_limited") == 1
    assert value("director_requests_total", **none, entry="complete", outcome="refused_budget") == 1
    assert value("director_requests_total", **small, entry="classify", outcome="ok") == 1
    assert value("director_requests_total", **local, entry="classify", outcome="fallback") == 1
    assert value("director_requests_total", **local, entry="classify", outcome="ok") == 1

    assert value("director_attempts_total", provider="openai", model="first", outcome="InternalServerError") == 1
    assert value("director_attempts_total", provider="openai", model="second", outcome="ok") == 3
    assert value("director_attempts_total", provider="openai", model="second", outcome="InternalServerError") == 1
    assert value("director_attempts_total", provider="openai", model="limited", outcome="RateLimitError") == 1

    assert value("director_request_duration_seconds_count", entry="complete", tier="small") == 1
    assert value("director_request_duration_seconds_count", entry="complete", tier="none") == 3
    assert value("director_request_duration_seconds_count", entry="classify", tier="local") == 2
    assert value("director_time_to_first_token_seconds_count", provider="openai", model="second") == 1
    assert value("director_time_to_first_token_seconds_sum", provider="openai", model="second") == pytest.approx(
        streamed["first_token_ms"] / 1000
    )

    served = [r for r in routes if r is not None]
    assert value("director_tokens_total", provider="openai", model="second", direction="input") == sum(
        r["prompt_tokens"] for r in served
    )
    assert value("director_tokens_total", provider="openai", model="second", direction="output") == sum(
        r["completion_tokens"] for r in served
    )
    spent = sum(r["cost_usd"] for r in served)
    assert spent > 0
    assert value("director_cost_usd_total", provider="openai", model="second") == pytest.approx(spent)

    assert value("director_cache_requests_total", layer="memory", result="hit") == 1
    assert value("director_cache_requests_total", layer="memory", result="miss") == 1
    assert value("director_budget_remaining_usd", window="hour") == pytest.approx(1.0 - spent)
    assert value("director_budget_reserved_usd", window="hour") == pytest.approx(0.0)
    for name in ("openai/first", "openai/limited", "openai/second"):
        assert value("director_breaker_state", deployment=name) == 2, name
    assert value("director_local_tier_decisions_total", decision="escalated") == 2
    assert value("director_local_tier_decisions_total", decision="last_resort") == 1
    assert value("director_local_tier_decisions_total", decision="answered") == 1
