"""A newcomer's first hour, run as they would run it: real subprocesses from a directory
outside the repository (no ./configs, no $DIRECTOR_CONFIG), the README's commands and its
Python example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("director-llm")
PACKAGED = ROOT / "director_llm" / "defaults" / "director.toml"


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One local-model cache for the module: the first classification trains, the rest load."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def elsewhere(tmp_path: Path, model_cache: Path) -> tuple[Path, dict[str, str]]:
    """A working directory with no config in it, and an environment with no config or keys."""
    env = {k: v for k, v in os.environ.items() if k != "DIRECTOR_CONFIG" and not k.endswith("_API_KEY")}
    env.update(DIRECTOR_CACHE_DIR=str(model_cache), COLUMNS="200")
    work = tmp_path / "somewhere"
    work.mkdir()
    return work, env


def run(
    args: list[str], cwd: Path, env: dict[str, str], *, stdin: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


def test_version_and_help(elsewhere) -> None:
    cwd, env = elsewhere
    version = run(["--version"], cwd, env)
    assert version.returncode == 0 and re.fullmatch(r"director-llm \d+\.\d+\.\d+\S*\n", version.stdout)
    for args in (["-h"], ["--help"], ["classify", "-h"], ["check-config", "-h"], ["chat", "-h"], ["cache", "-h"]):
        proc = run(args, cwd, env)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Usage:" in proc.stdout and "<bool>" not in proc.stdout, proc.stdout
    assert "init" in run(["-h"], cwd, env).stdout and "schema" in run(["-h"], cwd, env).stdout


def test_classify_from_any_directory_uses_the_packaged_default(elsewhere) -> None:
    cwd, env = elsewhere
    proc = run(["classify", "quero criar uma tarefa para amanhã", "--json"], cwd, env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["flow"] == "create_task"
    assert "built-in default config" in proc.stderr and "director-llm init" in proc.stderr
    # The text from stdin: "-", or no argument with stdin piped.
    for args in (["classify", "-", "--json"], ["classify", "--json"]):
        piped = run(args, cwd, env, stdin="obrigado pela ajuda!\n")
        assert piped.returncode == 0, piped.stderr
        assert json.loads(piped.stdout)["flow"] == "thanks"
    check = run(["check-config"], cwd, env)
    assert check.returncode == 0 and "config is valid" in check.stdout
    assert "director_llm/defaults/director.toml" in check.stdout.replace("\n", "")


def test_init_writes_a_starter_config_that_works(elsewhere) -> None:
    cwd, env = elsewhere
    proc = run(["init"], cwd, env)
    assert proc.returncode == 0, proc.stderr
    written = cwd / "configs" / "director.toml"
    text = written.read_text(encoding="utf-8")
    assert text == PACKAGED.read_text(encoding="utf-8")
    assert "\n[providers.local]" in text and "\n# [providers.openai]" in text and "\n[providers.openai]" not in text
    assert "check-config configs/director.toml" in " ".join(proc.stderr.split())
    again = run(["init"], cwd, env)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert run(["init", "--force"], cwd, env).returncode == 0
    assert run(["init", "my.yaml"], cwd, env).returncode == 2
    other = run(["init", "elsewhere/mine.toml", "--json"], cwd, env)
    assert other.returncode == 0 and json.loads(other.stdout) == {"written": "elsewhere/mine.toml"}
    # Found without --config from this directory, and valid.
    check = run(["check-config"], cwd, env)
    assert check.returncode == 0, check.stderr
    assert "config is valid" in check.stdout and "built-in default" not in check.stderr


def test_json_errors_are_json_on_stdout_with_the_same_exit_codes(elsewhere) -> None:
    cwd, env = elsewhere
    empty = run(["classify", "", "--json"], cwd, env)
    assert empty.returncode == 2
    assert json.loads(empty.stdout)["error"]["type"] == "InputError"
    bad = cwd / "bad.toml"
    bad.write_text("[llm]\nbudget_per_hour = -1\n[providers.local]\n", encoding="utf-8")
    for args in (["classify", "oi"], ["chat", "--once", "oi"], ["costs"], ["cache", "stats"]):
        proc = run([*args, "--config", str(bad), "--json"], cwd, env)
        assert proc.returncode == 2, (args, proc.stderr)
        error = json.loads(proc.stdout)["error"]
        assert error["type"] == "ConfigError" and "llm.budget_per_hour" in error["message"], args
    check = run(["check-config", str(bad), "--json"], cwd, env)
    assert check.returncode == 2
    report = json.loads(check.stdout)
    assert report["valid"] is False and report["error"]["type"] == "ConfigError"


def test_batch_exits_1_and_names_the_failed_lines(elsewhere) -> None:
    cwd, env = elsewhere
    config = cwd / "director.toml"
    config.write_text(
        PACKAGED.read_text(encoding="utf-8").replace("max_input_chars = 4000", "max_input_chars = 40"), encoding="utf-8"
    )
    inputs = cwd / "in.txt"
    inputs.write_text("oi, tudo bem?\n" + "quero " * 20 + "\n\nobrigado\n" + "x" * 80 + "\n", encoding="utf-8")
    proc = run(["classify", "--file", str(inputs), "--config", str(config)], cwd, env)
    assert proc.returncode == 1, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["line"] for r in records] == [1, 2, 4, 5]
    assert [("error" in r) for r in records] == [False, True, False, True]
    assert "2 classified, 2 failed" in proc.stderr and "failed (InputError): lines 2, 5" in proc.stderr


def test_classify_tier_and_model(elsewhere) -> None:
    cwd, env = elsewhere
    local = run(["classify", "cancela tudo", "--tier", "local", "--json"], cwd, env)
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["route"]["tier"] == "local"
    pinned = run(["classify", "cancela tudo", "--model", "local/intent", "--json"], cwd, env)
    assert pinned.returncode == 0 and json.loads(pinned.stdout)["route"]["deployment"] == "local/intent"
    missing = run(["classify", "oi", "--tier", "strong", "--json"], cwd, env)
    assert missing.returncode == 2
    assert "can use: local, local/intent" in json.loads(missing.stdout)["error"]["message"]
    both = run(["classify", "oi", "--tier", "local", "--model", "local/intent"], cwd, env)
    assert both.returncode == 2 and "not both" in both.stderr


def test_chat_once_without_an_llm_tier_fails_at_once(elsewhere) -> None:
    cwd, env = elsewhere
    probe = (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write("
        "f\"litellm imported: {'litellm' in sys.modules}\\n\")); "
        "sys.argv = ['director-llm', 'chat', '--once', 'oi']; "
        "from director_llm.cli.app import main; main()"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 1
    assert "no LLM deployment is usable" in proc.stderr and "litellm imported: False" in proc.stderr
    # < 1 s on a quiet 2-core machine (it took 8-12 s); a wide margin for a loaded CI box.
    assert elapsed < 5, elapsed


def test_schema_command_prints_the_committed_schema(elsewhere) -> None:
    cwd, env = elsewhere
    proc = run(["schema"], cwd, env)
    assert proc.returncode == 0
    assert proc.stdout == (ROOT / "docs" / "director.schema.json").read_text(encoding="utf-8")
    assert json.loads(proc.stdout)["properties"]["providers"]["properties"]["openai"]


def test_readme_python_example_runs_from_another_directory(elsewhere) -> None:
    cwd, env = elsewhere
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert example, "the README has a Python example"
    code = example.group(1)
    assert len(code.splitlines()) <= 40
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("create_task ") and lines[0].split()[2:] == ["local", "0.0"]
    assert lines[1].startswith("thanks ")
    assert lines[2].startswith("no chat: no LLM deployment is usable")
