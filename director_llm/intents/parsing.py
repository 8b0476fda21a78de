"""Input hygiene and answer parsing: what real models return, turned into a valid flow.

``clean_input`` removes control characters and enforces the length limit.
``parse_answer`` survives code fences, prose around the JSON, trailing commas, truncated
output (``json_repair``), keys and flow names in another case or language, and confidence
given as a string, a percent or a word. The flow it returns is always a configured flow or
the fallback flow; an answer it cannot use raises ``AnswerInvalid`` (which triggers the
repair round). ``parse_partial`` reads an unfinished stream with ``partial_json_parser``.

A model's answer is untrusted input. Whatever it holds, parsing stays bounded and the
result fits the bounds of ``intents.models`` (so it can always be serialized):

* at most ``MAX_ANSWER_CHARS`` of the answer are read (the prompt asks for ~300 tokens);
* a flow name longer than ``MAX_RAW_FLOW_CHARS`` names no flow (no fuzzy matching of
  megabytes), and ``raw_flow`` keeps at most that many characters;
* ``entities`` are pruned (``bound_entities``): containers nested deeper than
  ``MAX_ENTITY_DEPTH`` are dropped, strings and keys cut, at most ``MAX_ENTITY_NODES``
  values kept, non-JSON values turned into strings;
* ``reasoning`` keeps the text leaves of whatever was sent, cut to 600 characters;
* a confidence outside 0..1 (``"150%"``, ``150``, ``1.5``, ``-0.1``) is unreadable, like any
  bad field: ``AnswerInvalid`` and the repair round. Only a bare number from 2 to 100 is
  read as a percent (``85`` -> 0.85); a ``%`` string is divided by 100 once.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from director_llm.errors import InputError
from director_llm.intents.models import (
    MAX_ENTITY_DEPTH,
    MAX_ENTITY_NODES,
    MAX_ENTITY_STRING_CHARS,
    MAX_RAW_FLOW_CHARS,
)
from director_llm.intents.prompts import FlowSet
from director_llm.request import sanitize_text

_FENCE_RE = re.compile(r"```[a-zA-Z0-9_-]*")
_MAX_REASONING_CHARS = 600
MAX_ANSWER_CHARS = 64 * 1024
"""Characters of a model's answer that are parsed (50x what the classification prompt asks for)."""
#: Integers past this have no JSON-safe meaning as an entity (and huge ones cost str()).
_MAX_ENTITY_INT = 2**63
_KEY_ALIASES = {
    "flow": ("flow", "intent", "intencao", "fluxo", "category", "label", "class"),
    "confidence": ("confidence", "confianca", "score", "probability", "certainty"),
    "reasoning": ("reasoning", "reason", "raciocinio", "justificativa", "explanation", "rationale"),
    "entities": ("entities", "entidades", "slots", "parameters"),
}
_CONFIDENCE_WORDS = {
    "very high": 0.95,
    "muito alta": 0.95,
    "high": 0.85,
    "alta": 0.85,
    "alto": 0.85,
    "medium": 0.6,
    "media": 0.6,
    "medio": 0.6,
    "moderate": 0.6,
    "low": 0.3,
    "baixa": 0.3,
    "baixo": 0.3,
    "very low": 0.1,
    "muito baixa": 0.1,
}
# Flow names a model may translate: normalized word -> the English name it stands for.
_TRANSLATIONS = {
    "saudacao": "greeting",
    "cumprimento": "greeting",
    "ola": "greeting",
    "saludo": "greeting",
    "ajuda": "help",
    "ayuda": "help",
    "criar_tarefa": "create_task",
    "cria_tarefa": "create_task",
    "nova_tarefa": "create_task",
    "lembrete": "create_task",
    "criar_lembrete": "create_task",
    "crear_tarea": "create_task",
    "consultar_status": "query_status",
    "consulta_status": "query_status",
    "status": "query_status",
    "verificar_status": "query_status",
    "cancelar": "cancel",
    "cancelamento": "cancel",
    "conversa": "smalltalk",
    "bate_papo": "smalltalk",
    "conversa_fiada": "smalltalk",
    "small_talk": "smalltalk",
    "chitchat": "smalltalk",
    "fora_do_escopo": "out_of_scope",
    "fora_de_escopo": "out_of_scope",
    "desconhecido": "out_of_scope",
    "unknown": "out_of_scope",
    "other": "out_of_scope",
    "outro": "out_of_scope",
    "none": "out_of_scope",
}


class AnswerInvalid(ValueError):
    """The model's answer cannot be used; the message is fed back in the repair round."""


@dataclass(frozen=True)
class ParsedAnswer:
    """A validated answer."""

    flow: str
    confidence: float
    reasoning: str
    entities: dict[str, Any] = field(default_factory=dict)
    raw_flow: str | None = None
    """What the model wrote, when it was mapped or replaced."""


