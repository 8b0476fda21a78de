"""``director-llm classify`` as a user runs it: a config file and a fake provider server (in
a thread of this process). Real subprocesses for the exit codes and ``--json`` (each costs a
LiteLLM import, seconds on this machine), typer's CliRunner in-process for the rest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from director_llm.testing import Fault, Reply

KEY_ENV = "TEST_CLI_CLASSIFY_KEY"
KEY_VALUE = "sk-cli-classify-0123456789"
FLOWS = """
[intents.flows.greeting]
description = "The user says hello"
examples = ["oi", "hello"]
[intents.flows.create_task]
description = "The user wants to create a task or reminder"
examples = ["cria uma tarefa para amanhã"]
"""


def oracle(request) -> Reply:
    text = request.last_user_text
    data = re.search(r"<user_message>\n(.*)\n</user_message>", text, re.DOTALL)
    text = data.group(1) if data else text
    flow = "greeting" if text.lower().startswith(("oi", "hello")) else "create_task"
    return Reply(
        json={"flow": flow, "confidence": 0.88, "reasoning": f"saw {text[:20]}", "entities": {}},
        usage=(100, 20),
        token_delay=0.005,
    )


@pytest.fixture
def config_file(tmp_path: Path, fake_provider) -> Path:
    path = tmp_path / "director.toml"
    path.write_text(
        f"""[llm]
num_retries = 0
[providers.openai]
models = ["gpt-4o-mini"]
base_url = "{fake_provider.base_url}/v1"
api_key_env = "{KEY_ENV}"
[intents]
{FLOWS}""",
        encoding="utf-8",
    )
    return path


def invoke(*args: str, monkeypatch) -> Any:
    """Run the command in-process (same code path as the console script, minus the import cost)."""
    from typer.testing import CliRunner

    from director_llm.cli.app import app

    monkeypatch.setenv(KEY_ENV, KEY_VALUE)
    monkeypatch.setenv("COLUMNS", "120")
    return CliRunner().invoke(app, ["classify", *args])


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, KEY_ENV: KEY_VALUE, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "120"}
    cmd = [sys.executable, "-c", "from director_llm.cli.app import main; main()", "classify", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=timeout)


def test_json_and_pretty(config_file, fake_provider):
    fake_provider.respond_with("gpt-4o-mini", oracle)
    proc = run("cria uma tarefa para amanhã", "--json", "--config", str(config_file))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["flow"] == "create_task" and result["confidence"] == 0.88
    assert set(result["route"]) >= {"model", "provider", "tier", "cache", "cost_usd", "latency_ms", "attempts"}
    assert result["route"]["model"] == "gpt-4o-mini" and result["route"]["cache"] is None
    assert KEY_VALUE not in proc.stdout + proc.stderr


def test_pretty(config_file, fake_provider, monkeypatch):
    fake_provider.respond_with("gpt-4o-mini", oracle)
    res = invoke("oi, tudo bem?", "--config", str(config_file), monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    assert "greeting" in res.stdout and "88%" in res.stdout and "gpt-4o-mini" in res.stdout
    assert "$0.000" in res.stdout


def test_stream_json_lines(config_file, fake_provider, monkeypatch):
    fake_provider.respond_with("gpt-4o-mini", oracle)
    res = invoke("oi", "--stream", "--json", "--config", str(config_file), monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    items = [json.loads(line) for line in res.stdout.splitlines()]
    assert items[0]["type"] == "tier_chosen" and items[-1]["type"] == "partial" and items[-1]["done"]
    assert items[-1]["result"]["flow"] == "greeting"
    assert any(i["type"] == "partial" and not i["done"] and i["partial_flow"] == "greeting" for i in items)
    res = invoke("cria uma tarefa", "--stream", "--config", str(config_file), monkeypatch=monkeypatch)
    assert res.exit_code == 0, res.output
    assert "create_task" in res.stdout and "tier balanced" in res.stderr


def test_exit_codes(config_file, fake_provider, tmp_path):
    proc = run("", "--config", str(config_file))
    assert proc.returncode == 2 and "empty" in proc.stderr and "Traceback" not in proc.stderr
    fake_provider.set_default(Fault.status(503, "overloaded"))
    proc = run("oi", "--config", str(config_file))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(error_lines) == 1 and "openai/gpt-4o-mini" in error_lines[0]
    assert KEY_VALUE not in proc.stderr


def test_config_error_exit_2(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm]\nbudget_per_hour = -1\n", encoding="utf-8")
    res = invoke("oi", "--config", str(bad), monkeypatch=monkeypatch)
    assert res.exit_code == 2 and "budget_per_hour" in res.stderr
    res = invoke("oi", "--file", str(bad), "--config", str(bad), monkeypatch=monkeypatch)
    assert res.exit_code == 2 and "not both" in res.stderr


def test_batch_keeps_order_and_records_failures(config_file, fake_provider, tmp_path, monkeypatch):
    fake_provider.respond_with("gpt-4o-mini", oracle)
    inputs = tmp_path / "inputs.jsonl"
    rows = [json.dumps({"text": f"oi {i}"} if i % 3 else {"text": f"cria tarefa {i}"}) for i in range(10)]
    rows.insert(4, json.dumps({"text": ""}))  # an input error on line 5
    rows.insert(7, "{not json")  # unreadable line 8
    inputs.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = invoke(
        "--file",
        str(inputs),
        "--concurrency",
        "3",
        "--output",
        str(out),
        "--config",
        str(config_file),
        monkeypatch=monkeypatch,
    )
    assert res.exit_code == 1, res.output  # some lines failed: not a success, and it says which
    assert "failed (InputError): lines 5, 8" in res.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == list(range(1, 13))
    assert records[4]["error"]["type"] == "InputError" and records[7]["error"]["type"] == "InputError"
    good = [r for r in records if "result" in r]
    assert len(good) == 10
    for r in good:
        assert r["result"]["flow"] == ("greeting" if r["text"].startswith("oi") else "create_task")
    assert "10 classified, 2 failed" in res.stderr
    txt = tmp_path / "inputs.txt"
    txt.write_text("oi\n\ncria uma tarefa\n", encoding="utf-8")
    fake_provider.reset()
    fake_provider.set_default(Fault.status(503))
    res = invoke("--file", str(txt), "--config", str(config_file), monkeypatch=monkeypatch)
    assert res.exit_code == 1 and "every provider failed" in res.stderr
    assert [json.loads(line)["line"] for line in res.stdout.splitlines()] == [1, 3]
