"""Configs that used to pass check-config and fail at run time; where a config comes from
(the packaged default); the generated reference page and JSON Schema."""

from __future__ import annotations

import logging
import textwrap
import tomllib
from pathlib import Path

import pytest

from director_llm import ConfigError, load_config
from director_llm.config.loading import parse_config_text, validate_config_dict
from director_llm.config.report import config_report, prompt_tokens_estimate
from director_llm.config.semantics import check_semantics
from director_llm.config.sources import packaged_default_path, resolve_config_path
from director_llm.errors import redact

ROOT = Path(__file__).resolve().parents[2]
LOCAL = "[providers.local]\n"


def problems(text: str) -> list[tuple[str, str, str]]:
    """(level, key, message) of every problem of an unchecked config (no load-time raise)."""
    cfg = validate_config_dict(tomllib.loads(textwrap.dedent(text)))
    return [(p.level, p.key, p.message) for p in check_semantics(cfg)]


def only(found: list[tuple[str, str, str]], key: str) -> tuple[str, str]:
    matches = [(level, message) for level, k, message in found if k == key]
    assert len(matches) == 1, found
    return matches[0]


# -- nothing can answer ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "[llm]\nbudget_per_hour = 1\n", "[caching]\nmemory_size_mb = 4\n"])
def test_a_config_with_no_provider_is_an_error_with_the_fix(text: str) -> None:
    level, message = only(problems(text), "providers")
    assert level == "error"
    assert "no provider is configured" in message and "[providers.local]" in message and "init" in message
    with pytest.raises(ConfigError, match="no provider is configured"):
        parse_config_text(text)


def test_every_provider_disabled_is_an_error() -> None:
    level, message = only(problems('[providers.openai]\nenabled = false\nmodels = ["gpt-4o"]\n'), "providers")
    assert level == "error" and "every provider is disabled" in message


# -- flows and the fallback flow -----------------------------------------------------------------
def test_flow_without_examples_is_an_error_with_the_local_tier() -> None:
    text = (
        LOCAL
        + """
        [intents.flows.greeting]
        description = "hello"
        examples = ["oi", "hello"]
        [intents.flows.help]
        description = "asks for help"
        [intents.flows.out_of_scope]
        description = "anything else"
        examples = ["qual a capital do Peru?"]
    """
    )
    level, message = only(problems(text), "intents.flows.help.examples")
    assert level == "error" and "never answer it" in message and "examples = [" in message


def test_flow_without_examples_is_fine_for_llm_tiers_alone() -> None:
    text = """
        [providers.openai]
        models = ["gpt-4o-mini"]
        [intents.flows.greeting]
        description = "hello"
        [intents.flows.out_of_scope]
        description = "anything else"
    """
    assert not [p for p in problems(text) if p[1].startswith("intents")]


def test_fallback_flow_that_is_not_a_flow_and_leaves_one_trained_flow_is_an_error() -> None:
    # What failed at run time: the local tier "needs examples of at least two intents".
    text = (
        LOCAL
        + """
        [intents]
        fallback_flow = "nope"
        [intents.flows.create_task]
        description = "create a task"
        examples = ["cria uma tarefa"]
    """
    )
    level, message = only(problems(text), "intents.fallback_flow")
    assert level == "error"
    assert "'nope' is not one of the flows (create_task)" in message and "[intents.flows.nope]" in message


def test_fallback_flow_that_is_not_a_flow_is_a_warning_when_the_local_tier_can_still_train() -> None:
    text = (
        LOCAL
        + """
        [intents.flows.greeting]
        description = "hello"
        examples = ["oi"]
        [intents.flows.create_task]
        description = "create a task"
        examples = ["cria uma tarefa"]
    """
    )
    level, message = only(problems(text), "intents.fallback_flow")
    assert level == "warning" and "out_of_scope" in message


def test_fallback_flow_typo_is_an_error_with_did_you_mean() -> None:
    text = """
        [providers.openai]
        models = ["gpt-4o-mini"]
        [intents]
        fallback_flow = "out_of_scop"
        [intents.flows.out_of_scope]
        description = "anything else"
        [intents.flows.greeting]
        description = "hello"
    """
    level, message = only(problems(text), "intents.fallback_flow")
    assert level == "error" and "did you mean 'out_of_scope'" in message


