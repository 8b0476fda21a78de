"""Key pools in the CLI (real subprocesses): check-config shows the pool's names and which are
set, health --probe shows a refused key by name; no key value is printed anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from director_llm.cli.app import app
from director_llm.testing import Fault, Reply

EXE = Path(sys.executable).with_name("director-llm")
KEYS = {"TEST_CLI_POOL_A": "sk-cli-pool-a-0123456789abcdef", "TEST_CLI_POOL_B": "sk-cli-pool-b-0123456789abcdef"}


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "director_llm.cli.app"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TEST_CLI_POOL_")}
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env},
    )


def in_process(*args: str):  # the table views, without paying a process start each
    env = {**KEYS, "COLUMNS": "200", "TEST_CLI_POOL_C": None}
    return CliRunner().invoke(app, list(args), env=env)  # type: ignore[arg-type]


def write_config(tmp_path: Path, base: str) -> str:
    path = tmp_path / "director.toml"
    path.write_text(f"""
[providers.openai]
models = ["pool-model"]
base_url = "{base}/v1"
api_key_envs = ["TEST_CLI_POOL_A", "TEST_CLI_POOL_B", "TEST_CLI_POOL_C"]
tier = "balanced"
[providers.openai.overrides.pool-model]
input_price_per_million = 1.0
output_price_per_million = 2.0
""")
    return str(path)


def test_check_config_shows_the_pool_by_name(tmp_path, fake_provider) -> None:
    cfg = write_config(tmp_path, fake_provider.base_url)
    table = in_process("check-config", "--config", cfg)
    as_json = run("check-config", "--config", cfg, "--json", env=KEYS)
    assert table.exit_code == 0 and as_json.returncode == 0, table.stdout + as_json.stderr
    assert "2/3 set" in table.stdout
    problems = json.loads(as_json.stdout)["problems"]
    assert any(
        p["key"] == "providers.openai.api_key_envs" and "$TEST_CLI_POOL_C is not set" in p["message"] for p in problems
    )
    assert "TEST_CLI_POOL_C" in table.stdout and "missing" in table.stdout
    deployment = json.loads(as_json.stdout)["deployments"][0]
    assert deployment["api_key_envs"] == ["TEST_CLI_POOL_A", "TEST_CLI_POOL_B", "TEST_CLI_POOL_C"]
    assert deployment["keys"] == {"TEST_CLI_POOL_A": "set", "TEST_CLI_POOL_B": "set", "TEST_CLI_POOL_C": "missing"}
    for value in KEYS.values():
        assert value not in table.stdout + as_json.stdout + as_json.stderr


def test_health_probe_shows_a_refused_key_by_name(tmp_path, fake_provider) -> None:
    fake_provider.set_default(Reply("pong"))
    # The upstream echoes the key it refused: the CLI must still not print it.
    refused = KEYS["TEST_CLI_POOL_A"]
    fake_provider.script(
        None, Fault.status(401, f"Incorrect API key provided: {refused}"), api_key=refused, repeat=True
    )
    cfg = write_config(tmp_path, fake_provider.base_url)
    as_json = run("health", "--probe", "--json", "--config", cfg, env=KEYS)
    assert as_json.returncode == 0, as_json.stderr
    entry = json.loads(as_json.stdout)["deployments"]["openai/pool-model"]
    assert entry["probe"]["ok"] is True and entry["state"] == "healthy"
    assert entry["keys"]["TEST_CLI_POOL_A"] == {"state": "dropped", "status": 401}
    assert entry["keys"]["TEST_CLI_POOL_B"] == {"state": "ok"}
    assert entry["keys"]["TEST_CLI_POOL_C"] == {"state": "missing"}
    for value in KEYS.values():
        assert value not in as_json.stdout + as_json.stderr


def test_health_table_names_the_key_states() -> None:
    from director_llm.cli.cmd_health import _key_state

    assert _key_state({"state": "dropped", "status": 401}) == "dropped (401)"
    assert _key_state({"state": "cooling", "cooling_s": {"openai/m": 2.5}}) == "cooling (2.5s)"
    assert _key_state({"state": "ok"}) == "ok"
