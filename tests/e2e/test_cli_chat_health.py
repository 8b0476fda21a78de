"""``director-llm chat --once`` and ``director-llm health`` as a user runs them (real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from director_llm.testing import Fault, Reply

MODEL = "gpt-4o-mini"


def _write_config(tmp_path, base: str) -> str:
    path = tmp_path / "director.toml"
    path.write_text(f"""
[llm]
timeout_seconds = 10
first_token_timeout_seconds = 8
num_retries = 0
[llm.circuit_breaker]
failure_threshold = 1
[providers.openai]
models = ["{MODEL}", "backup"]
base_url = "{base}/v1"
api_key_env = "TEST_CLI_KEY"
[llm.fallbacks]
"openai/{MODEL}" = ["openai/backup"]
""")
    return str(path)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEST_CLI_KEY": "sk-cli-test-key-123456", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    cli = os.path.join(os.path.dirname(sys.executable), "director-llm")
    return subprocess.run([cli, *args], capture_output=True, text=True, env=env, timeout=60)


def test_chat_once_json_shows_route_and_cost(tmp_path, fake_provider) -> None:
    fake_provider.script(MODEL, Fault.status(500), then=Reply("from primary"))
    fake_provider.script("backup", Reply("olá do backup", usage=(4, 3)))
    cfg = _write_config(tmp_path, fake_provider.base_url)
    r = _run("chat", "--once", "pergunta", "--model", f"openai/{MODEL}", "--config", cfg, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["text"] == "olá do backup" and result["deployment"] == "openai/backup"
    assert result["attempts"][0].startswith(f"openai/{MODEL}:")
    assert "Traceback" not in r.stderr


def test_chat_once_all_down_exits_1(tmp_path, fake_provider) -> None:
    fake_provider.set_default(Fault.status(503))
    cfg = _write_config(tmp_path, fake_provider.base_url)
    r = _run("chat", "--once", "pergunta", "--config", cfg)
    assert r.returncode == 1
    assert "error" in r.stderr and "Traceback" not in r.stderr


def test_health_probe_json(tmp_path, fake_provider) -> None:
    fake_provider.script("backup", Fault.status(401, "bad key sk-cli-test-key-123456"))
    cfg = _write_config(tmp_path, fake_provider.base_url)
    r = _run("health", "--probe", "--json", "--config", cfg)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["deployments"]
    assert report[f"openai/{MODEL}"]["probe"]["ok"] is True
    backup = report["openai/backup"]
    assert backup["probe"]["ok"] is False and backup["state"] == "cooling down"  # 401 opens at once
    assert "sk-cli-test-key-123456" not in r.stdout
