"""Hostile config files (issue 13): each is refused quickly with one short, located
``ConfigError`` (exit 2, no traceback), whichever command reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from director_llm import ConfigError, load_config
from director_llm.cli.app import app
from director_llm.config.parsing import MAX_DEPTH, MAX_VALUES
from director_llm.config.sources import MAX_CONFIG_BYTES

EXE = Path(sys.executable).with_name("director-llm")
LOCAL = "[providers.local]\n"


def billion_laughs(levels: int = 9, fan_out: int = 9) -> str:
    """The classic YAML alias bomb: ``fan_out ** levels`` strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * fan_out) + "]")
    lines.append(f"llm: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def refused(path: Path, match: str) -> ConfigError:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.perf_counter() - start < 10, "bounded checks must be fast (a few ms on a quiet machine)"
    message = str(info.value)
    assert match in message, message
    assert message.startswith(f"{path}:") and len(message) < 600, message
    return info.value


# -- YAML aliases, nesting, size ----------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    assert path.stat().st_size < 700  # the 666-byte class of file from the report
    error = refused(path, f"more than {MAX_VALUES:,} values once its aliases")
    assert error.line is not None


def test_yaml_alias_bomb_via_the_cli_exits_2_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs(levels=15, fan_out=9), encoding="utf-8")
    start = time.perf_counter()
    proc = subprocess.run([str(EXE), "check-config", str(path)], capture_output=True, text=True, timeout=90)
    assert time.perf_counter() - start < 30  # was > 90 s; a few tenths now (process start included)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "aliases" in proc.stderr and len(proc.stderr) < 1000


def test_yaml_aliases_within_bounds_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "providers:\n  local: {}\nintents:\n  flows:\n"
        '    greeting: {description: hello, examples: &ex ["oi", "olá"]}\n'
        "    hello_again: {description: hello again, examples: *ex}\n",
        encoding="utf-8",
    )
    assert load_config(path).intents.flows["hello_again"].examples == ["oi", "olá"]