def clean_input(text: str, *, max_chars: int, truncate: bool = False) -> str:
    """``text`` without control/format characters, stripped, within ``max_chars``.

    Raises ``InputError`` when it is empty, or longer than ``max_chars`` and ``truncate``
    is off (with it on, the text is cut at ``max_chars`` characters).
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    kept = sanitize_text(text).strip()
    if not kept:
        raise InputError("the text to classify is empty (after removing control characters)")
    if len(kept) > max_chars:
        if not truncate:
            raise InputError(
                f"the text has {len(kept)} characters, more than intents.max_input_chars = "
                f"{max_chars}; shorten it or set intents.truncate_long_input = true"
            )
        kept = kept[:max_chars]
    return kept


def normalize_name(name: str) -> str:
    """``"Create Task"``, ``"create-task"``, ``"CREATE_TASK"`` -> ``"create_task"`` (accents dropped)."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "_", ascii_only.lower()).strip("_")


def map_flow(raw: Any, flows: FlowSet) -> str | None:
    """The configured flow (or fallback) ``raw`` names, or None when it names none."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_RAW_FLOW_CHARS:
        return None
    names = flows.names
    table: dict[str, str] = {}
    for name in names:
        table[normalize_name(name)] = name
    for spec in flows.flows.values():
        for alias in (*spec.aliases, *spec.examples):
            table.setdefault(normalize_name(alias), spec.name)
    for word, english in _TRANSLATIONS.items():
        if english in names:
            table.setdefault(word, english)
    key = normalize_name(raw)
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.85)
    return table[close[0]] if close else None


def coerce_confidence(value: Any) -> float | None:
    """0..1 from ``0.9``, ``"0.9"``, ``"90%"``, ``90``, ``"high"``/``"alta"``; None if unreadable.

    A ``%`` string is divided by 100 once (``"150%"`` is 1.5: out of range, None). A bare
    number from 2 to 100 is taken for a percent (``85``); anything else outside 0..1 (``1.5``,
    ``150``, ``-0.1``, infinities) is None, so the answer goes to the repair round.
    """
    if isinstance(value, bool):
        return None
    percent = False
    if isinstance(value, str):
        s = value.strip().lower().replace(",", ".")[:40]
        word = normalize_name(s).replace("_", " ")
        if word in _CONFIDENCE_WORDS:
            return _CONFIDENCE_WORDS[word]
        percent = s.endswith("%")
        try:
            value = float(s.rstrip("%").strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int with hundreds of digits
        return None
    if not math.isfinite(number):
        return None
    if percent:
        number /= 100
    elif 2 <= number <= 100:
        number /= 100  # a percent written as a bare number
    if not 0 <= number <= 1:
        return None
    return number


def _canonical_keys(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by_norm = {normalize_name(str(k)): v for k, v in obj.items()}
    for canonical, aliases in _KEY_ALIASES.items():
        for alias in aliases:
            if alias in by_norm:
                out[canonical] = by_norm[alias]
                break
    return out


def _strip_fences(raw: str) -> str:
    return _FENCE_RE.sub("", raw)


def extract_object(raw: str) -> dict[str, Any]:
    """The JSON object in a model's answer, repaired (fences, prose, commas, truncation)."""
    import json_repair

    text = _strip_fences((raw or "")[:MAX_ANSWER_CHARS]).strip()
    start = text.find("{")
    if start < 0:
        raise AnswerInvalid("the answer contains no JSON object")
    end = text.rfind("}")
    candidate = text[start : end + 1] if end > start else text[start:]
    try:
        obj = json_repair.loads(candidate)
    except Exception as exc:  # noqa: BLE001 - json_repair raises assorted errors on garbage
        raise AnswerInvalid(f"the JSON object could not be read ({type(exc).__name__})") from None
    if isinstance(obj, list):  # "[{...}]" or a repaired fragment list: take the first object
        obj = next((o for o in obj if isinstance(o, dict)), None)
    if not isinstance(obj, dict) or not obj:
        raise AnswerInvalid("the answer contains no usable JSON object")
    return obj


def _text_leaves(value: Any, limit: int) -> list[str]:
    """The scalar leaves of ``value`` as strings, depth first, until ``limit`` characters."""
    out: list[str] = []
    size = 0
    stack = [value]
    while stack and size < limit:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif item is not None:
            text = item[:limit] if isinstance(item, str) else _scalar_text(item)[:limit]
            out.append(text)
            size += len(text) + 1
    return out


def _excerpt(value: Any) -> str:
    """A short repr of a model-sent value for an error message (bounded in depth and size)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, 40, 40, 40
    short.maxdict = short.maxlist = short.maxtuple = 3
    text = short.repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _scalar_text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MAX_ENTITY_INT:
        return "<large number>"  # str() of a 5000-digit int raises (and costs)
    return str(value)


def _reasoning(value: Any) -> str:
    """The model's reasoning as one line of at most 600 characters, whatever its shape."""
    text = " ".join(_text_leaves(value, _MAX_REASONING_CHARS * 4))
    return " ".join(text.split())[:_MAX_REASONING_CHARS]


