"""Credential identity and keyed digests: what makes two configs share answers, or not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from director_llm.cache.identity import (
    SECRET_ENV,
    cache_secret,
    credential_identity,
    keyed_digest,
    provider_key_envs,
    signing_key,
)
from director_llm.cache.scope import chat_cache_key, config_namespace
from director_llm.config.loading import parse_config_text


def config(body: str) -> Any:
    return parse_config_text(body)


OPENAI = '[providers.openai]\nmodels = ["gpt-4o-mini"]\napi_key_env = "{env}"\n'


def test_identity_follows_key_values_not_variable_names() -> None:
    a = config(OPENAI.format(env="KEY_A"))
    b = config(OPENAI.format(env="KEY_B"))
    env = {"KEY_A": "sk-aaaaaaaaaaaa", "KEY_B": "sk-bbbbbbbbbbbb"}
    assert credential_identity(a, environ=env) != credential_identity(b, environ=env)
    same = {"KEY_A": "sk-aaaaaaaaaaaa", "KEY_B": "sk-aaaaaaaaaaaa"}
    assert credential_identity(a, environ=same) == credential_identity(b, environ=same)
    assert credential_identity(a, environ={}) != credential_identity(a, environ=env)  # missing key


def test_default_key_variable_of_the_kind_counts() -> None:
    cfg = config('[providers.openai]\nmodels = ["gpt-4o-mini"]\n')  # no api_key_env: OPENAI_API_KEY
    assert provider_key_envs(cfg.providers["openai"]) == ["OPENAI_API_KEY"]
    assert credential_identity(cfg, environ={"OPENAI_API_KEY": "sk-1111111111"}) != credential_identity(
        cfg, environ={"OPENAI_API_KEY": "sk-2222222222"}
    )
    local = config('[providers.ollama]\nmodels = ["llama3.2:1b"]\n')
    assert provider_key_envs(local.providers["ollama"]) == []


def test_endpoint_from_the_environment_counts_only_without_base_url() -> None:
    cfg = config('[providers.openai]\nmodels = ["gpt-4o-mini"]\n')
    env = {"OPENAI_API_KEY": "sk-1111111111"}
    assert credential_identity(cfg, environ=env) != credential_identity(
        cfg, environ={**env, "OPENAI_BASE_URL": "http://proxy.internal/v1"}
    )
    pinned = config('[providers.openai]\nmodels = ["gpt-4o-mini"]\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert credential_identity(pinned, environ=env) == credential_identity(
        pinned, environ={**env, "OPENAI_BASE_URL": "http://proxy.internal/v1"}
    )


def test_disabled_providers_do_not_count() -> None:
    cfg = config(OPENAI.format(env="KEY_A") + 'enabled = false\n[providers.local]\nkind = "local"\n')
    assert credential_identity(cfg, environ={"KEY_A": "sk-1"}) == credential_identity(cfg, environ={"KEY_A": "sk-2"})


def test_key_pools_are_a_set_of_values() -> None:
    # ``api_key_envs`` (key pools) is not in the schema yet; the identity already reads it.
    def pool(*names: str) -> Any:
        section = SimpleNamespace(
            kind="openai", enabled=True, base_url=None, api_key_env=None, api_key_envs=list(names)
        )
        return SimpleNamespace(providers={"openai": section})

    env = {"K1": "sk-one-111111", "K2": "sk-two-222222", "K3": "sk-three-33333"}
    assert credential_identity(pool("K1", "K2"), environ=env) == credential_identity(pool("K2", "K1"), environ=env)
    assert credential_identity(pool("K1", "K2"), environ=env) != credential_identity(pool("K1", "K3"), environ=env)
    assert credential_identity(pool("K1", "K2"), environ=env) != credential_identity(pool("K1"), environ=env)


def test_digests_are_keyed_by_the_secret_and_never_contain_the_value() -> None:
    value = "sk-live-0123456789abcdef"
    public = keyed_digest(value, secret=None)
    keyed = keyed_digest(value, secret=b"fleet secret")
    assert len({public, keyed, keyed_digest(value, secret=b"other")}) == 3
    assert value not in public + keyed
    assert keyed_digest(value, secret=None, purpose="a") != keyed_digest(value, secret=None, purpose="b")
    assert cache_secret({SECRET_ENV: ""}) is None and cache_secret({SECRET_ENV: "x"}) == b"x"
    assert signing_key(None) is None and signing_key(b"x") != signing_key(b"y")


def test_namespace_includes_the_credentials_but_not_the_variable_name() -> None:
    a = config(OPENAI.format(env="KEY_A"))
    b = config(OPENAI.format(env="KEY_B"))
    env = {"KEY_A": "sk-aaaaaaaaaaaa", "KEY_B": "sk-bbbbbbbbbbbb"}
    assert config_namespace(a, environ=env) != config_namespace(b, environ=env)
    assert config_namespace(a, environ={"KEY_A": "k1"}) == config_namespace(b, environ={"KEY_B": "k1"})
    assert config_namespace(a, environ=env) != config_namespace(a, environ={**env, SECRET_ENV: "s"})


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("param", ["api_key", "api_base", "extra_headers", "headers", "base_url", "organization"])
def test_chat_key_separates_per_call_credentials_without_holding_them(param: str) -> None:
    value: Any = {"Authorization": "Bearer sk-one-1111111"} if "headers" in param else "sk-one-1111111"
    other: Any = {"Authorization": "Bearer sk-two-2222222"} if "headers" in param else "sk-two-2222222"
    base = chat_cache_key(HI, group="g", params={"temperature": 0})
    one = chat_cache_key(HI, group="g", params={"temperature": 0, param: value})
    two = chat_cache_key(HI, group="g", params={"temperature": 0, param: other})
    assert len({base, one, two}) == 3
    assert one == chat_cache_key(HI, group="g", params={"temperature": 0, param: value})  # stable
    assert one != chat_cache_key(HI, group="g", params={"temperature": 0, param: value}, secret=b"s")
