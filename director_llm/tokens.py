"""Token counts, in one place: what a request's prompt costs before it is sent.

``prompt_tokens`` is what a budget reservation is made of, so it counts everything a
provider bills as prompt tokens: the messages, the tool definitions, a ``response_format``
schema, and the chat template's overhead (a margin per message plus a share of the total,
since providers wrap each message in tokens of their own). It uses LiteLLM's tokenizer
(tiktoken for models it does not know) and is only called when a budget is set.
``rough_tokens`` is the free upper-bound-ish estimate used when no budget is at stake.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TEMPLATE_MARGIN", "TOKENS_PER_MESSAGE", "prompt_tokens", "rough_tokens", "text_tokens"]

TOKENS_PER_MESSAGE = 8
"""Chat-template tokens allowed per message (role markers, separators; OpenAI uses 3-4,
others more)."""
TEMPLATE_MARGIN = 0.05
"""Extra share of the counted tokens: tokenizers of other providers differ from tiktoken."""
_DEFAULT_MODEL = "gpt-4o"


def _json_len(value: Any) -> int:
    try:
        return len(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return len(str(value))


def rough_tokens(messages: Sequence[Any], *, tools: Any = None, response_format: Any = None) -> int:
    """A cheap estimate (~3 characters per token, which over-counts most text) without a
    tokenizer: for context-window checks when no budget depends on it."""
    chars = 0
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else m
        chars += len(content) if isinstance(content, str) else _json_len(content)
    if tools:
        chars += _json_len(tools)
    if response_format is not None:
        chars += _json_len(response_format)
    return chars // 3 + TOKENS_PER_MESSAGE * len(messages)


def prompt_tokens(model: str | None, messages: Sequence[Any], *, tools: Any = None, response_format: Any = None) -> int:
    """Prompt tokens of a request as a provider bills them (with the margins above)."""
    import litellm

    try:
        counted = int(
            litellm.token_counter(
                model=model or _DEFAULT_MODEL, messages=list(messages), tools=list(tools) if tools else None
            )
        )
    except Exception:  # noqa: BLE001 - odd message shapes: fall back to the generous estimate
        return rough_tokens(messages, tools=tools, response_format=response_format)
    if response_format is not None:
        counted += text_tokens(model, json.dumps(_schema_of(response_format), default=str))
    return int(counted * (1 + TEMPLATE_MARGIN)) + TOKENS_PER_MESSAGE * len(messages)


def text_tokens(model: str | None, text: str) -> int:
    """Tokens of a piece of text (an answer delivered without a usage report)."""
    if not text:
        return 0
    import litellm

    try:
        return int(litellm.token_counter(model=model or _DEFAULT_MODEL, text=text))
    except Exception:  # noqa: BLE001 - unknown tokenizer: ~4 characters per token, rounded up
        return max(1, -(-len(text) // 4))


def _schema_of(response_format: Any) -> Any:
    # A pydantic model class: its JSON schema is what reaches the model.
    schema = getattr(response_format, "model_json_schema", None)
    if isinstance(response_format, type) and callable(schema):
        return schema()
    return response_format