def test_builtin_flows_count_as_flows() -> None:
    assert not [p for p in problems(LOCAL) if p[1].startswith("intents")]
    level, _message = only(problems(LOCAL + '[intents]\nfallback_flow = "fora_do_escopo"\n'), "intents.fallback_flow")
    assert level == "warning"


# -- timeouts ------------------------------------------------------------------------------------
def test_attempt_timeout_longer_than_the_deadline_is_an_error() -> None:
    level, message = only(
        problems(LOCAL + "[llm]\ntimeout_seconds = 5\nattempt_timeout_seconds = 8\n"), "llm.attempt_timeout_seconds"
    )
    assert level == "error" and "8 s is longer than llm.timeout_seconds (5 s" in message
    assert "fallbacks would never run" in message and "at most 5" in message
    # The default attempt timeout (10 s) against a shorter deadline says it is the default.
    level, message = only(problems(LOCAL + "[llm]\ntimeout_seconds = 4\n"), "llm.attempt_timeout_seconds")
    assert level == "error" and "(the default)" in message


def test_provider_timeout_longer_than_the_deadline_is_an_error() -> None:
    text = '[providers.openai]\nmodels = ["gpt-4o"]\ntimeout_seconds = 45\n'
    level, message = only(problems(text), "providers.openai.timeout_seconds")
    assert level == "error" and "45 s is longer than llm.timeout_seconds (30 s" in message


def test_first_token_timeout_longer_than_the_deadline_is_a_warning() -> None:
    level, _ = only(
        problems(LOCAL + "[llm]\ntimeout_seconds = 5\nattempt_timeout_seconds = 2\nfirst_token_timeout_seconds = 9\n"),
        "llm.first_token_timeout_seconds",
    )
    assert level == "warning"


def test_local_cpu_model_on_the_default_attempt_timeout_is_a_warning() -> None:
    text = '[providers.ollama]\nmodels = ["llama3.2:1b", "qwen"]\n'
    level, message = only(problems(text), "providers.ollama.timeout_seconds")
    assert level == "warning" and "ollama/llama3.2:1b runs on this machine" in message
    assert "providers.ollama.timeout_seconds = 60" in message and "llm.timeout_seconds = 90" in message
    loopback = (
        '[providers.llamacpp]\nkind = "openai_compatible"\nbase_url = "http://127.0.0.1:8080/v1"\nmodels = ["m"]\n'
    )
    assert only(problems(loopback), "providers.llamacpp.timeout_seconds")[0] == "warning"
    # Not when the author chose a timeout, and never for a cloud provider or the embedded tier.
    assert not [p for p in problems(text + "timeout_seconds = 25\n") if "timeout" in p[1]]
    assert not [p for p in problems("[llm]\nattempt_timeout_seconds = 20\n" + text) if "timeout" in p[1]]
    assert not [p for p in problems('[providers.openai]\nmodels = ["gpt-4o"]\n' + LOCAL) if "timeout" in p[1]]


# -- messages ------------------------------------------------------------------------------------
def test_unknown_price_warning_says_what_really_happens() -> None:
    text = '[providers.vllm]\nkind = "openai_compatible"\nbase_url = "https://x.example/v1"\nmodels = ["m"]\n'
    level, message = only(problems(text), "providers.vllm.overrides.m")
    assert level == "warning"
    assert "reported as $0" in message and "input_price_per_million" in message
    assert "treat it as free" not in message


UNPRICED = """
    [llm]
    budget_per_hour = 1.0
    [providers.openai]
    models = ["gpt-4o", "claude-3-5-sonnet", "m.v1:latest"]
    [providers.openai.overrides."m.v1:latest"]
    tier = "strong"
    input_price_per_million = 1.0
    """


