"""Text the project did not write (an upstream error body, a model's reasoning, a config
value) is printed literally by the CLI (issue 13): rich markup in it neither crashes the
CLI (``rich.errors.MarkupError`` on ``[/]``) nor styles the terminal or injects a link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from director_llm.cli.app import app
from director_llm.testing import Fault, Reply

KEY_ENV = "TEST_MARKUP_KEY"
# Short: provider errors are cut to a few dozen characters in messages.
HOSTILE = "[/][link=https://e.example]x[/link][b]y"
FLOWS = """
[intents.flows.greeting]
description = "The user says hello"
[intents.flows.create_task]
description = "The user wants to create a task"
"""


def squash(text: str) -> str:
    return " ".join(text.split())


def config(tmp_path: Path, base: str, extra: str = "") -> Path:
    path = tmp_path / "director.toml"
    path.write_text(
        f"""[llm]
num_retries = 0
[llm.circuit_breaker]
failure_threshold = 1
[providers.openai]
models = ["gpt-4o-mini"]
base_url = "{base}/v1"
api_key_env = "{KEY_ENV}"
{extra}
[intents]
{FLOWS}""",
        encoding="utf-8",
    )
    return path


def invoke(monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv(KEY_ENV, "sk-markup-test-0123456789")
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping inside the literal text
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def assert_literal(text: str) -> None:
    assert HOSTILE in squash(text), text
    assert "\x1b]8;" not in text  # no OSC 8 hyperlink escape reached the terminal


def test_upstream_error_with_markup_is_printed_literally(tmp_path, fake_provider, monkeypatch) -> None:
    fake_provider.set_default(Fault.status(500, HOSTILE))
    path = config(tmp_path, fake_provider.base_url)
    result = invoke(monkeypatch, "classify", "oi", "--config", str(path))
    assert result.exit_code == 1
    assert_literal(result.stderr)
    as_json = invoke(monkeypatch, "classify", "oi", "--config", str(path), "--json")
    assert as_json.exit_code == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["type"] in ("ProviderError", "ClassificationError") and "[/]" in error["message"]


def test_model_reasoning_and_entities_with_markup_are_printed_literally(tmp_path, fake_provider, monkeypatch) -> None:
    fake_provider.respond_with(
        "gpt-4o-mini",
        lambda request: Reply(
            json={"flow": "greeting", "confidence": 0.9, "reasoning": HOSTILE, "entities": {"note": "[/][i]x"}}
        ),
    )
    path = config(tmp_path, fake_provider.base_url)
    result = invoke(monkeypatch, "classify", "oi", "--config", str(path), "--no-cache")
    assert result.exit_code == 0, result.output
    assert_literal(result.stdout)
    assert '"[/][i]x"' in result.stdout and "greeting" in result.stdout
    streamed = invoke(monkeypatch, "classify", "oi", "--config", str(path), "--no-cache", "--stream")
    assert streamed.exit_code == 0, streamed.output
    assert_literal(streamed.stdout)


def test_chat_error_after_an_upstream_error_with_markup(tmp_path, fake_provider, monkeypatch) -> None:
    fake_provider.set_default(Fault.status(500, HOSTILE))
    path = config(tmp_path, fake_provider.base_url)
    result = invoke(monkeypatch, "chat", "--once", "oi", "--config", str(path))
    assert result.exit_code == 1 and result.stderr.startswith("error: ")


def test_health_probe_error_with_markup_is_printed_literally(tmp_path, fake_provider, monkeypatch) -> None:
    fake_provider.set_default(Fault.status(500, HOSTILE))
    path = config(tmp_path, fake_provider.base_url)
    result = invoke(monkeypatch, "health", "--probe", "--config", str(path))
    assert result.exit_code == 1
    assert "[/]" in result.stdout and "[link=" in result.stdout and "\x1b]8;" not in result.stdout


def test_config_values_with_brackets_are_printed_literally(tmp_path, monkeypatch) -> None:
    path = tmp_path / "director.toml"
    path.write_text(
        """[providers.local]
[providers.odd]
kind = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
models = ["[/]model"]
timeout_seconds = 5
[providers.odd.overrides."[/]model"]
input_price_per_million = 0
output_price_per_million = 0
[intents.flows."[bold]hi[/]"]
description = "odd name"
examples = ["oi"]
[intents.flows.out_of_scope]
description = "other"
examples = ["capital do Peru?"]
""",
        encoding="utf-8",
    )
    result = invoke(monkeypatch, "check-config", str(path))
    assert result.exit_code == 0, result.output
    assert "odd/[/]model" in result.stdout and "[bold]hi[/]" in result.stdout


def test_our_own_messages_keep_their_brackets(tmp_path, monkeypatch) -> None:
    # "add a [providers.local] section" used to print as "add a  section".
    path = tmp_path / "empty.toml"
    path.write_text("", encoding="utf-8")
    result = invoke(monkeypatch, "check-config", str(path))
    assert result.exit_code == 2
    assert "[providers.local]" in result.stderr


def test_markup_in_an_error_does_not_crash_the_console_script(tmp_path, fake_provider) -> None:
    """One real subprocess: the path a user runs (no CliRunner in between)."""
    fake_provider.set_default(Fault.status(500, HOSTILE))
    path = config(tmp_path, fake_provider.base_url)
    exe = Path(sys.executable).with_name("director-llm")
    env = {**os.environ, KEY_ENV: "sk-markup-test-0123456789", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "400"}
    proc = subprocess.run(
        [str(exe), "classify", "oi", "--config", str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 1, proc.stderr
    assert "MarkupError" not in proc.stderr and "Traceback" not in proc.stderr
    assert_literal(proc.stderr)
