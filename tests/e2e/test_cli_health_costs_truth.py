"""``health`` and ``costs`` tell the truth: what other processes learned (through Redis),
"unknown" for a deployment nobody called, a cold ``--probe`` within its own short timeout,
per-process spend explained, free deployments in the usage."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from director_llm.config.loading import load_config
from director_llm.director import Director
from director_llm.errors import ProviderError
from director_llm.testing import Fault, Reply

KEY_ENV = "TEST_HEALTH_KEY"
KEY = "sk-health-secret-0123456789"


def write_config(path: Path, base: str, *, redis_url: str | None = None, llm: str = "") -> Path:
    state = f'state_redis_url = "{redis_url}"' if redis_url else ""
    path.write_text(
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        timeout_seconds = 10
        attempt_timeout_seconds = 10
        {state}
        {llm}
        [llm.circuit_breaker]
        failure_threshold = 3
        cooldown_seconds = 600
        [providers.openai]
        models = ["alive", "dead", "revoked", "idle"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [providers.vllm]
        kind = "openai_compatible"
        models = ["free-model"]
        base_url = "{base}/v1"
        """)
    )
    return path


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_ENV: KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    exe = os.path.join(os.path.dirname(sys.executable), "director-llm")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_health_in_another_process_sees_what_this_one_learned(
    fake_provider, redis_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    fake_provider.script("alive", [Reply("ok", usage=(4, 2))], repeat=True)
    fake_provider.script("dead", [Fault.status(503)], repeat=True)
    fake_provider.script("revoked", [Fault.status(401, f"bad key {KEY}")], repeat=True)
    cfg = write_config(tmp_path / "director.toml", fake_provider.base_url, redis_url=redis_url)

    async def application() -> None:
        async with Director(load_config(cfg), state_prefix=redis_prefix) as d:
            for _ in range(2):
                await d.acompletion([{"role": "user", "content": "hi"}], model="openai/alive")
            for name in ("dead", "revoked"):
                with pytest.raises(ProviderError):
                    await d.acompletion([{"role": "user", "content": "hi"}], model=f"openai/{name}")

    asyncio.run(application())
    r = cli("health", "--json", "--config", str(cfg), "--state-prefix", redis_prefix)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["deployments"]
    alive, dead, revoked, idle = (report[f"openai/{n}"] for n in ("alive", "dead", "revoked", "idle"))
    assert alive["state"] == "healthy" and alive["requests"] == 2 and alive["error_rate"] == 0
    assert alive["source"] == "shared" and alive["mean_latency_ms"] > 0 and alive["last_called_s_ago"] >= 0
    assert dead["state"] == "degraded" and dead["requests"] == 1 and dead["error_rate"] == 1.0
    assert dead["breaker"]["consecutive_failures"] == 1
    assert "ServiceUnavailable" in dead["last_error"] or "503" in dead["last_error"]
    assert revoked["state"] == "cooling down" and revoked["breaker"]["state"] == "open"  # 401 opens at once
    assert idle["state"] == "unknown" and idle["requests"] == 0 and idle["last_called_s_ago"] is None
    assert KEY not in r.stdout

    table = cli("health", "--config", str(cfg), "--state-prefix", redis_prefix)
    assert table.returncode == 0 and "unknown" in table.stdout and "cooling down" in table.stdout
    assert "note:" not in table.stderr  # shared numbers: no per-process caveat


def test_health_without_redis_says_unknown_not_healthy(fake_provider, tmp_path: Path) -> None:
    fake_provider.set_default(Fault.status(503))  # a dead server nobody called yet
    cfg = write_config(tmp_path / "director.toml", fake_provider.base_url)
    r = cli("health", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["deployments"]
    assert {h["state"] for h in report.values()} == {"unknown"}
    assert {h["source"] for h in report.values()} == {"process"}
    text = cli("health", "--config", str(cfg))
    assert "this process's numbers alone" in " ".join(text.stderr.split())


def test_cold_probe_answers_within_its_own_short_timeout(fake_provider, tmp_path: Path) -> None:
    fake_provider.script("alive", [Reply("pong", usage=(1, 1))], repeat=True)
    fake_provider.script("dead", [Reply("late", delay=30)], repeat=True)
    fake_provider.script("revoked", [Fault.status(500)], repeat=True)
    fake_provider.script("idle", [Reply("pong")], repeat=True)
    cfg = write_config(tmp_path / "director.toml", fake_provider.base_url)
    # A fresh process: LiteLLM is imported before the probes, outside their 3 s.
    r = cli("health", "--probe", "--probe-timeout", "3", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["deployments"]
    alive = report["openai/alive"]
    assert alive["probe"]["ok"] is True and alive["probe"]["latency_ms"] < 3000
    assert alive["state"] == "healthy"
    assert report["openai/dead"]["probe"] == {"ok": False, "error": "no answer within 3s"}
    assert report["openai/revoked"]["probe"]["ok"] is False
    assert "LiteLLM" not in r.stderr  # LiteLLM's own loggers stay quiet under the CLI (none silenced)


def test_costs_without_redis_explains_per_process_spend(fake_provider, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "director.toml", fake_provider.base_url, llm="budget_per_hour = 2.0")
    r = cli("costs", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["shared"] is False and report["scope"] == "process"
    assert "per process" in report["note"] and "director.spend()" in report["note"]
    assert report["windows"]["hour"]["remaining_usd"] == 2.0
    text = cli("costs", "--config", str(cfg))
    assert text.returncode == 0 and "spend is kept per process" in " ".join(text.stderr.split())


async def test_free_deployments_appear_in_usage(
    fake_provider, redis_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    fake_provider.script("free-model", [Reply("gratis", usage=(12, 5))], repeat=True)
    shared = write_config(tmp_path / "shared.toml", fake_provider.base_url, redis_url=redis_url)
    local = write_config(tmp_path / "local.toml", fake_provider.base_url)
    for path, prefix in ((shared, redis_prefix), (local, None)):
        async with Director(load_config(path), state_prefix=prefix) as d:
            assert d.providers["vllm/free-model"].price.known and d.budget.is_free(d.providers["vllm/free-model"])
            for _ in range(3):
                await d.acompletion([{"role": "user", "content": "hi"}], model="vllm/free-model")
            mine = (await d.spend(by="model")).usage["vllm:free-model"]  # this process's, booked in batches
            assert (mine.requests, mine.prompt_tokens, mine.completion_tokens, mine.cost_usd) == (3, 36, 15, 0.0)
    # Another process reads the shared ledger.
    r = await asyncio.to_thread(
        cli, "costs", "--json", "--by", "model", "--config", str(shared), "--state-prefix", redis_prefix
    )
    assert r.returncode == 0, r.stderr
    usage = json.loads(r.stdout)["usage"]["vllm:free-model"]
    assert usage == {"requests": 3, "prompt_tokens": 36, "completion_tokens": 15, "cost_usd": 0.0}