def test_unknown_price_under_a_budget_is_never_free_and_the_fix_can_be_pasted() -> None:
    found = problems(UNPRICED)
    _, sonnet = only(found, "providers.openai.overrides.claude-3-5-sonnet")
    _, partial = only(found, "providers.openai.overrides.m.v1:latest")
    assert "never free" in sonnet and "$2.5 input / $10 output" in sonnet  # gpt-4o's price
    assert "output_price_per_million = 10" in partial and "input_price_per_million" not in partial.split("Add:")[1]
    # Pasting the suggested lines (under the existing table for the partial one) silences both.
    sonnet_lines = sonnet.split("Add:\n")[1]
    partial_lines = [ln.strip() for ln in partial.split("Add:\n")[1].splitlines() if not ln.strip().startswith("#")]
    fixed = textwrap.dedent(UNPRICED) + "\n".join(partial_lines) + "\n" + textwrap.dedent(sonnet_lines) + "\n"
    assert not [p for p in problems(fixed) if "price" in p[2]]


def test_unknown_price_under_a_provider_budget_only_and_strict(tmp_path: Path) -> None:
    text = '[providers.openai]\nmodels = ["claude-3-5-sonnet"]\nbudget_per_day = 2.0\n'
    level, message = only(problems(text), "providers.openai.overrides.claude-3-5-sonnet")
    assert level == "warning" and "refused" in message and "input_price_per_million = 15" in message
    path = tmp_path / "director.toml"
    path.write_text(text)
    report = config_report(load_config(path), source=str(path), strict=True)
    assert not report["valid"]


