"""A request as the engine sees it, checked at the boundary.

Everything a caller passes is validated here, before any provider is asked: a bad
message list, a lone surrogate, ``content=123``, ``temperature=NaN`` or ``max_tokens=-5``
is the caller's ``InputError`` and never reaches a deployment, so it can never count as a
deployment's failure (and open its circuit breaker for every other caller).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from director_llm.errors import InputError

__all__ = [
    "Call",
    "Entry",
    "Needs",
    "check_params",
    "check_strategy",
    "check_text",
    "needs_of",
    "sanitize_text",
    "validate_messages",
]

Entry = Literal["complete", "stream", "classify"]
ROLES = frozenset({"system", "user", "assistant", "tool", "function", "developer"})
STRATEGIES = ("cost", "latency", "quality", "adaptive")
# C0 controls but tab, line feed and carriage return (CRLF line ends are ordinary text), DEL
# and the C1 controls: what classification removes (``sanitize_text``), chat refuses.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# How deep the other fields of a message (tool calls, names...) are checked.
_MAX_FIELD_DEPTH = 8
# Parameters the engine owns: a caller passing them would bypass it.
_ENGINE_PARAMS = frozenset(
    {
        "fallbacks",
        "num_retries",
        "max_retries",
        "model_list",
        "router",
        "litellm_logging_obj",
        "mock_response",
        "stream_options",
    }
)
_NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n", "top_logprobs")


@dataclass(frozen=True, slots=True)
class Needs:
    """Capabilities a request requires of a deployment."""

    tools: bool = False
    json_schema: bool = False

    def unmet_by(self, supports_tools: bool | None, supports_schema: bool | None) -> str | None:
        """Why a deployment cannot serve (None: it can, or it is not known not to)."""
        if self.tools and supports_tools is False:
            return "no function calling"
        if self.json_schema and supports_schema is False:
            return "no JSON schema output"
        return None


@dataclass(slots=True)
class Call:
    """One validated request on its way through the engine."""

    entry: Entry
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    """Provider parameters (temperature, tools, max_tokens...), validated."""
    strategy: str
    model: str | None = None
    """A pinned deployment or tier group (``model=``)."""
    tier: str | None = None
    needs: Needs = field(default_factory=Needs)
    cache: bool | None = None
    deadline_s: float = 30.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def group(self) -> str | None:
        return self.model or self.tier


def check_strategy(strategy: str | None, default: str) -> str:
    """The strategy to use; ``InputError`` for an unknown name."""
    if strategy is None:
        return default
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    return strategy


def sanitize_text(text: str) -> str:
    """``text`` without control, format, surrogate and private-use characters (tabs and new
    lines kept): what classification does to the caller's words instead of refusing them."""
    if text.isprintable():  # no Cc/Cf/Cs/Co character (nor a line break): nothing to remove
        return text
    import unicodedata

    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))


def check_text(text: str, where: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise InputError(
            f"{where} is {len(text)} characters, more than the limit of {max_chars} ([llm] max_input_chars)"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where} contains a lone surrogate (invalid Unicode); send valid UTF-8 text") from None
    bad = _CONTROL_RE.search(text)
    if bad is not None:
        raise InputError(f"{where} contains the control character U+{ord(bad.group()):04X}; remove it")


def _check_content(content: Any, where: str, max_chars: int) -> int:
    if isinstance(content, str):
        check_text(content, where, max_chars)
        return len(content)
    if isinstance(content, list):
        total = 0
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise InputError(f"{where}[{j}] must be a content part like {{'type': 'text', 'text': ...}}")
            text = part.get("text")
            if text is not None:
                if not isinstance(text, str):
                    raise InputError(f"{where}[{j}].text must be a string, not {type(text).__name__}")
                check_text(text, f"{where}[{j}].text", max_chars)
                total += len(text)
        return total
    raise InputError(f"{where} must be a string or a list of content parts, not {type(content).__name__}")


def _check_field(value: Any, where: str, max_chars: int, depth: int = 0) -> int:
    """Every string in a message's other fields (``name``, ``tool_call_id``, ``tool_calls``...)
    checked like text; returns their characters (they count towards the size limit)."""
    if isinstance(value, str):
        check_text(value, where, max_chars)
        return len(value)
    if depth >= _MAX_FIELD_DEPTH:
        raise InputError(f"{where} is nested more than {_MAX_FIELD_DEPTH} levels deep")
    if isinstance(value, Mapping):
        total = 0
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"{where} has a key that is not a string ({type(k).__name__})")
            total += _check_field(v, f"{where}.{k}", max_chars, depth + 1)
        return total
    if isinstance(value, (list, tuple)):
        return sum(_check_field(v, f"{where}[{j}]", max_chars, depth + 1) for j, v in enumerate(value))
    if value is None or isinstance(value, (bool, int, float)):
        return 0
    raise InputError(f"{where} must be JSON data (text, numbers, lists, dicts), not {type(value).__name__}")


