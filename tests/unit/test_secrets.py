"""``director_llm.config.secrets`` and the URL helpers: what counts as a secret, how it is masked."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.config.secrets import (
    SecretScope,
    config_secrets,
    key_env_names,
    key_value_problem,
    looks_like_key,
    name_field_problems,
    redact_data,
)
from director_llm.config.urls import redact_url, redacted_url, shown, url_secrets
from director_llm.errors import ConfigError, redact

SECTION = '[providers.a]\nkind = "openai_compatible"\nmodels = ["m"]\nbase_url = "http://h.example/v1"\n'


@pytest.mark.parametrize(
    "value",
    [
        "sk-proj-Abc123def456",
        "sk_live_51HxYzAbCdEf0123",
        "sk-ant-api03-abcdefgh",
        "AIzaSyD3abcdefghijklmnop",
        "ghp_0123456789abcdefABCDEF",
        "a3f9c2e1b4d5a6f7e8d9c0b1a2f3e4d5",
        "abcDEF123ghiJKL456mnoPQR789",
        "tenant-key.with.dots-0123",
    ],
)
def test_keys_in_name_fields_are_recognised(value: str) -> None:
    assert looks_like_key(value)


@pytest.mark.parametrize(
    "value", ["OPENAI_API_KEY", "TENANT_CRED", "DATABASE_URL", "GEMINI_API_KEY_2", "openai_api_key", "MY_KEY"]
)
def test_variable_names_are_not_keys(value: str) -> None:
    assert not looks_like_key(value)


def test_url_credentials_are_found_and_masked() -> None:
    url = "https://user:p%40ss-word@h.example/v1?api_key=QKEY123&model=x&sig=SIG456"
    assert set(url_secrets(url)) == {"p%40ss-word", "p@ss-word", "QKEY123", "SIG456"}
    assert redact_url(url) == "https://user:***@h.example/v1?api_key=***&model=x&sig=***"
    assert url_secrets("https://TOKEN123@h/x") == ["TOKEN123"]
    assert redacted_url("redis://u:pw@h:6379/0?x=1") == "redis://h:6379/0"
    assert redacted_url("redis://[::1:6379") == "<invalid url>"  # never raises
    assert "pw" not in shown("http://u:pw@h/?token=abc")


def test_url_and_dsn_values_are_not_keys() -> None:
    message = key_value_problem("DATABASE_URL", "postgres://app:secretpw@db/app")
    assert message is not None and "$DATABASE_URL holds a postgres:// URL" in message
    assert "secretpw" not in message
    assert key_value_problem("DB", "app:secretpw@db.internal") is not None
    assert key_value_problem("OPENAI_API_KEY", "sk-proj-abc123") is None
    assert key_value_problem("X", None) is None


def test_key_pools_are_read_whatever_the_config_version() -> None:
    pool = SimpleNamespace(api_key_envs=["POOL_A", "POOL_B"], api_key_env=None, kind="openai")
    assert key_env_names(pool) == ["POOL_A", "POOL_B"]  # type: ignore[arg-type]
    single = SimpleNamespace(api_key_env="TENANT_CRED", kind="openai")
    assert key_env_names(single) == ["TENANT_CRED"]  # type: ignore[arg-type]
    assert key_env_names(SimpleNamespace(api_key_env=None, kind="openai")) == ["OPENAI_API_KEY"]  # type: ignore[arg-type]
    assert key_env_names(SimpleNamespace(api_key_env=None, kind="ollama")) == []  # type: ignore[arg-type]


CONFIG = """
[providers.a]
kind = "openai_compatible"
models = ["m"]
api_key_env = "TENANT_CRED"
base_url = "https://u:url-password-1@a.example/v1?token=url-token-22"
[providers.b]
kind = "anthropic"
models = ["claude-3-5-haiku-latest"]
enabled = false
[caching]
redis_url = "redis://:redis-password-3@127.0.0.1:6379/0"
"""


def test_config_secrets_cover_keys_urls_and_disabled_providers() -> None:
    cfg = parse_config_text(CONFIG)
    env = {"TENANT_CRED": "tenant-value-0001", "ANTHROPIC_API_KEY": "anthropic-value-02", "OTHER": "x" * 20}
    found = config_secrets(cfg, environ=env)
    assert {"tenant-value-0001", "anthropic-value-02", "url-password-1", "url-token-22", "redis-password-3"} <= found
    assert "x" * 20 not in found
    # Placeholders are not secrets (replacing them everywhere would mangle messages).
    assert "not-needed" not in config_secrets(cfg, environ={"TENANT_CRED": "not-needed"})


def test_a_scope_registers_and_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_TENANT_X", "acme-value-4711-zz")
    cfg = parse_config_text(SECTION + 'api_key_env = "ACME_TENANT_X"\n')
    assert "acme-value-4711-zz" in redact("got acme-value-4711-zz")
    scope = SecretScope(cfg)
    try:
        assert redact("got acme-value-4711-zz") == "got [REDACTED]"
        assert str(ConfigError("bad acme-value-4711-zz")) == "bad [REDACTED]"
        assert redact_data({"k": ["acme-value-4711-zz", 3]}) == {"k": ["[REDACTED]", 3]}
        assert any(type(f).__name__ == "RedactingFilter" for f in logging.getLogger("LiteLLM").filters)
    finally:
        scope.close()
    scope.close()  # twice is fine
    assert "acme-value-4711-zz" in redact("got acme-value-4711-zz")


def test_pasted_keys_and_dsns_are_located_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw-123456@db/app")
    cfg = parse_config_text(SECTION + 'api_key_env = "DATABASE_URL"\n')
    problems = name_field_problems(cfg)
    assert [(p.level, p.key) for p in problems] == [("warning", "providers.a.api_key_env")]
    assert "pw-123456" not in problems[0].message
    with pytest.raises(ConfigError) as info:
        parse_config_text(SECTION + 'api_key_env = "sk_live_0123abcdEFGH"\n')
    assert "providers.a.api_key_env" in str(info.value) and "sk_live_0123abcdEFGH" not in str(info.value)
    assert all("sk_live_0123abcdEFGH" not in p for p in info.value.problems)


def test_redact_keeps_ordinary_text() -> None:
    text = 'api_key_env = "OPENAI_API_KEY" at https://example.com/a?b=c&page=2'
    assert redact(text) == text
    assert redact("https://u:pw@h/x?api_key=abc123456&q=1") == "https://u:[REDACTED]@h/x?api_key=[REDACTED]&q=1"
