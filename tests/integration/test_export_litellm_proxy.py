"""`director-llm export litellm-proxy`: the exported file drives a real ``litellm.Router`` to the
fake servers, validates against LiteLLM's own config types, and holds no secret.

The LiteLLM Proxy itself cannot be installed here: ``litellm[proxy]==1.110.2`` requires
``litellm-proxy==1.110.2``, and ``pip download --no-deps litellm-proxy==1.110.2`` answers
"ERROR: Could not find a version that satisfies the requirement litellm-proxy==1.110.2
(from versions: none)". So the proof is what the proxy does with the file: it builds a
``litellm.Router(model_list=..., **router_settings)`` after resolving ``os.environ/``
references with LiteLLM's ``get_secret``, and applies ``litellm_settings`` to the module.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from director_llm import Director
from director_llm.config.loading import parse_config_text
from director_llm.export import litellm_proxy_config, litellm_proxy_yaml, required_env, unexpressed
from director_llm.testing import Fault, Reply

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "EXPORT_OPENAI_KEY": "sk-export-sentinel-openai-7d1f",
    "EXPORT_ANTHROPIC_KEY": "sk-ant-export-sentinel-93ab",
    "EXPORT_PROXY_KEY": "sk-export-sentinel-proxy-55c2",
}
REDIS_PASSWORD = "export-sentinel-redis-pw-0e1"


def config_text(base: str, *, redis: str | None = None, extra: str = "") -> str:
    text = textwrap.dedent(f"""
        [llm]
        num_retries = 0
        attempt_timeout_seconds = 3
        budget_per_day = 4.0
        [llm.circuit_breaker]
        failure_threshold = 2
        cooldown_seconds = 20
        [providers.openai]
        models = ["gpt-4o-mini", "gpt-4o"]
        base_url = "{base}/v1"
        api_key_env = "EXPORT_OPENAI_KEY"
        budget_per_day = 1.5
        [providers.anthropic]
        models = ["claude-sonnet-4-5"]
        base_url = "{base}"
        api_key_env = "EXPORT_ANTHROPIC_KEY"
        [providers.ollama]
        models = ["llama3.2:1b"]
        base_url = "{base}"
        [providers.team]
        kind = "litellm_proxy"
        base_url = "{base}/v1"
        models = ["team-model"]
        api_key_env = "EXPORT_PROXY_KEY"
        [providers.team.overrides."team-model"]
        tier = "small"
        input_price_per_million = 0.1
        output_price_per_million = 0.2
        rpm = 600
        tpm = 90000
        [providers.local]
        kind = "local"
        [intents.flows.greet]
        description = "greeting"
        examples = ["hello there", "good morning"]
        [intents.flows.out_of_scope]
        description = "anything else"
        examples = ["book a flight", "capital of Peru"]
    """)
    if redis:
        text += f'[caching]\nredis_url = "{redis}"\nmemory_size_mb = 4\n'
    return text + extra


@pytest.fixture
def secrets(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("REDIS_PASSWORD", REDIS_PASSWORD)
    return SECRETS


def _resolved(value: Any) -> Any:
    """What the proxy does to ``os.environ/`` references: LiteLLM's own ``get_secret``."""
    from litellm import get_secret

    if isinstance(value, str) and value.startswith("os.environ/"):
        return get_secret(value)
    if isinstance(value, dict):
        return {k: _resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def _router(doc: dict[str, Any]) -> Any:
    import litellm

    settings = _resolved(doc["router_settings"])
    return litellm.Router(model_list=_resolved(doc["model_list"]), **settings)


async def test_the_exported_file_drives_a_real_router_to_the_fake_servers(fake_provider, secrets, redis_url):
    cfg = parse_config_text(config_text(fake_provider.base_url, redis=redis_url))
    doc = yaml.safe_load(litellm_proxy_yaml(cfg, source="director.toml"))  # the file, as the proxy reads it
    router = _router(doc)
    # A deployment by name: the right protocol, the key from the environment.
    fake_provider.script("gpt-4o", [Reply(text="strong answer", usage=(100, 20))])
    r = await router.acompletion(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "strong answer"
    (req,) = fake_provider.requests_for("gpt-4o")
    assert req.api_key == SECRETS["EXPORT_OPENAI_KEY"]
    # The exported price is the one LiteLLM books.
    assert r._hidden_params["response_cost"] == pytest.approx(100 * 2.5e-6 + 20 * 1e-5)

    # A tier group; the litellm_proxy kind reaches an OpenAI-compatible server with its key.
    fake_provider.script("team-model", [Reply(text="from the team proxy")], repeat=True)
    fake_provider.script("llama3.2:1b", [Reply(text="from ollama")], repeat=True, protocol="ollama")
    r = await router.acompletion(model="small", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content in ("from the team proxy", "from ollama")

    # Fallbacks: every strong deployment fails -> the exported chain serves from balanced.
    fake_provider.script("gpt-4o", [Fault.status(500)], repeat=True)
    fake_provider.script("claude-sonnet-4-5", [Fault.status(500)], repeat=True)
    fake_provider.script("gpt-4o-mini", [Reply(text="balanced fallback")], repeat=True)
    r = await router.acompletion(model="strong", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "balanced fallback"
    # The shared Redis reached the Router as host and port.
    assert doc["router_settings"]["redis_host"] == "127.0.0.1"


async def test_the_exported_cache_settings_cache_through_the_real_redis(fake_provider, secrets, redis_url):
    """What the proxy does with ``litellm_settings`` ``cache: true`` and ``cache_params``:
    ``litellm.cache = Cache(**cache_params)``, then ``router.cache_responses = True``."""
    import uuid

    import litellm
    from litellm.caching.caching import Cache

    text = config_text(fake_provider.base_url, redis=redis_url).replace("memory_size_mb = 4", "ttl_seconds = 30")
    doc = yaml.safe_load(litellm_proxy_yaml(parse_config_text(text)))
    settings = _resolved(doc["litellm_settings"])
    assert settings["cache"] is True
    router = _router(doc)
    fake_provider.script("gpt-4o-mini", [Reply(text="cache me")], repeat=True)
    messages = [{"role": "user", "content": f"export cache test {uuid.uuid4().hex}"}]
    previous = litellm.cache
    litellm.cache = Cache(**settings["cache_params"])
    router.cache_responses = True
    try:
        first = await router.acompletion(model="openai/gpt-4o-mini", messages=messages)
        for _ in range(50):  # LiteLLM writes the cache in the background
            second = await router.acompletion(model="openai/gpt-4o-mini", messages=messages)
            if second._hidden_params.get("cache_hit"):
                break
            await asyncio.sleep(0.1)
    finally:
        litellm.cache = previous
    assert first.choices[0].message.content == second.choices[0].message.content == "cache me"
    assert second._hidden_params.get("cache_hit") is True


async def test_the_litellm_proxy_kind_via_the_router(fake_provider, secrets):
    cfg = parse_config_text(config_text(fake_provider.base_url))
    router = _router(litellm_proxy_config(cfg))
    fake_provider.script("team-model", [Reply(text="proxied", usage=(10, 5))])
    r = await router.acompletion(model="team/team-model", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "proxied"
    (req,) = fake_provider.requests_for("team-model")
    assert req.protocol == "openai" and req.api_key == SECRETS["EXPORT_PROXY_KEY"]


def test_the_file_validates_against_litellm_config_types(fake_provider, secrets):
    import litellm
    from litellm.caching.caching import Cache, LiteLLMCacheType
    from litellm.proxy._types import ConfigYAML
    from litellm.types.router import Deployment, LiteLLM_Params, UpdateRouterConfig
    from litellm.types.utils import BudgetConfig

    cfg = parse_config_text(config_text(fake_provider.base_url, redis="redis://:pw@127.0.0.1:6379/0"))
    doc = yaml.safe_load(litellm_proxy_yaml(cfg))
    # The proxy's own document type (litellm.proxy._types ships with the core package).
    ConfigYAML.model_validate(doc)
    for entry in doc["model_list"]:
        Deployment(
            model_name=entry["model_name"],
            litellm_params=LiteLLM_Params(**entry["litellm_params"]),
            model_info=entry["model_info"],
        )
    ids = [e["model_info"]["id"] for e in doc["model_list"]]
    assert len(ids) == len(set(ids))
    rs = doc["router_settings"]
    UpdateRouterConfig.model_validate(rs)
    router_params = set(inspect.signature(litellm.Router.__init__).parameters)
    assert set(rs) <= router_params, set(rs) - router_params
    for budget in rs["provider_budget_config"].values():
        BudgetConfig(**budget)
    ls = doc["litellm_settings"]
    # The proxy sets litellm_settings on the litellm module; cache/cache_params build a Cache.
    assert all(hasattr(litellm, k) for k in ls if k not in ("cache", "cache_params")), ls
    params = dict(ls["cache_params"])
    assert params.pop("type") in {t.value for t in LiteLLMCacheType}
    assert set(params) <= set(inspect.signature(Cache.__init__).parameters)


def test_what_the_export_says(fake_provider, secrets):
    cfg = parse_config_text(config_text(fake_provider.base_url, redis="redis://:pw@127.0.0.1:6379"))
    doc = litellm_proxy_config(cfg)
    names = [e["model_name"] for e in doc["model_list"]]
    # Each LLM deployment as its tier and by name; no local tier.
    assert names.count("openai/gpt-4o") == 1 and "strong" in names and "local" not in names
    assert not any("local/" in n for n in names)
    entry = next(e for e in doc["model_list"] if e["model_name"] == "team/team-model")
    p = entry["litellm_params"]
    assert p["model"] == "litellm_proxy/team-model" and p["api_base"].endswith("/v1")
    assert p["api_key"] == "os.environ/EXPORT_PROXY_KEY"
    assert (p["rpm"], p["tpm"]) == (600, 90000)
    assert p["input_cost_per_token"] == pytest.approx(0.1e-6) and p["output_cost_per_token"] == pytest.approx(0.2e-6)
    rs = doc["router_settings"]
    assert rs["allowed_fails"] == 1 and rs["cooldown_time"] == 20
    assert rs["redis_password"] == "os.environ/REDIS_PASSWORD"
    assert {"strong": ["balanced", "small"]} in rs["fallbacks"]
    assert rs["provider_budget_config"] == {"openai": {"max_budget": 1.5, "budget_duration": "1d"}}
    ls = doc["litellm_settings"]
    assert ls["max_budget"] == 4.0 and ls["budget_duration"] == "1d"
    assert ls["cache"] is True and ls["cache_params"]["type"] == "redis"
    assert required_env(cfg) == ["EXPORT_OPENAI_KEY", "EXPORT_ANTHROPIC_KEY", "EXPORT_PROXY_KEY", "REDIS_PASSWORD"]
    notes = " ".join(unexpressed(cfg))
    assert "local tier" in notes and "reserves the worst case" in notes and "strategy" in notes


def test_a_key_pool_becomes_one_entry_per_key(fake_provider, secrets):
    cfg = parse_config_text(config_text(fake_provider.base_url))
    # ``api_key_envs`` (key pools) is read with getattr: set it as a later config version would.
    object.__setattr__(cfg.providers["anthropic"], "api_key_envs", ["POOL_KEY_A", "POOL_KEY_B"])
    entries = [e for e in litellm_proxy_config(cfg)["model_list"] if e["model_name"] == "anthropic/claude-sonnet-4-5"]
    assert [e["litellm_params"]["api_key"] for e in entries] == ["os.environ/POOL_KEY_A", "os.environ/POOL_KEY_B"]
    assert len({e["model_info"]["id"] for e in entries}) == 2


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "director_llm", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def test_the_cli_export_holds_no_secret_and_writes_the_file(fake_provider, tmp_path):
    path = tmp_path / "director.toml"
    path.write_text(
        config_text(fake_provider.base_url, redis=f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"), encoding="utf-8"
    )
    env = {**SECRETS, "REDIS_PASSWORD": REDIS_PASSWORD}
    proc = _cli("export", "litellm-proxy", "--config", str(path), env=env)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "config.yaml"
    proc2 = _cli("export", "litellm-proxy", "--config", str(path), "--out", str(out), env=env)
    assert proc2.returncode == 0, proc2.stderr
    assert out.read_text(encoding="utf-8") == proc.stdout
    for text in (proc.stdout, proc.stderr, proc2.stdout, proc2.stderr):
        for secret in [*SECRETS.values(), REDIS_PASSWORD]:
            assert secret not in text
    assert proc.stdout.startswith("# LiteLLM Proxy config")
    assert "os.environ/EXPORT_OPENAI_KEY" in proc.stdout and "os.environ/REDIS_PASSWORD" in proc.stdout
    assert "wrote" in proc2.stderr


def test_the_cli_export_of_a_bad_config_is_a_located_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[llm]\nbudget_per_hour = "ten"\n[providers.openai]\nmodels = ["gpt-4o"]\n', encoding="utf-8")
    proc = _cli("export", "litellm-proxy", "--config", str(path), env={})
    assert proc.returncode == 2
    assert "llm.budget_per_hour" in proc.stderr and "Traceback" not in proc.stderr


def test_the_export_does_not_import_litellm(fake_provider):
    code = (
        "import sys; from director_llm.config.loading import parse_config_text; "
        "from director_llm.export import litellm_proxy_yaml; "
        f"litellm_proxy_yaml(parse_config_text({config_text(fake_provider.base_url)!r})); "
        "print('litellm' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout.strip() == "False", proc.stderr


async def test_director_with_a_litellm_proxy_provider(fake_provider, secrets):
    text = textwrap.dedent(f"""
        [providers.team]
        kind = "litellm_proxy"
        base_url = "{fake_provider.base_url}/v1"
        models = ["team-model"]
        api_key_env = "EXPORT_PROXY_KEY"
        [providers.open]
        kind = "litellm_proxy"
        base_url = "{fake_provider.base_url}/v1"
        models = ["open-model"]
    """)
    async with Director(parse_config_text(text)) as d:
        assert d.providers["team/team-model"].litellm_model == "litellm_proxy/team-model"
        fake_provider.script("team-model", [Reply(text="via the proxy", usage=(10, 5))])
        response = await d.acompletion([{"role": "user", "content": "hi"}], model="team/team-model")
        assert response.choices[0].message.content == "via the proxy"
        assert d.route_of(response).deployment == "team/team-model"
        (req,) = fake_provider.requests_for("team-model")
        assert req.protocol == "openai" and req.api_key == SECRETS["EXPORT_PROXY_KEY"]
        # A proxy without auth needs no key env (like any OpenAI-compatible server).
        fake_provider.script("open-model", [Reply(text="open")])
        response = await d.acompletion([{"role": "user", "content": "hi"}], model="open/open-model")
        assert response.choices[0].message.content == "open"
        assert repr(d).count(SECRETS["EXPORT_PROXY_KEY"]) == 0


def test_check_config_shows_a_litellm_proxy_provider(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(
        '[providers.proxy]\nkind = "litellm_proxy"\nbase_url = "http://localhost:4000"\nmodels = ["team-model"]\n',
        encoding="utf-8",
    )
    proc = _cli("check-config", str(path), "--json", env={})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"litellm_model": "litellm_proxy/team-model"' in proc.stdout and '"kind": "litellm_proxy"' in proc.stdout
    path.write_text('[providers.proxy]\nkind = "litellm_proxy"\nmodels = ["team-model"]\n', encoding="utf-8")
    proc = _cli("check-config", str(path), env={})
    assert proc.returncode == 2
    assert 'providers.proxy.base_url: required for kind = "litellm_proxy"' in proc.stderr


def test_credentials_in_a_base_url_are_an_environment_reference(fake_provider):
    """A ``base_url`` holding credentials (userinfo, ``?api_key=``) is never written out: the
    file reads the whole URL from an environment variable the header names."""
    from director_llm.export import base_url_env, litellm_proxy_yaml, required_env

    secret_url = "https://team:pw-SENTINEL-0123456789@gw.example/v1?api_key=qs-SENTINEL-0123456789"
    text = f"""
[providers.gateway]
kind = "openai_compatible"
base_url = "{secret_url}"
models = ["gw-model"]
[providers.gateway.overrides.gw-model]
input_price_per_million = 1.0
output_price_per_million = 2.0
"""
    cfg = parse_config_text(text)
    exported = litellm_proxy_yaml(cfg)
    assert "SENTINEL" not in exported
    assert f"os.environ/{base_url_env('gateway')}" in exported
    assert base_url_env("gateway") in required_env(cfg)
