"""Shared by the classify integration tests (no tests here): configs pointing at the fake provider server."""

from __future__ import annotations

import re

from director_llm.config.loading import parse_config_text
from director_llm.config.models import DirectorConfig

KEY_ENV = "TEST_INTENT_KEY"
KEY_VALUE = "sk-intent-test-0123456789abcdef"
PROTOCOLS = ("openai", "anthropic", "ollama", "gemini")
MODEL = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-20241022",
    "ollama": "llama3.2:1b",
    "gemini": "gemini-2.0-flash",
}
FLOWS = """
[intents]
fallback_flow = "out_of_scope"
confidence_threshold = 0.6
[intents.flows.greeting]
description = "The user says hello"
examples = ["oi", "bom dia", "hello"]
[intents.flows.create_task]
description = "The user wants to create a task or reminder"
examples = ["cria uma tarefa para amanhã", "remind me to call Ana"]
[intents.flows.cancel]
description = "The user wants to cancel something"
examples = ["cancela a reunião"]
"""
FLOW_NAMES = {"greeting", "create_task", "cancel", "out_of_scope"}


def provider_section(
    protocol: str, base: str, *, section: str | None = None, models: list[str] | None = None, tier: str | None = None
) -> str:
    name = section or protocol
    models = models or [MODEL[protocol]]
    lines = [f"[providers.{name}]", f'kind = "{protocol}"', f"models = {models!r}".replace("'", '"')]
    lines.append(
        {
            "openai": f'base_url = "{base}/v1"',
            "anthropic": f'base_url = "{base}"',
            "ollama": f'base_url = "{base}"',
            "gemini": f'base_url = "{base}/v1beta"',
        }[protocol]
    )
    if protocol != "ollama":
        lines.append(f'api_key_env = "{KEY_ENV}"')
    if tier:
        lines.append(f'tier = "{tier}"')
    for m in models:  # known prices so cost accounting is checkable
        lines += [
            f'[providers.{name}.overrides."{m}"]',
            "input_price_per_million = 1.0",
            "output_price_per_million = 2.0",
        ]
    return "\n".join(lines) + "\n"


def config_for(*sections: str, extra: str = "") -> DirectorConfig:
    text = "[llm]\nnum_retries = 0\ntimeout_seconds = 20\n" + extra + "".join(sections) + FLOWS
    return parse_config_text(text)


def user_data(request) -> str:
    """The user's text as the classifier sent it (between the data tags)."""
    text = request.last_user_text
    match = re.search(r"<user_message>\n(.*)\n</user_message>", text, re.DOTALL)
    return match.group(1) if match else text