def validate_messages(messages: Any, *, max_chars: int) -> list[dict[str, Any]]:
    """The messages as a list of dicts, or ``InputError`` naming the first problem."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InputError(
            f"messages must be a list of {{'role', 'content'}} dicts, not {type(messages).__name__}"
            + (" (wrap a single text as [{'role': 'user', 'content': text}])" if isinstance(messages, str) else "")
        )
    if not messages:
        raise InputError("messages must not be empty")
    out: list[dict[str, Any]] = []
    total = 0
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise InputError(f"{where} must be a dict with 'role' and 'content', not {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str) or role not in ROLES:
            shown = repr(role)[:40] if isinstance(role, str) or role is None else f"of type {type(role).__name__}"
            raise InputError(f"{where}.role {shown} is not one of {', '.join(sorted(ROLES))}")
        tool_calls = m.get("tool_calls")
        if tool_calls is not None and not (
            isinstance(tool_calls, (list, tuple)) and all(isinstance(t, Mapping) for t in tool_calls)
        ):
            raise InputError(f"{where}.tool_calls must be a list of dicts")
        for name, value in m.items():
            if not isinstance(name, str):
                raise InputError(f"{where} has a key that is not a string ({type(name).__name__})")
            if name not in ("role", "content"):
                total += _check_field(value, f"{where}.{name}", max_chars)
        content = m.get("content")
        if content is None:
            if not (role == "assistant" and (m.get("tool_calls") or m.get("function_call"))):
                raise InputError(f"{where}.content is missing")
        else:
            total += _check_content(content, f"{where}.content", max_chars)
        if total > max_chars:
            raise InputError(
                f"the messages hold {total} characters, more than the limit of {max_chars} ([llm] max_input_chars)"
            )
        out.append(dict(m))
    return out


def check_params(params: Mapping[str, Any], *, entry: Entry) -> dict[str, Any]:
    """Provider parameters, checked; ``InputError`` for values no provider could take."""
    if params.get("stream") and entry != "stream":
        raise InputError(
            "stream=True is not accepted by acompletion: use director.stream_response(...) "
            "for a typed stream with fallback before the first token"
        )
    bad = sorted(_ENGINE_PARAMS & params.keys())
    if bad:
        raise InputError(
            f"{', '.join(bad)} cannot be passed per call: the engine decides retries, "
            "fallbacks and streaming options (see [llm] in the config)"
        )
    for name, (low, high) in _NUMBER_RANGES.items():
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{name} must be a finite number, not {value!r}")
        if not low <= value <= high:
            raise InputError(f"{name} must be between {low:g} and {high:g}, not {value!r}")
    for name in _POSITIVE_INTS:
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise InputError(f"{name} must be a positive integer, not {value!r}")
    tools = params.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, Mapping) for t in tools)):
        raise InputError("tools must be a list of tool definitions (dicts)")
    out = {k: v for k, v in params.items() if k != "stream"}
    return out


def needs_of(params: Mapping[str, Any]) -> Needs:
    """What ``params`` require of a deployment (tools, JSON-schema output)."""
    rf = params.get("response_format")
    schema = isinstance(rf, type) or (isinstance(rf, Mapping) and rf.get("type") == "json_schema")
    return Needs(tools=bool(params.get("tools") or params.get("functions")), json_schema=schema)