def test_recursive_yaml_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("llm: &a\n  fallbacks:\n    x: *a\n", encoding="utf-8")
    refused(path, "contains it")


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path: Path, suffix: str) -> None:
    depth = 5000
    path = tmp_path / f"deep{suffix}"
    body = "[" * depth + "]" * depth
    path.write_text(f"x = {body}\n" if suffix == ".toml" else f"x: {body}\n", encoding="utf-8")
    error = refused(path, "nested")
    assert "RecursionError" not in str(error)
    shallow = tmp_path / f"shallow{suffix}"
    body = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    shallow.write_text(f"x = {body}\n" if suffix == ".toml" else f"x: {body}\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(shallow)  # refused one way or the other, never a traceback


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with path.open("w", encoding="utf-8") as f:
        f.write(LOCAL)
        f.write("# " + "x" * (MAX_CONFIG_BYTES + 10) + "\n")
    refused(path, f"a config file is at most {MAX_CONFIG_BYTES:,} bytes")


def test_error_messages_quote_only_a_short_excerpt(tmp_path: Path) -> None:
    path = tmp_path / "long.toml"
    path.write_text(LOCAL + f'[llm]\nbudget_per_hour = "{"ten" * 100_000}"\n', encoding="utf-8")
    refused(path, "llm.budget_per_hour: expected a number >= 0")
    path.write_text(LOCAL + f'[llm]\nbudget_per_hour = "{"9" * 100_000}"\n', encoding="utf-8")
    refused(path, "llm.budget_per_hour: expected a finite number")  # would be inf


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    # A NaN budget compares false with every spend: it would never be exceeded.
    path = tmp_path / "director.toml"
    path.write_text(LOCAL + f"[llm]\nbudget_per_hour = {value}\n", encoding="utf-8")
    refused(path, "llm.budget_per_hour: expected")
    yaml_path = tmp_path / "long.yaml"
    yaml_path.write_text("llm: {budget_per_hour: " + "[" * 3 + "1, " * 50_000 + "]" * 3 + "}\n", encoding="utf-8")
    refused(yaml_path, "llm.budget_per_hour")
    broken = tmp_path / "broken.yaml"
    broken.write_text("llm: " + "x" * 50_000 + ": [\n", encoding="utf-8")
    refused(broken, "invalid YAML")


# -- malformed Redis URLs ----------------------------------------------------------------------
BAD_REDIS = [
    ("bad_port", "redis://localhost:99999/0", "Port out of range"),
    ("port_not_a_number", "redis://localhost:abc/0", "Port could not be cast"),
    ("bad_ipv6", "redis://[::1:6379/0", "Invalid IPv6 URL"),
    ("bad_db", "redis://localhost:6379/zero", "the path must be a database number"),
]


@pytest.mark.parametrize(("url", "expected"), [(u, e) for _, u, e in BAD_REDIS], ids=[n for n, _, _ in BAD_REDIS])
@pytest.mark.parametrize("key", ["caching.redis_url", "llm.state_redis_url"])
def test_malformed_redis_url_is_a_located_config_error(tmp_path: Path, url: str, expected: str, key: str) -> None:
    section, name = key.split(".")
    path = tmp_path / "director.toml"
    path.write_text(f'{LOCAL}[{section}]\n{name} = "{url.replace("localhost", "user:pw123456@localhost")}"\n')
    error = refused(path, f"{key}: {expected}")
    assert error.key == key and "pw123456" not in str(error)


@pytest.mark.parametrize(
    "command",
    [["check-config"], ["costs"], ["cache", "stats"], ["chat", "--once", "oi"], ["classify", "oi"], ["health"]],
)
def test_every_command_exits_2_on_a_malformed_redis_url(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "director.toml"
    path.write_text(f'{LOCAL}[caching]\nredis_url = "redis://localhost:99999"\n')
    result = CliRunner().invoke(
        app, [*command, "--config", str(path)] if command != ["check-config"] else [*command, str(path)]
    )
    assert result.exit_code == 2, result.output
    assert "caching.redis_url: Port out of range" in " ".join(result.output.split())
    assert not isinstance(result.exception, ValueError)
    as_json = CliRunner().invoke(
        app,
        [*command, "--config", str(path), "--json"] if command != ["check-config"] else [*command, str(path), "--json"],
    )
    assert as_json.exit_code == 2
    error = json.loads(as_json.stdout)["error"]
    assert error["type"] == "ConfigError" and "Port out of range" in error["message"]


def test_malformed_base_url_is_a_located_config_error(tmp_path: Path) -> None:
    path = tmp_path / "director.toml"
    path.write_text('[providers.ollama]\nmodels = ["m"]\nbase_url = "http://[::1:11434"\ntimeout_seconds = 20\n')
    error = refused(path, "providers.ollama.base_url: Invalid IPv6 URL")
    assert error.key == "providers.ollama.base_url"


# -- too many flows ------------------------------------------------------------------------------
def test_5000_flows_warn_that_the_prompt_exceeds_the_smallest_context_window(tmp_path: Path) -> None:
    flows = "".join(
        f'[intents.flows.flow_{i}]\ndescription = "The user wants thing number {i} done for them"\n'
        f'examples = ["please do thing {i}", "I need thing {i}", "thing {i} now"]\n'
        for i in range(5000)
    )
    path = tmp_path / "director.toml"
    path.write_text('[providers.openai]\nmodels = ["gpt-4o-mini"]\napi_key_env = "X_UNSET_KEY"\n' + flows)
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["check-config", str(path), "--json"])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["intents"]["prompt_tokens_estimate"] > 128_000
    warning = [p for p in report["problems"] if p["key"] == "intents.flows"]
    assert len(warning) == 1 and "openai/gpt-4o-mini accepts 128,000" in warning[0]["message"]
    assert elapsed < 60  # ~1-2 s on a quiet machine
    strict = CliRunner().invoke(app, ["check-config", str(path), "--strict"])
    assert strict.exit_code == 2


# -- secrets in a config file --------------------------------------------------------------------
def test_inline_key_is_never_printed_by_any_output(tmp_path: Path) -> None:
    key = "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3"
    path = tmp_path / "director.toml"
    path.write_text(f'[providers.openai]\nmodels = ["gpt-4o"]\napi_key = "{key}"\n')
    env = {**os.environ, "COLUMNS": "200"}
    for args in (
        ["check-config", str(path)],
        ["check-config", str(path), "--json"],
        ["classify", "oi", "--config", str(path), "--json"],
    ):
        proc = subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=90, env=env)
        assert proc.returncode == 2, proc.stderr
        assert key not in proc.stdout + proc.stderr
        assert "do not write API keys in a config file" in " ".join((proc.stdout + proc.stderr).split())
