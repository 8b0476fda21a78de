"""Config loading: the seed sample, TOML/YAML equivalence, and bad files with clear messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from director_llm import ConfigError, DirectorConfig, load_config
from director_llm.config.loading import parse_config_text
from director_llm.config.semantics import check_semantics, resolve_fallbacks
from director_llm.providers import build_deployments, tiers_in_use

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "configs" / "examples" / "seed.toml"


def test_seed_sample_loads_unchanged():
    cfg = load_config(SEED)
    assert cfg.llm.budget_per_hour == 10.0
    assert cfg.llm.default_strategy == "adaptive"
    assert cfg.providers["ollama"].models == ["mistral-director", "llama3.2:1b"]
    assert cfg.providers["gemini"].use_openai_compatibility is True
    assert cfg.caching.memory_size_mb == 100
    assert cfg.caching.redis_url == "redis://localhost:6379"
    names = [d.name for d in build_deployments(cfg)]
    assert names == [
        "ollama/mistral-director",
        "ollama/llama3.2:1b",
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "gemini/gemini-2.0-flash",
        "gemini/gemini-2.0-flash-thinking",
    ]


def test_seed_sample_is_the_design_documents_sample():
    seed_doc = ROOT.parent / "shared" / "seed"
    docs = sorted(seed_doc.glob("*.decoded.md")) if seed_doc.exists() else []
    if not docs:
        pytest.skip("shared/seed is not next to the checkout")
    text = docs[0].read_text(encoding="utf-8")
    sample = text.split("# config/director.toml\n", 1)[1].split("```", 1)[0]
    cfg = parse_config_text(sample, source="seed")
    assert cfg == load_config(SEED)


def test_default_config_loads_and_is_offline():
    cfg = load_config(ROOT / "configs" / "director.toml")
    deployments = build_deployments(cfg)
    assert deployments, "the default config must have the embedded local tier"
    assert all(d.provider_type == "local" and d.key_status() == "not needed" for d in deployments)
    assert all(p.level != "error" for p in check_semantics(cfg))


@pytest.mark.parametrize("example", sorted((ROOT / "configs" / "examples").glob("*.*")), ids=lambda p: p.name)
def test_every_example_config_loads(example: Path):
    assert isinstance(load_config(example), DirectorConfig)


def test_toml_and_yaml_are_one_schema(tmp_path: Path):
    toml = tmp_path / "c.toml"
    yaml_ = tmp_path / "c.yaml"
    toml.write_text(SEED.read_text())
    yaml_.write_text(
        textwrap.dedent("""
        llm:
          budget_per_hour: 10.0
          default_strategy: adaptive
        providers:
          ollama:
            enabled: true
            models: [mistral-director, "llama3.2:1b"]
            base_url: http://localhost:11434
          openai:
            enabled: true
            models: [gpt-4o, gpt-4o-mini]
            api_key_env: OPENAI_API_KEY
          gemini:
            enabled: true
            models: [gemini-2.0-flash, gemini-2.0-flash-thinking]
            api_key_env: GEMINI_API_KEY
            use_openai_compatibility: true
        caching:
          memory_size_mb: 100
          redis_url: redis://localhost:6379
          disk_cache_path: /tmp/director_cache
          ttl_seconds: 3600
    """)
    )
    assert load_config(toml) == load_config(yaml_)


def test_provider_kinds_translate_to_litellm_models():
    cfg = parse_config_text(
        textwrap.dedent("""
        [providers.ollama]
        models = ["llama3.2:1b"]
        [providers.openai]
        models = ["gpt-4o"]
        [providers.gemini]
        models = ["gemini-2.0-flash"]
        [providers.gemini_compat]
        kind = "gemini"
        use_openai_compatibility = true
        models = ["gemini-2.0-flash"]
        [providers.anthropic]
        models = ["claude-sonnet-4-5"]
        [providers.llamacpp]
        kind = "openai_compatible"
        base_url = "http://127.0.0.1:8080/v1"
        models = ["smollm2"]
        [providers.local]
    """)
    )
    by_name = {d.name: d for d in build_deployments(cfg)}
    assert by_name["ollama/llama3.2:1b"].litellm_model == "ollama_chat/llama3.2:1b"
    assert by_name["ollama/llama3.2:1b"].base_url == "http://localhost:11434"
    assert by_name["openai/gpt-4o"].litellm_model == "openai/gpt-4o"
    assert by_name["openai/gpt-4o"].tier == "strong"
    assert by_name["gemini/gemini-2.0-flash"].litellm_model == "gemini/gemini-2.0-flash"
    compat = by_name["gemini_compat/gemini-2.0-flash"]
    assert compat.litellm_model == "openai/gemini-2.0-flash"
    assert compat.base_url.startswith("https://generativelanguage.googleapis.com/v1beta/openai")
    assert compat.provider_type == "hybrid"
    assert by_name["anthropic/claude-sonnet-4-5"].litellm_model == "anthropic/claude-sonnet-4-5"
    assert by_name["llamacpp/smollm2"].provider_type == "local"
    assert by_name["llamacpp/smollm2"].price.input_per_token == 0.0
    assert by_name["local/intent"].tier == "local"
    assert by_name["local/intent"].litellm_model == "director_local/intent"
    params = by_name["openai/gpt-4o"].litellm_params({"OPENAI_API_KEY": "sk-test-123456789"})
    assert params["api_key"] == "sk-test-123456789"
    assert params["input_cost_per_token"] == pytest.approx(2.5e-6)
    assert by_name["openai/gpt-4o"].litellm_params({}).get("api_key") is None


def test_price_override_for_unknown_model():
    cfg = parse_config_text(
        textwrap.dedent("""
        [providers.vllm]
        kind = "openai_compatible"
        base_url = "https://vllm.example.com/v1"
        models = ["mistral-director"]
        [providers.vllm.overrides.mistral-director]
        tier = "balanced"
        input_price_per_million = 0.2
        output_price_per_million = 0.6
        rpm = 100
        max_tokens = 512
    """)
    )
    (d,) = build_deployments(cfg)
    assert d.price.source == "config"
    assert d.price.input_per_token == pytest.approx(0.2e-6)
    assert d.tier == "balanced"
    assert d.litellm_params()["rpm"] == 100
    assert d.provider_type == "cloud"


def test_unknown_price_is_a_warning_that_says_what_happens():
    cfg = parse_config_text(
        '[providers.vllm]\nkind = "openai_compatible"\nbase_url = "https://x.example/v1"\nmodels = ["m"]\n'
    )
    (d,) = build_deployments(cfg)
    assert d.price.source == "unknown" and not d.price.known
    assert any("price" in p.message and p.level == "warning" for p in check_semantics(cfg))


def test_derived_fallbacks_cheap_to_strong_then_down():
    cfg = load_config(SEED)
    deps = build_deployments(cfg)
    graph = resolve_fallbacks(cfg, [d.name for d in deps], tiers_in_use(deps))
    assert graph == {"small": ["balanced", "strong"], "balanced": ["strong", "small"], "strong": ["balanced", "small"]}


def test_explicit_fallbacks_override_derived():
    cfg = parse_config_text(SEED.read_text() + "\n")
    text = SEED.read_text().replace(
        'default_strategy = "adaptive"',
        'default_strategy = "adaptive"\n[llm.fallbacks]\nstrong = ["ollama/llama3.2:1b"]',
    )
    cfg = parse_config_text(text)
    deps = build_deployments(cfg)
    graph = resolve_fallbacks(cfg, [d.name for d in deps], tiers_in_use(deps))
    assert graph["strong"] == ["ollama/llama3.2:1b"]


# (config text, expected fragment of the one error message); each must also exit 2 from the CLI.
BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("budget_string", '[llm]\nbudget_per_hour = "ten"\n', 'llm.budget_per_hour: expected a number >= 0, got "ten"'),
    ("budget_negative", "[llm]\nbudget_per_hour = -1\n", "llm.budget_per_hour: expected a number >= 0, got -1"),
    ("strategy_typo", '[llm]\ndefault_strategy = "adaptve"\n', "did you mean 'adaptive'"),
    (
        "unknown_llm_key",
        "[llm]\nbudget_per_hr = 3\n",
        "llm.budget_per_hr: unknown key; did you mean 'budget_per_hour'?",
    ),
    ("unknown_section", "[cacheing]\nttl_seconds = 3\n", "cacheing: unknown key; did you mean 'caching'?"),
    ("toml_syntax", "[llm\nbudget_per_hour = 1\n", "line 1"),
    ("toml_missing_value", "[llm]\nbudget_per_hour =\n", "line 2"),
    (
        "custom_provider_no_kind",
        '[providers.myserver]\nmodels = ["m"]\nbase_url = "http://localhost:1/v1"\n',
        "providers.myserver.kind: required for a provider section with a custom name",
    ),
    ("bad_kind", '[providers.x]\nkind = "olama"\nmodels = ["m"]\n', "did you mean 'ollama'"),
    (
        "provider_unknown_key",
        '[providers.openai]\nmodels = ["gpt-4o"]\napi_key_envv = "K"\n',
        "providers.openai.api_key_envv: unknown key; did you mean 'api_key_env'?",
    ),
    ("models_not_list", '[providers.openai]\nmodels = "gpt-4o"\n', "providers.openai.models: expected a list"),
    (
        "enabled_not_bool",
        '[providers.openai]\nmodels = ["gpt-4o"]\nenabled = "yes please"\n',
        "providers.openai.enabled: expected true or false",
    ),
    (
        "timeout_zero",
        '[providers.openai]\nmodels = ["gpt-4o"]\ntimeout_seconds = 0\n',
        "providers.openai.timeout_seconds: expected a number > 0, got 0",
    ),
    (
        "override_unknown_model",
        '[providers.openai]\nmodels = ["gpt-4o"]\n[providers.openai.overrides.gpt-4]\ntier = "strong"\n',
        "model 'gpt-4' is not listed in providers.openai.models (did you mean 'gpt-4o'?)",
    ),
    (
        "override_bad_tier",
        '[providers.openai]\nmodels = ["gpt-4o"]\n[providers.openai.overrides.gpt-4o]\ntier = "premium"\n',
        "providers.openai.overrides.gpt-4o.tier: expected one of",
    ),
    (
        "negative_price",
        '[providers.openai]\nmodels = ["x"]\n[providers.openai.overrides.x]\ninput_price_per_million = -2\n',
        "input_price_per_million: expected a number >= 0, got -2",
    ),
    (
        "compat_on_openai",
        '[providers.openai]\nmodels = ["gpt-4o"]\nuse_openai_compatibility = true\n',
        'providers.openai.use_openai_compatibility: only valid for kind = "gemini"',
    ),
    (
        "compat_server_no_url",
        '[providers.lms]\nkind = "openai_compatible"\nmodels = ["m"]\n',
        'providers.lms.base_url: required for kind = "openai_compatible"',
    ),
    (
        "base_url_not_http",
        '[providers.ollama]\nmodels = ["m"]\nbase_url = "localhost:11434"\n',
        'providers.ollama.base_url: expected an http(s) URL, got "localhost:11434"',
    ),
    (
        "enabled_without_models",
        "[providers.openai]\nenabled = true\n",
        "providers.openai.models: an enabled provider needs at least one model",
    ),
    (
        "fallback_target_missing",
        '[providers.openai]\nmodels = ["gpt-4o"]\n[llm.fallbacks]\nstrong = ["openai/gpt-5"]\n',
        "fallback target 'openai/gpt-5' does not exist",
    ),
    (
        "fallback_tier_empty",
        '[providers.openai]\nmodels = ["gpt-4o"]\n[llm.fallbacks]\nstrong = ["small"]\n',
        "fallback target 'small' is a tier with no deployment",
    ),
    (
        "fallback_cycle",
        '[providers.openai]\nmodels = ["gpt-4o", "gpt-4o-mini"]\n[llm.fallbacks]\n'
        '"openai/gpt-4o" = ["openai/gpt-4o-mini"]\n"openai/gpt-4o-mini" = ["openai/gpt-4o"]\n',
        "fallback cycle: ",
    ),
    (
        "fallback_self",
        '[providers.openai]\nmodels = ["gpt-4o"]\n[llm.fallbacks]\nstrong = ["strong"]\n',
        "'strong' falls back to itself",
    ),
    ("redis_url_scheme", '[caching]\nredis_url = "http://localhost:6379"\n', "caching.redis_url: expected a redis://"),
    (
        "redis_cluster_db",
        '[caching]\nredis_url = "redis+cluster://10.0.0.1:7000/2"\n',
        "caching.redis_url: Redis Cluster has only database 0",
    ),
    (
        "redis_cluster_port",
        '[llm]\nstate_redis_url = "redis+cluster://10.0.0.1:99999"\n',
        "llm.state_redis_url: Port out of range",
    ),
    ("disk_path_is_file", '[caching]\ndisk_cache_path = "{file}"\n', "exists and is not a directory"),
    ("ttl_negative", "[caching]\nttl_seconds = -5\n", "caching.ttl_seconds: expected a number > 0, got -5"),
    (
        "threshold_over_one",
        "[intents]\nconfidence_threshold = 1.5\n",
        "intents.confidence_threshold: expected a number <= 1",
    ),
    ("empty_flows", "[intents.flows]\n", "intents.flows: define at least one flow"),
    (
        "flow_without_description",
        '[intents.flows.create_task]\nexamples = ["x"]\n',
        "intents.flows.create_task.description: required key is missing",
    ),
    (
        "local_field_on_cloud",
        '[providers.openai]\nmodels = ["gpt-4o"]\ntraining_file = "x.jsonl"\n',
        'providers.openai.training_file: only valid for kind = "local"',
    ),
    (
        "local_threshold_on_cloud",
        '[providers.openai]\nmodels = ["gpt-4o"]\nconfidence_threshold = 0.3\n',
        'providers.openai.confidence_threshold: only valid for kind = "local"',
    ),
    (
        "training_file_missing",
        '[providers.local]\ntraining_file = "nope.jsonl"\n',
        "providers.local.training_file: file not found",
    ),
    ("retries_too_many", "[llm]\nnum_retries = 99\n", "llm.num_retries: expected a number <= 10, got 99"),
    (
        "breaker_zero",
        "[llm.circuit_breaker]\nfailure_threshold = 0\n",
        "llm.circuit_breaker.failure_threshold: expected a number >= 1",
    ),
]


@pytest.fixture
def write_config(tmp_path: Path):
    def write(text: str, suffix: str = ".toml") -> Path:
        some_file = tmp_path / "a_file"
        some_file.write_text("x")
        p = tmp_path / f"director{suffix}"
        p.write_text(text.replace("{file}", str(some_file)))
        return p

    return write


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BAD_CONFIGS], ids=[n for n, _, _ in BAD_CONFIGS])
def test_bad_config_gives_one_clear_message(write_config, text: str, expected: str):
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    assert expected in message, message
    assert "Traceback" not in message
    assert info.value.exit_code == 2


def test_yaml_syntax_error_names_line(write_config):
    path = write_config("llm:\n  budget_per_hour: 1\n   bad: [\n", ".yaml")
    with pytest.raises(ConfigError, match=r"line \d+") as info:
        load_config(path)
    assert info.value.line is not None


def test_yaml_top_level_must_be_mapping(write_config):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write_config("- a\n- b\n", ".yaml"))


def test_missing_file_and_wrong_suffix(tmp_path: Path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    p = tmp_path / "c.json"
    p.write_text("{}")
    with pytest.raises(ConfigError, match="unknown file type"):
        load_config(p)


def test_config_env_var_is_the_default_path(tmp_path: Path, monkeypatch):
    p = tmp_path / "x.toml"
    p.write_text("[llm]\nbudget_per_hour = 3\n[providers.local]\n")
    monkeypatch.setenv("DIRECTOR_CONFIG", str(p))
    assert load_config().llm.budget_per_hour == 3


def test_missing_key_is_a_warning_and_never_printed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123456")
    cfg = parse_config_text('[providers.openai]\nmodels = ["gpt-4o"]\n')
    (d,) = build_deployments(cfg)
    assert d.key_status() == "set"
    assert "sk-secret" not in repr(d) and "sk-secret" not in str(d.as_dict())
    monkeypatch.delenv("OPENAI_API_KEY")
    assert d.key_status() == "missing"
    warnings = [p for p in check_semantics(cfg) if p.level == "warning"]
    assert any("OPENAI_API_KEY is not set" in p.message for p in warnings)


def test_training_file_is_found_next_to_the_config(tmp_path: Path, monkeypatch):
    (tmp_path / "extra.jsonl").write_text('{"text": "oi", "intent": "greeting"}\n')
    cfg = tmp_path / "director.toml"
    cfg.write_text('[providers.local]\ntraining_file = "extra.jsonl"\n')
    monkeypatch.chdir(ROOT)  # not the config's folder
    assert load_config(cfg).providers["local"].training_file == "extra.jsonl"


def test_redis_cluster_urls_are_accepted_and_read_as_plain_redis() -> None:
    from director_llm.config.loading import parse_config_text
    from director_llm.config.urls import is_cluster_url, plain_redis_url

    config = parse_config_text(
        '[providers.openai]\nmodels = ["gpt-4o"]\n[caching]\nredis_url = "rediss+cluster://:pw@10.0.0.1:7000/0"\n'
    )
    assert config.caching.redis_url is not None and is_cluster_url(config.caching.redis_url)
    assert plain_redis_url(config.caching.redis_url) == "rediss://:pw@10.0.0.1:7000/0"
    assert plain_redis_url("redis://h:1/0") == "redis://h:1/0" and not is_cluster_url("redis://h:1/0")


def test_redis_cluster_url_passwords_are_redacted() -> None:
    from director_llm.config.urls import redact_url, redacted_url, url_secrets

    url = "rediss+cluster://user:s3cret-pw@10.0.0.1:7000"
    assert redacted_url(url) == "rediss+cluster://10.0.0.1:7000"
    assert redact_url(url) == "rediss+cluster://user:***@10.0.0.1:7000"
    assert url_secrets(url) == ["s3cret-pw"]
