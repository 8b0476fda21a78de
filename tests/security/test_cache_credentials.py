"""Answers never cross credentials (issue 13, "Answers across credentials").

Real Redis (shared, per-test namespaces cleaned up), the fake OpenAI server, which answers
with the key it was called with and rejects keys it does not know (401), like a provider.
Two tenants' configs differ only in ``api_key_env``: neither may read the other's answers.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from director_llm import Director
from director_llm.cache.director import DirectorCache
from director_llm.cache.identity import SECRET_ENV, credential_identity
from director_llm.cache.tiered import KEY_PREFIX
from director_llm.config.loading import parse_config_text
from director_llm.errors import ProviderError
from director_llm.testing import Fault, Reply
from director_llm.testing.pytest_plugin import delete_prefix

MODEL = "openai/gpt-4o-mini"
HI = [{"role": "user", "content": "what is on my private calendar?"}]
KEYS = {"TENANT_A_KEY": "sk-tenant-a-0123456789abcdef", "TENANT_B_KEY": "sk-tenant-b-fedcba9876543210"}


def tenant_oracle(request: Any) -> Reply | Fault:
    """A provider: rejects unknown keys, answers each tenant with its own private data."""
    owner = {v: k for k, v in KEYS.items()}.get(request.api_key or "")
    if owner is None:
        return Fault.status(401, "Incorrect API key provided", error_type="invalid_api_key")
    if request.body.get("response_format") or "user_message" in request.last_user_text:
        return Reply(
            json={
                "flow": "query_status",
                "confidence": 0.9,
                "reasoning": f"private to {owner}",
                "entities": {"owner": owner},
            }
        )
    return Reply(text=f"private answer for {owner}")


def config_text(base: str, *, token: str, key_env: str, redis_url: str, extra_provider: str = "") -> str:
    return textwrap.dedent(f"""
        [llm]
        num_retries = 0
        [providers.openai]
        models = ["gpt-4o-mini"]
        base_url = "{base}/v1"
        api_key_env = "{key_env}"
        {extra_provider}
        [intents]
        system_prompt = "security {token}"
        [caching]
        redis_url = "{redis_url}"
        redis_timeout_ms = 3000
        """)


@pytest.fixture
def make(fake_provider, monkeypatch, redis_url) -> Iterator[Callable[..., Director]]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    fake_provider.respond_with(None, tenant_oracle)
    token = uuid.uuid4().hex[:12]
    made: list[Director] = []

    def build(key_env: str) -> Director:
        text = config_text(fake_provider.base_url, token=token, key_env=key_env, redis_url=redis_url)
        made.append(Director(parse_config_text(text)))
        return made[-1]

    yield build
    for d in made:
        delete_prefix(redis_url, f"{KEY_PREFIX}{d.cache.namespace}:")


def layer_of(response: Any) -> str | None:
    return response._hidden_params["director_route"]["cache"]


async def test_tenants_differing_only_in_api_key_env_do_not_share_answers(make, fake_provider):
    a = make("TENANT_A_KEY")
    first = await a.acompletion(HI, model=MODEL, temperature=0)
    assert first.choices[0].message.content == "private answer for TENANT_A_KEY"
    classified = await a.classify_intent("what is on my calendar?")
    assert classified.entities == {"owner": "TENANT_A_KEY"}
    await a.aclose()  # flushes both entries to Redis
    again = make("TENANT_A_KEY")  # control: the same tenant in a new process is served by Redis
    assert layer_of(await again.acompletion(HI, model=MODEL, temperature=0)) == "redis"
    assert (await again.classify_intent("what is on my calendar?")).route.cache == "redis"
    await again.aclose()
    calls = len(fake_provider.requests)

    b = make("TENANT_B_KEY")
    assert b.cache.namespace != a.cache.namespace
    answer = await b.acompletion(HI, model=MODEL, temperature=0)
    assert layer_of(answer) is None
    assert answer.choices[0].message.content == "private answer for TENANT_B_KEY"
    mine = await b.classify_intent("what is on my calendar?")
    assert mine.route.cache is None and mine.entities == {"owner": "TENANT_B_KEY"}
    assert len(fake_provider.requests) == calls + 2
    assert {r.api_key for r in fake_provider.requests[calls:]} == {KEYS["TENANT_B_KEY"]}
    await b.aclose()


async def test_same_key_under_another_variable_name_shares(make, fake_provider, monkeypatch):
    # Identity is the key's value, not the variable's name: one account, one cache.
    monkeypatch.setenv("SAME_AS_A", KEYS["TENANT_A_KEY"])
    a = make("TENANT_A_KEY")
    await a.acompletion(HI, model=MODEL, temperature=0)
    await a.aclose()
    alias = make("SAME_AS_A")
    assert alias.cache.namespace == a.cache.namespace
    assert layer_of(await alias.acompletion(HI, model=MODEL, temperature=0)) == "redis"
    await alias.aclose()
    assert len(fake_provider.requests) == 1


async def test_a_rotated_key_starts_a_new_namespace(make, monkeypatch):
    a = make("TENANT_A_KEY")
    before = a.cache.namespace
    monkeypatch.setenv("TENANT_A_KEY", "sk-tenant-a-rotated-000000")
    assert make("TENANT_A_KEY").cache.namespace != before


async def test_a_per_call_key_the_provider_rejects_is_not_served_from_cache(make, fake_provider):
    a = make("TENANT_A_KEY")
    await a.acompletion(HI, model=MODEL, temperature=0)
    assert layer_of(await a.acompletion(HI, model=MODEL, temperature=0)) == "redis"  # (no memory layer)
    # Another valid per-call key gets its own answer, then its own cache entry.
    b_key = KEYS["TENANT_B_KEY"]
    other = await a.acompletion(HI, model=MODEL, temperature=0, api_key=b_key)
    assert layer_of(other) is None and other.choices[0].message.content == "private answer for TENANT_B_KEY"
    assert layer_of(await a.acompletion(HI, model=MODEL, temperature=0, api_key=b_key)) == "redis"
    # Headers can carry a credential too.
    headed = await a.acompletion(HI, model=MODEL, temperature=0, extra_headers={"X-Api-Key": "sk-x-999999999"})
    assert layer_of(headed) is None
    assert len(fake_provider.requests) == 3
    # Last (the 401 opens the deployment's breaker): a key the provider rejects reaches it.
    with pytest.raises(ProviderError):
        await a.acompletion(HI, model=MODEL, temperature=0, api_key="sk-stolen-or-revoked-000000")
    assert len(fake_provider.requests) == 4
    assert fake_provider.requests[-1].api_key == "sk-stolen-or-revoked-000000"
    await a.aclose()


async def test_no_key_is_stored_in_keys_or_values(make, redis_url):
    a = make("TENANT_A_KEY")
    await a.acompletion(HI, model=MODEL, temperature=0)
    await a.acompletion(HI, model=MODEL, temperature=0, api_key=KEYS["TENANT_B_KEY"])
    await a.classify_intent("what is on my calendar?")
    await a.aclose()
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}{a.cache.namespace}:*"))
        assert len(keys) == 3
        dump = b"".join(keys) + b"".join(client.get(k) or b"" for k in keys)
    finally:
        client.close()
    for secret in KEYS.values():
        assert secret.encode() not in dump
        assert secret[-12:].encode() not in dump


def test_the_cache_secret_keys_the_identity(monkeypatch):
    config = parse_config_text(
        config_text("http://127.0.0.1:9", token="t", key_env="TENANT_A_KEY", redis_url="redis://127.0.0.1:6379/0")
    )
    env = {"TENANT_A_KEY": KEYS["TENANT_A_KEY"]}
    public = DirectorCache(config, environ=env)
    keyed = DirectorCache(config, environ={**env, SECRET_ENV: "s3cret-shared-by-the-fleet"})
    other = DirectorCache(config, environ={**env, SECRET_ENV: "another-secret"})
    assert len({public.namespace, keyed.namespace, other.namespace}) == 3
    assert keyed.signed and not public.signed
    # Deterministic: two processes with the same environment agree.
    assert DirectorCache(config, environ={**env, SECRET_ENV: "s3cret-shared-by-the-fleet"}).namespace == keyed.namespace
    assert KEYS["TENANT_A_KEY"] not in credential_identity(config, environ=env)