def test_inline_api_key_gives_the_fix_and_never_the_key(tmp_path: Path) -> None:
    key = "sk-proj-Abc123def456ghi789jkl"
    path = tmp_path / "director.toml"
    path.write_text(f'[providers.openai]\nmodels = ["gpt-4o"]\napi_key = "{key}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert key not in message and "[REDACTED]" not in message  # nothing for the redactor to eat
    assert "providers.openai.api_key: do not write API keys in a config file" in message
    assert 'api_key_env = "OPENAI_API_KEY"' in message and "environment variable" in message
    assert redact(message) == message


def test_a_key_pasted_into_api_key_env_is_refused_without_echo(tmp_path: Path) -> None:
    key = "sk-proj-Abc123def456ghi789jkl"
    path = tmp_path / "director.toml"
    path.write_text(f'[providers.openai]\nmodels = ["gpt-4o"]\napi_key_env = "{key}"\n')
    with pytest.raises(ConfigError, match="expects the NAME of an environment variable") as info:
        load_config(path)
    assert key not in str(info.value) and info.value.key == "providers.openai.api_key_env"


def test_many_problems_are_listed_up_to_a_limit(tmp_path: Path) -> None:
    flows = "".join(f"[intents.flows.f{i}]\nexamples = []\n" for i in range(60))
    path = tmp_path / "director.toml"
    path.write_text(LOCAL + flows)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 60
    assert str(info.value).count("\n") == 20 and "and 40 more problems" in str(info.value)


# -- prompt size ---------------------------------------------------------------------------------
def _flows(n: int) -> str:
    return "".join(
        f'[intents.flows.flow_{i}]\ndescription = "The user asks about topic number {i} in detail"\n'
        f'examples = ["example one for {i}", "example two for {i}", "example three {i}"]\n'
        for i in range(n)
    )


def test_prompt_size_is_estimated_and_warned_past_the_smallest_context_window(tmp_path: Path) -> None:
    provider = (
        '[providers.openai]\nmodels = ["gpt-4o-mini", "small"]\n'
        "[providers.openai.overrides.small]\ncontext_window = 4000\n"
    )
    small = parse_config_text(provider + _flows(3))
    big = parse_config_text(provider + _flows(300))
    assert prompt_tokens_estimate(small) < 4000 < prompt_tokens_estimate(big)
    assert prompt_tokens_estimate(big) > 20 * prompt_tokens_estimate(small) / 3
    report = config_report(big, source=str(tmp_path / "c.toml"))
    warning = [p for p in report["problems"] if p["key"] == "intents.flows"]
    assert len(warning) == 1 and "openai/small accepts 4,000" in warning[0]["message"]
    assert "characters / 4" in warning[0]["message"]
    assert report["intents"]["prompt_tokens_estimate"] == prompt_tokens_estimate(big)
    quiet = config_report(small, source=str(tmp_path / "c.toml"))
    assert not [p for p in quiet["problems"] if p["key"] == "intents.flows"]


# -- where the config comes from -----------------------------------------------------------------
def test_packaged_default_is_the_repository_default() -> None:
    assert packaged_default_path().read_text(encoding="utf-8") == (ROOT / "configs" / "director.toml").read_text(
        encoding="utf-8"
    )


def test_no_config_anywhere_uses_the_packaged_default_and_says_so(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIRECTOR_CONFIG", raising=False)
    with caplog.at_level(logging.WARNING, logger="director_llm.config"):
        path = resolve_config_path()
    assert path == packaged_default_path()
    assert "built-in default config" in caplog.text and "director-llm init" in caplog.text
    cfg = load_config()
    assert "local" in cfg.providers
    # ./configs/director.toml wins over the packaged default, $DIRECTOR_CONFIG over both.
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "director.toml").write_text("[providers.local]\n[llm]\nbudget_per_hour = 7\n")
    assert load_config().llm.budget_per_hour == 7
    other = tmp_path / "other.toml"
    other.write_text("[providers.local]\n[llm]\nbudget_per_hour = 8\n")
    monkeypatch.setenv("DIRECTOR_CONFIG", str(other))
    assert load_config().llm.budget_per_hour == 8


def test_an_explicit_missing_path_is_an_error_not_the_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


# -- generated reference and schema ---------------------------------------------------------------
def test_committed_reference_and_schema_are_the_generated_ones() -> None:
    from director_llm.config.schema import json_schema_text, reference_markdown

    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == reference_markdown(), (
        "docs/configuration.md is stale: run python scripts/gen_config_docs.py"
    )
    assert (ROOT / "docs" / "director.schema.json").read_text(encoding="utf-8") == json_schema_text(), (
        "docs/director.schema.json is stale: run python scripts/gen_config_docs.py"
    )


def test_reference_documents_every_key() -> None:
    from director_llm.config.models import DirectorConfig
    from director_llm.config.schema import SECTIONS, reference_markdown

    page = reference_markdown()
    for _, model, _ in SECTIONS:
        for name in model.model_fields:
            assert f"| `{name}` |" in page, name
    assert set(DirectorConfig.model_fields) == {"llm", "providers", "caching", "intents", "observability", "serve"}


def test_schema_accepts_the_shipped_configs_and_rejects_what_loading_rejects() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from director_llm.config.schema import json_schema

    validator = jsonschema.Draft202012Validator(json_schema())
    for path in [ROOT / "configs" / "director.toml", *sorted((ROOT / "configs" / "examples").glob("*.toml"))]:
        errors = list(validator.iter_errors(tomllib.loads(path.read_text(encoding="utf-8"))))
        assert not errors, (path, errors[0].message)
    bad = [
        {"llm": {"budget_per_hr": 3}},  # unknown key
        {"llm": {"default_strategy": "adaptve"}},  # not an allowed value
        {"providers": {"myserver": {"models": ["m"]}}},  # custom name needs kind
        {"providers": {"openai": {"api_key_env": "sk-not a name"}}},  # a key, not a name
        {"caching": {"ttl_seconds": -1}},
    ]
    for data in bad:
        assert list(validator.iter_errors(data)), data


def test_an_escalation_threshold_below_the_answer_threshold_is_a_warning() -> None:
    llm = '[providers.openai]\nmodels = ["gpt-4o-mini"]\napi_key_env = "X_KEY"\n'
    low = LOCAL + llm + "[intents]\nconfidence_threshold = 0.7\ntier_thresholds = { local = 0.5 }\n"
    level, message = only(problems(low), "intents.tier_thresholds.local")
    assert level == "warning" and "without any LLM being asked" in message and "at least 0.7" in message
    fine = LOCAL + llm + "[intents]\nconfidence_threshold = 0.7\ntier_thresholds = { local = 0.8 }\n"
    assert not [p for p in problems(fine) if p[1] == "intents.tier_thresholds.local"]
    local_only = LOCAL + "[intents]\nconfidence_threshold = 0.7\ntier_thresholds = { local = 0.5 }\n"
    assert not [p for p in problems(local_only) if p[1] == "intents.tier_thresholds.local"]  # nothing to escalate to
