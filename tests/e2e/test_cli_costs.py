"""``director-llm costs``: what another process spent, read from the shared Redis ledger."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from director_llm.cli.app import app
from director_llm.config.loading import load_config
from director_llm.director import Director
from director_llm.testing import Reply

KEY_ENV = "TEST_OPENAI_KEY"


def write_config(path: Path, base: str, redis_url: str) -> Path:
    path.write_text(
        textwrap.dedent(f"""
        [llm]
        num_retries = 0
        budget_per_hour = 0.5
        state_redis_url = "{redis_url}"
        [providers.openai]
        models = ["gpt-4o"]
        base_url = "{base}/v1"
        api_key_env = "{KEY_ENV}"
        [providers.openai.overrides.gpt-4o]
        tier = "strong"
        input_price_per_million = 2.5
        output_price_per_million = 10
    """)
    )
    return path


def test_costs_shows_spend_booked_by_another_director(
    fake_provider, redis_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-costs-0123456789")
    fake_provider.set_default(Reply(text="fine", usage=(1000, 200)))
    cfg = write_config(tmp_path / "director.toml", fake_provider.base_url, redis_url)

    async def spend() -> None:  # the "application" process's side (the CLI runs its own loop)
        async with Director(load_config(cfg), state_prefix=redis_prefix) as d:
            for _ in range(3):
                await d.acompletion([{"role": "user", "content": "hello there"}], strategy="quality")

    asyncio.run(spend())
    expected = 3 * (1000 * 2.5e-6 + 200 * 10e-6)

    result = CliRunner().invoke(
        app, ["costs", "--config", str(cfg), "--json", "--by", "model", "--state-prefix", redis_prefix]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["shared"] is True
    assert report["windows"]["hour"]["spent_usd"] == pytest.approx(expected)
    assert report["windows"]["hour"]["remaining_usd"] == pytest.approx(0.5 - expected)
    assert report["usage"]["openai:gpt-4o"]["requests"] == 3
    assert report["usage"]["openai:gpt-4o"]["prompt_tokens"] == 3000

    # The installed command, as a user runs it (a separate process).
    proc = subprocess.run(
        [sys.executable, "-m", "director_llm.cli.app", "costs", "--config", str(cfg), "--json", "--by", "provider"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DIRECTOR_STATE_PREFIX": redis_prefix},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["usage"]["openai"]["cost_usd"] == pytest.approx(expected)
    assert report["total"]["completion_tokens"] == 600

    rendered = CliRunner().invoke(app, ["costs", "--config", str(cfg), "--state-prefix", redis_prefix])
    assert rendered.exit_code == 0 and "hour" in rendered.stdout


def test_costs_rejects_unknown_grouping(tmp_path: Path) -> None:
    cfg = tmp_path / "director.toml"
    cfg.write_text("[providers.local]\n[llm]\nbudget_per_hour = 1.0\n")
    result = CliRunner().invoke(app, ["costs", "--config", str(cfg), "--by", "region"])
    assert result.exit_code == 2 and "--by must be provider, model or hour" in result.stderr
    as_json = CliRunner().invoke(app, ["costs", "--config", str(cfg), "--by", "region", "--json"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"]["type"] == "InputError"
