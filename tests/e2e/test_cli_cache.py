"""``director-llm cache stats|clear`` as a user runs them: a config file, real Redis and disk."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from director_llm.cache.director import DirectorCache
from director_llm.cache.tiered import KEY_PREFIX
from director_llm.cli.app import app
from director_llm.config.loading import load_config
from director_llm.testing.pytest_plugin import delete_prefix


@pytest.fixture
def config_file(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "director.toml"
    path.write_text(
        '[providers.openai]\nmodels = ["gpt-4o-mini"]\napi_key_env = "UNSET_TEST_KEY"\n'
        f'[intents]\nsystem_prompt = "cli {uuid.uuid4().hex}"\n'
        f'[caching]\nmemory_size_mb = 2\nredis_url = "{redis_url}"\ndisk_cache_path = "{tmp_path / "disk"}"\n'
    )
    yield path
    delete_prefix(redis_url, f"{KEY_PREFIX}{DirectorCache(load_config(path)).namespace}:")


def fill(path: Path, count: int) -> str:
    """Store ``count`` entries through the same wiring the Director uses; return the namespace."""
    cache = DirectorCache(load_config(path))

    async def run() -> None:
        tiered = cache.tiered()
        for i in range(count):
            await tiered.set(f"k{i}", {"flow": "cancel", "i": i})
        await cache.aclose()

    asyncio.run(run())
    return cache.namespace


def test_stats_and_clear_json(config_file: Path) -> None:
    runner = CliRunner()
    namespace = fill(config_file, 7)
    result = runner.invoke(app, ["cache", "stats", "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["namespace"] == namespace and report["enabled"] is True
    assert report["layers"]["redis"]["entries"] == 7 and report["layers"]["redis"]["state"] == "up"
    assert report["layers"]["disk"]["entries"] == 7
    assert report["layers"]["memory"]["max_bytes"] == 2 * 2**20

    result = runner.invoke(app, ["cache", "clear", "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == {"memory": 0, "redis": 7, "disk": 7}
    after = json.loads(runner.invoke(app, ["cache", "stats", "-c", str(config_file), "--json"]).stdout)
    assert (after["layers"]["redis"]["entries"], after["layers"]["disk"]["entries"]) == (0, 0)


def test_clear_keeps_other_configs(config_file: Path, tmp_path: Path, redis_url: str) -> None:
    other = tmp_path / "other.toml"
    other.write_text(config_file.read_text().replace('system_prompt = "cli', 'system_prompt = "other'))
    try:
        fill(config_file, 3)
        fill(other, 2)
        result = CliRunner().invoke(app, ["cache", "clear", "-c", str(config_file), "--json"])
        assert json.loads(result.stdout)["removed"]["redis"] == 3
        left = json.loads(CliRunner().invoke(app, ["cache", "stats", "-c", str(other), "--json"]).stdout)
        assert left["layers"]["redis"]["entries"] == 2 and left["layers"]["disk"]["entries"] == 2
    finally:
        delete_prefix(redis_url, f"{KEY_PREFIX}{DirectorCache(load_config(other)).namespace}:")


def test_cache_off_and_bad_config(tmp_path: Path) -> None:
    off = tmp_path / "off.toml"
    off.write_text('[providers.openai]\nmodels = ["gpt-4o-mini"]\n[caching]\nenabled = false\nmemory_size_mb = 4\n')
    result = CliRunner().invoke(app, ["cache", "stats", "-c", str(off), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["enabled"] is False
    bad = tmp_path / "bad.toml"
    bad.write_text("[caching]\nmemory_size_mb = -1\n")
    result = CliRunner().invoke(app, ["cache", "clear", "-c", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_stats_in_a_real_subprocess(config_file: Path) -> None:
    fill(config_file, 2)
    proc = subprocess.run(
        # The installed console script, as a user runs it (``python -m ...cli.app`` would register
        # the commands on a second copy of the module).
        [str(Path(sys.executable).parent / "director-llm"), "cache", "stats", "-c", str(config_file)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "redis" in proc.stdout and "disk" in proc.stdout and "cache namespace" in proc.stdout


def test_classify_no_cache_flag(tmp_path: Path, fake_provider, monkeypatch) -> None:
    from director_llm.testing import Reply

    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-cli-0123456789")
    fake_provider.set_default(Reply(json={"flow": "cancel", "confidence": 0.9, "reasoning": "r", "entities": {}}))
    path = tmp_path / "c.toml"
    path.write_text(
        f'[providers.openai]\nmodels = ["gpt-4o-mini"]\nbase_url = "{fake_provider.base_url}/v1"\n'
        f'api_key_env = "TEST_OPENAI_KEY"\n[caching]\ndisk_cache_path = "{tmp_path / "disk"}"\n'
    )
    runner = CliRunner()
    runs = [
        runner.invoke(app, ["classify", "quero cancelar", "-c", str(path), "--json", *flags])
        for flags in ([], [], ["--no-cache"])
    ]
    assert [r.exit_code for r in runs] == [0, 0, 0], [r.output for r in runs]
    layers = [json.loads(r.stdout)["route"]["cache"] for r in runs]
    assert layers == [None, "disk", None]  # each CLI run is a new Director: the disk layer persists
    assert len(fake_provider.requests) == 2