def bound_entities(value: Any) -> dict[str, Any]:
    """``value`` pruned to the ``MAX_ENTITY_*`` bounds of ``intents.models`` (module doc).

    A dict stays a dict, a non-empty list becomes ``{"items": [...]}``, anything else ``{}``.
    """
    if isinstance(value, (list, tuple)) and value:
        value = {"items": list(value)}
    if not isinstance(value, dict):
        return {}
    budget = [MAX_ENTITY_NODES]
    pruned = _prune(value, 1, budget)
    return pruned if isinstance(pruned, dict) else {}


_DROP = object()


def _prune(value: Any, level: int, budget: list[int]) -> Any:
    # ``level``: containers enclosing ``value``, itself included when it is one. Recursion is
    # bounded by MAX_ENTITY_DEPTH: anything deeper is dropped before it is descended into.
    if budget[0] <= 0:
        return _DROP
    budget[0] -= 1
    if isinstance(value, dict):
        if level > MAX_ENTITY_DEPTH:
            return _DROP
        out: dict[str, Any] = {}
        for key, child in value.items():
            kept = _prune(child, level + 1, budget)
            if kept is _DROP:
                if budget[0] <= 0:
                    break
                continue
            out[str(key)[:MAX_ENTITY_STRING_CHARS]] = kept
        return out
    if isinstance(value, (list, tuple)):
        if level > MAX_ENTITY_DEPTH:
            return _DROP
        items: list[Any] = []
        for child in value:
            kept = _prune(child, level + 1, budget)
            if kept is _DROP:
                if budget[0] <= 0:
                    break
                continue
            items.append(kept)
        return items
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < _MAX_ENTITY_INT else _scalar_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return _scalar_text(value)[:MAX_ENTITY_STRING_CHARS]


def _entities(value: Any) -> dict[str, Any]:
    return bound_entities(value)


def parse_answer(raw: str, flows: FlowSet) -> ParsedAnswer:
    """Validate a complete answer. A flow the model invented becomes the fallback flow; a
    confidence below the threshold too. Raises ``AnswerInvalid`` when the answer is unusable
    (no JSON object, no flow, no readable confidence)."""
    obj = _canonical_keys(extract_object(raw))
    raw_flow = obj.get("flow")
    if not isinstance(raw_flow, str) or not raw_flow.strip():
        raise AnswerInvalid('the JSON object has no "flow" string')
    confidence = coerce_confidence(obj.get("confidence"))
    if confidence is None:
        raise AnswerInvalid(f'"confidence" must be a number between 0 and 1, got {_excerpt(obj.get("confidence"))}')
    reasoning = _reasoning(obj.get("reasoning"))
    flow = map_flow(raw_flow, flows)
    if flow is None:
        flow = flows.fallback
        reasoning = f"[model answered unknown flow {raw_flow[:60]!r}] {reasoning}".strip()
    elif confidence < flows.threshold and flow != flows.fallback:
        reasoning = (
            f"[{flow} at confidence {confidence:.2f} is below the threshold {flows.threshold:g}] {reasoning}".strip()
        )
        flow = flows.fallback
    return ParsedAnswer(
        flow,
        confidence,
        reasoning,
        _entities(obj.get("entities")),
        raw_flow=None if raw_flow == flow else raw_flow[:MAX_RAW_FLOW_CHARS],
    )


@dataclass(frozen=True)
class Partial:
    """What an unfinished answer says so far."""

    flow: str | None = None
    confidence: float | None = None
    reasoning: str = ""
    entities: dict[str, Any] = field(default_factory=dict)


def parse_partial(text: str, flows: FlowSet) -> Partial:
    """Read an unfinished answer: complete values only for flow and confidence (a half
    written name or number is not reported), partial strings for the reasoning."""
    from partial_json_parser import Allow, loads

    body = _strip_fences(text[:MAX_ANSWER_CHARS])
    start = body.find("{")
    if start < 0:
        return Partial()
    body = body[start:]
    try:
        complete = loads(body, Allow.ALL & ~Allow.STR & ~Allow.NUM)
        loose = loads(body, Allow.ALL)
    except Exception:  # noqa: BLE001 - not yet parseable: nothing new to report
        return Partial()
    if not isinstance(complete, dict) or not isinstance(loose, dict):
        return Partial()
    done = _canonical_keys(complete)
    partial = _canonical_keys(loose)
    flow = map_flow(done.get("flow"), flows) if "flow" in done else None
    if "flow" in done and flow is None:
        flow = flows.fallback
    return Partial(
        flow=flow,
        confidence=coerce_confidence(done.get("confidence")),
        reasoning=_reasoning(partial.get("reasoning")),
        entities=_entities(done.get("entities")),
    )


def reasoning_steps(reasoning: str) -> list[str]:
    """A reasoning text split into sentences (for ``reasoning_steps``)."""
    parts = re.split(r"(?<=[.!?;])\s+", reasoning.strip())
    return [p for p in parts if p]
