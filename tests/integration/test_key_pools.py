"""API key pools through real HTTP (the fake provider answers by the key it receives):
a 401 key leaves the pool and the others keep serving, a 429 key cools down by its
Retry-After and comes back, reload_keys() and SIGHUP pick up a changed variable, spend()
and health() show the keys by NAME, and no key value appears in any of them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap

import pytest

from director_llm.config.loading import parse_config_text
from director_llm.director import Director
from director_llm.errors import ConfigError, ProviderError
from director_llm.streaming import StreamEnd
from director_llm.testing import Fault, Reply

ASK = [{"role": "user", "content": "oi, tudo bem?"}]
NAMES = ("TEST_POOL_KEY_A", "TEST_POOL_KEY_B", "TEST_POOL_KEY_C")
VALUES = {n: f"sk-pool-{n[-1].lower()}-0123456789abcdef" for n in NAMES}
A, B, C = (VALUES[n] for n in NAMES)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in VALUES.items():
        monkeypatch.setenv(name, value)


def pool_config(base: str, names: tuple[str, ...] = NAMES, *, single: bool = False, threshold: int = 3) -> str:
    key_line = f'api_key_env = "{names[0]}"' if single else f"api_key_envs = {json.dumps(list(names))}"
    return textwrap.dedent(f"""
        [llm]
        num_retries = 0
        [llm.circuit_breaker]
        failure_threshold = {threshold}
        [providers.openai]
        models = ["pool-model"]
        base_url = "{base}/v1"
        {key_line}
        tier = "balanced"
        [providers.openai.overrides.pool-model]
        input_price_per_million = 1.0
        output_price_per_million = 2.0
    """)


def no_values(*texts: str) -> None:
    for text in texts:
        for value in VALUES.values():
            assert value not in text


async def test_a_401_key_is_dropped_and_the_others_keep_serving(fake_provider) -> None:
    fake_provider.set_default(Reply("ok", usage=(10, 5)))
    fake_provider.script(None, Fault.status(401, "Incorrect API key provided"), api_key=A, repeat=True)
    async with Director(parse_config_text(pool_config(fake_provider.base_url))) as d:
        results = [await d.acompletion(ASK) for _ in range(12)]
        routes = [Director.route_of(r) for r in results]
        health = await d.health()
        report = await d.spend()
        pools = d.key_pools()
    assert all(r.choices[0].message.content == "ok" for r in results)  # 0 failed requests
    assert len(fake_provider.requests_with_key(A)) == 1  # refused once, then out of the pool
    assert len(fake_provider.requests_with_key(B)) + len(fake_provider.requests_with_key(C)) == 12
    assert abs(len(fake_provider.requests_with_key(B)) - len(fake_provider.requests_with_key(C))) <= 1  # spread
    first = routes[0]
    assert first.attempts[0].status_code == 401 and "TEST_POOL_KEY_A" in first.attempts[0].message
    assert first.deployment == "openai/pool-model" and first.calls == 2
    assert d.breaker.state("openai/pool-model") == "closed"  # a pool key's 401 is not the deployment's
    keys = health["openai/pool-model"]["keys"]
    assert keys["TEST_POOL_KEY_A"] == {"state": "dropped", "status": 401}
    assert keys["TEST_POOL_KEY_B"]["state"] == keys["TEST_POOL_KEY_C"]["state"] == "ok"
    assert pools["openai"]["TEST_POOL_KEY_A"]["state"] == "dropped"
    # spend(): per key NAME, never a value; the keys' requests add up to the calls answered.
    assert set(report.keys) == set(NAMES)
    assert report.keys["TEST_POOL_KEY_A"].requests == 0
    assert report.keys["TEST_POOL_KEY_B"].requests + report.keys["TEST_POOL_KEY_C"].requests == 12
    assert report.keys["TEST_POOL_KEY_B"].prompt_tokens > 0 and report.keys["TEST_POOL_KEY_B"].cost_usd > 0
    no_values(json.dumps(health), json.dumps(report.to_dict()), json.dumps(pools), repr(d.keys), repr(routes))


async def test_a_stream_moves_to_the_next_key_before_its_first_token(fake_provider) -> None:
    fake_provider.set_default(Reply("streamed fine"))
    fake_provider.script(None, Fault.status(403, "key revoked"), api_key=A, repeat=True)
    async with Director(parse_config_text(pool_config(fake_provider.base_url, NAMES[:2]))) as d:
        for _ in range(3):
            chunks = [c async for c in d.stream_response(ASK)]
            end = chunks[-1]
            assert isinstance(end, StreamEnd) and "".join(c.text for c in chunks[:-1]) == "streamed fine"
        assert d.key_pools()["openai"]["TEST_POOL_KEY_A"]["state"] == "dropped"
    assert len(fake_provider.requests_with_key(A)) == 1 and len(fake_provider.requests_with_key(B)) == 3


async def test_a_429_key_cools_down_by_its_retry_after_then_serves_again(fake_provider) -> None:
    fake_provider.set_default(Reply("ok"))
    fake_provider.script(None, [Fault.rate_limited(retry_after=3)], api_key=A, then=Reply("a is back"))
    cfg = pool_config(fake_provider.base_url, NAMES[:2])
    async with Director(parse_config_text(cfg)) as d:
        first = Director.route_of(await d.acompletion(ASK))
        assert first.attempts[0].status_code == 429 and first.deployment == "openai/pool-model"
        state = d.key_pools()["openai"]["TEST_POOL_KEY_A"]
        assert state["state"] == "cooling" and 0 < state["cooling_s"]["openai/pool-model"] <= 3
        results = [await d.acompletion(ASK) for _ in range(4)]
        if d.key_pools()["openai"]["TEST_POOL_KEY_A"]["state"] == "cooling":  # still within its 3 s
            assert len(fake_provider.requests_with_key(A)) == 1  # the others served meanwhile
        assert all(r.choices[0].message.content == "ok" for r in results)
        assert d.breaker.state("openai/pool-model") == "closed"
        for _ in range(100):  # until the cool-down is over (3 s), bounded
            if d.key_pools()["openai"]["TEST_POOL_KEY_A"]["state"] == "ok":
                break
            await asyncio.sleep(0.1)
        texts = [(await d.acompletion(ASK)).choices[0].message.content for _ in range(4)]
    assert "a is back" in texts  # key A serves again after its Retry-After


async def test_reload_keys_picks_up_a_changed_variable(fake_provider, monkeypatch) -> None:
    fake_provider.set_default(Reply("ok"))
    fake_provider.script(None, Fault.status(401), api_key=A, repeat=True)
    new_a = "sk-pool-a-rotated-fedcba9876543210"
    async with Director(parse_config_text(pool_config(fake_provider.base_url, NAMES[:2]))) as d:
        for _ in range(3):
            await d.acompletion(ASK)
        assert d.key_pools()["openai"]["TEST_POOL_KEY_A"]["state"] == "dropped"
        monkeypatch.setenv("TEST_POOL_KEY_A", new_a)
        monkeypatch.delenv("TEST_POOL_KEY_B")
        changes = d.reload_keys()
        assert changes == {"openai": {"TEST_POOL_KEY_A": "changed", "TEST_POOL_KEY_B": "removed"}}
        for _ in range(3):
            await d.acompletion(ASK)
        states = d.key_pools()["openai"]
        assert states["TEST_POOL_KEY_A"]["state"] == "ok" and states["TEST_POOL_KEY_B"]["state"] == "missing"
        no_values(json.dumps(changes), json.dumps(states))
        assert new_a not in json.dumps(states)
    assert len(fake_provider.requests_with_key(new_a)) == 3  # the rotated key, read at attempt time


async def test_sighup_reloads_the_keys(fake_provider, monkeypatch) -> None:
    fake_provider.set_default(Reply("ok"))
    rotated = "sk-pool-b-after-sighup-00000000"
    async with Director(parse_config_text(pool_config(fake_provider.base_url, NAMES[:2]))) as d:
        assert d.install_sighup_handler() is True
        try:
            monkeypatch.setenv("TEST_POOL_KEY_B", rotated)
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(50):
                await asyncio.sleep(0.02)
                for _ in range(2):
                    await d.acompletion(ASK)
                if fake_provider.requests_with_key(rotated):
                    break
        finally:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    assert fake_provider.requests_with_key(rotated)


async def test_a_single_key_stays_and_the_breaker_decides_as_before(fake_provider) -> None:
    fake_provider.script(None, Fault.status(401), api_key=A, repeat=True)
    cfg = pool_config(fake_provider.base_url, single=True, threshold=1)
    async with Director(parse_config_text(cfg)) as d:
        with pytest.raises(ProviderError) as caught:
            await d.acompletion(ASK)
        assert d.breaker.state("openai/pool-model") == "open"
        assert d.key_pools()["openai"]["TEST_POOL_KEY_A"] == {
            "state": "rejected",
            "status": 401,
            "in_flight": 0,
            "requests": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
            "failures": 1,
        }
    assert "TEST_POOL_KEY_A" in str(caught.value)
    no_values(str(caught.value), repr(caught.value))


async def test_every_key_refused_the_last_one_goes_to_the_breaker(fake_provider) -> None:
    fake_provider.set_default(Fault.status(401))
    async with Director(parse_config_text(pool_config(fake_provider.base_url, threshold=1))) as d:
        with pytest.raises(ProviderError):
            await d.acompletion(ASK)
        states = {n: s["state"] for n, s in d.key_pools()["openai"].items()}
    assert sorted(states.values()) == ["dropped", "dropped", "rejected"]
    assert len(fake_provider.requests) == 3  # each key once, then the deployment's breaker


async def test_health_probe_checks_each_key_of_the_pool(fake_provider) -> None:
    fake_provider.set_default(Reply("pong"))
    fake_provider.script(None, Fault.status(401), api_key=B, repeat=True)
    async with Director(parse_config_text(pool_config(fake_provider.base_url))) as d:
        health = await d.health(probe=True)
    entry = health["openai/pool-model"]
    assert entry["probe"]["ok"] is True
    assert entry["keys"]["TEST_POOL_KEY_B"] == {"state": "dropped", "status": 401}
    assert {fake_provider.requests[i].api_key for i in range(3)} == {A, B, C}
    no_values(json.dumps(health))


def test_config_refuses_both_settings_and_values_in_place_of_names() -> None:
    both = 'api_key_env = "OPENAI_KEY_A"\napi_key_envs = ["OPENAI_KEY_B"]'
    with pytest.raises(ConfigError, match="api_key_envs"):
        parse_config_text(f'[providers.openai]\nmodels = ["gpt-4o"]\n{both}\n')
    pasted = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    with pytest.raises(ConfigError) as caught:
        parse_config_text(f'[providers.openai]\nmodels = ["gpt-4o"]\napi_key_envs = ["OK_NAME", "{pasted}"]\n')
    assert pasted not in str(caught.value) and "item 1" in str(caught.value)
    with pytest.raises(ConfigError, match="more than once"):
        parse_config_text('[providers.openai]\nmodels = ["gpt-4o"]\napi_key_envs = ["K_A", "K_A"]\n')
    with pytest.raises(ConfigError):
        parse_config_text('[providers.openai]\nmodels = ["gpt-4o"]\napi_key_envs = []\n')


async def test_concurrent_requests_all_served_while_a_key_is_refused(fake_provider) -> None:
    fake_provider.set_default(Reply("ok", delay=0.05))
    fake_provider.script(None, Fault.status(401), api_key=B, repeat=True)
    async with Director(parse_config_text(pool_config(fake_provider.base_url))) as d:
        results = await asyncio.gather(*(d.acompletion(ASK) for _ in range(30)), return_exceptions=True)
        states = {n: s["state"] for n, s in d.key_pools()["openai"].items()}
        report = await d.spend()
    assert [r for r in results if isinstance(r, BaseException)] == []  # 0 failed requests
    assert states == {"TEST_POOL_KEY_A": "ok", "TEST_POOL_KEY_B": "dropped", "TEST_POOL_KEY_C": "ok"}
    # B was refused only by the calls that took it before its first 401 came back.
    assert len(fake_provider.requests_with_key(B)) <= 10
    assert report.keys["TEST_POOL_KEY_A"].requests + report.keys["TEST_POOL_KEY_C"].requests == 30
    assert d.breaker.state("openai/pool-model") == "closed"


async def test_classification_uses_the_pool_too(fake_provider) -> None:
    good = {"flow": "greeting", "confidence": 0.93, "reasoning": "a greeting", "entities": {}}
    fake_provider.set_default(Reply(json=good))
    fake_provider.script(None, Fault.status(401), api_key=A, repeat=True)
    async with Director(parse_config_text(pool_config(fake_provider.base_url, NAMES[:2]))) as d:
        results = [await d.classify_intent(f"oi {i}", cache=False) for i in range(3)]
        report = await d.spend()
    assert [r.flow for r in results] == ["greeting"] * 3
    assert len(fake_provider.requests_with_key(A)) == 1
    assert report.keys["TEST_POOL_KEY_B"].requests == 3


async def test_an_echoed_key_never_reaches_the_route_or_the_error(fake_provider, monkeypatch) -> None:
    # Variable names without KEY/TOKEN/SECRET: the generic redactor would not know them.
    cred = {"TENANT_CRED_ONE": "tenant-cred-one-0123456789", "TENANT_CRED_TWO": "tenant-cred-two-0123456789"}
    for name, value in cred.items():
        monkeypatch.setenv(name, value)
    for value in cred.values():
        fake_provider.script(
            None, Fault.status(401, f"Incorrect API key provided: {value}"), api_key=value, repeat=True
        )
    cfg = pool_config(fake_provider.base_url, tuple(cred), threshold=1)
    async with Director(parse_config_text(cfg)) as d:
        with pytest.raises(ProviderError) as caught:
            await d.acompletion(ASK)
        health = await d.health()
    text = str(caught.value) + repr(caught.value) + repr(caught.value.route) + json.dumps(health)
    # The configured secrets are redacted where the error is made (config.secrets); the
    # attempt still names the key that failed, by its variable name.
    assert "Incorrect API key provided: [REDACTED]" in text
    assert "TENANT_CRED_ONE" in text and "TENANT_CRED_TWO" in text
    assert all(value not in text for value in cred.values())


async def test_a_rotated_key_is_redacted_too(fake_provider, monkeypatch) -> None:
    """``reload_keys`` takes the new values into the redaction as well as into the pool (names
    without KEY/TOKEN/SECRET/CRED: only the config's own list of secrets knows them)."""
    from director_llm.errors import redact

    names = ("TENANT_ALPHA", "TENANT_BETA")
    for name in names:
        monkeypatch.setenv(name, f"first-value-of-{name.lower()}-0123")
    fake_provider.set_default(Reply("ok"))
    async with Director(parse_config_text(pool_config(fake_provider.base_url, names))) as d:
        rotated = "plainnewvalue0123456789"  # no generic key pattern matches it
        monkeypatch.setenv(names[1], rotated)
        assert rotated in redact(f"echo {rotated}")  # not a configured secret yet
        assert d.reload_keys()["openai"][names[1]] == "changed"
        assert rotated not in redact(f"echo {rotated}")
