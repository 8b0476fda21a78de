"""Token counts, in one place: what a request's prompt costs before it is sent.

``prompt_tokens`` is what a budget reservation is made of, so it counts everything a
provider bills as prompt tokens: the messages, the tool definitions, a ``response_format``
schema, and the chat template's overhead (a margin per message plus a share of the total,
since providers wrap each message in tokens of their own). It uses LiteLLM's tokenizer
(tiktoken for models it does not know) and is only called when a budget is set.
``rough_tokens`` is the free upper-bound-ish estimate used when no budget is at stake.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "TEMPLATE_MARGIN",
    "TOKENS_PER_MESSAGE",
    "TOOLS_OVERHEAD",
    "prompt_tokens",
    "rough_tokens",
    "text_tokens",
]

TOKENS_PER_MESSAGE = 8
"""Chat-template tokens allowed per message (role markers, separators; OpenAI uses 3-4,
others more)."""
TEMPLATE_MARGIN = 0.05
"""Extra share of the counted tokens: tokenizers of other providers differ from tiktoken."""
TOOLS_OVERHEAD = 400
"""Tokens added to a request with tools: the tool-use system prompt providers prepend
(Anthropic documents 346 tokens for ``tool_choice`` auto with Claude 3.5 / 4 models)."""
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
    """Prompt tokens of a request as a provider bills them (with the margins above).

    Messages (system prompts included) are counted by LiteLLM's token counter. Tool
    definitions are counted as their JSON text (an upper bound of OpenAI's own rendering,
    which LiteLLM's counter mimics: ~1.6x it for typical tools) plus ``TOOLS_OVERHEAD`` for the
    tool-use instructions some providers add; a ``response_format`` schema as its JSON text."""
    import litellm

    try:
        counted = int(litellm.token_counter(model=model or _DEFAULT_MODEL, messages=list(messages)))
    except Exception:  # noqa: BLE001 - odd message shapes: fall back to the generous estimate
        return rough_tokens(messages, tools=tools, response_format=response_format) + (TOOLS_OVERHEAD if tools else 0)
    if tools:
        counted += _json_tokens(model, json.dumps(tools, default=str, sort_keys=True)) + TOOLS_OVERHEAD
    if response_format is not None:
        counted += _json_tokens(model, json.dumps(_schema_of(response_format), default=str, sort_keys=True))
    return int(counted * (1 + TEMPLATE_MARGIN)) + TOKENS_PER_MESSAGE * len(messages)


@functools.lru_cache(maxsize=256)
def _json_tokens(model: str | None, text: str) -> int:
    # The same tools or schema travel with every request of an application: count them once.
    return text_tokens(model, text)


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
