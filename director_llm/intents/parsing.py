"""Input hygiene and answer parsing: what real models return, turned into a valid flow.

``clean_input`` removes control characters and enforces the length limit.
``parse_answer`` survives code fences, prose around the JSON, trailing commas, truncated
output (``json_repair``), keys and flow names in another case or language, and confidence
given as a string, a percent or a word. The flow it returns is always a configured flow or
the fallback flow; an answer it cannot use raises ``AnswerInvalid`` (which triggers the
repair round). ``parse_partial`` reads an unfinished stream with ``partial_json_parser``.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from director_llm.errors import InputError
from director_llm.intents.prompts import FlowSet

_KEEP_CONTROLS = {"\n", "\t"}
_FENCE_RE = re.compile(r"```[a-zA-Z0-9_-]*")
_MAX_REASONING_CHARS = 600
_KEY_ALIASES = {
    "flow": ("flow", "intent", "intencao", "fluxo", "category", "label", "class"),
    "confidence": ("confidence", "confianca", "score", "probability", "certainty"),
    "reasoning": ("reasoning", "reason", "raciocinio", "justificativa", "explanation", "rationale"),
    "entities": ("entities", "entidades", "slots", "parameters"),
}
_CONFIDENCE_WORDS = {
    "very high": 0.95, "muito alta": 0.95, "high": 0.85, "alta": 0.85, "alto": 0.85,
    "medium": 0.6, "media": 0.6, "medio": 0.6, "moderate": 0.6, "low": 0.3, "baixa": 0.3, "baixo": 0.3,
    "very low": 0.1, "muito baixa": 0.1,
}
# Flow names a model may translate: normalized word -> the English name it stands for.
_TRANSLATIONS = {
    "saudacao": "greeting", "cumprimento": "greeting", "ola": "greeting", "saludo": "greeting",
    "ajuda": "help", "ayuda": "help",
    "criar_tarefa": "create_task", "cria_tarefa": "create_task", "nova_tarefa": "create_task",
    "lembrete": "create_task", "criar_lembrete": "create_task", "crear_tarea": "create_task",
    "consultar_status": "query_status", "consulta_status": "query_status", "status": "query_status",
    "verificar_status": "query_status",
    "cancelar": "cancel", "cancelamento": "cancel",
    "conversa": "smalltalk", "bate_papo": "smalltalk", "conversa_fiada": "smalltalk", "small_talk": "smalltalk",
    "chitchat": "smalltalk",
    "fora_do_escopo": "out_of_scope", "fora_de_escopo": "out_of_scope", "desconhecido": "out_of_scope",
    "unknown": "out_of_scope", "other": "out_of_scope", "outro": "out_of_scope", "none": "out_of_scope",
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
    kept = "".join(ch for ch in text
                   if ch in _KEEP_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    kept = kept.replace("\r", "").strip()
    if not kept:
        raise InputError("the text to classify is empty (after removing control characters)")
    if len(kept) > max_chars:
        if not truncate:
            raise InputError(f"the text has {len(kept)} characters, more than intents.max_input_chars = "
                             f"{max_chars}; shorten it or set intents.truncate_long_input = true")
        kept = kept[:max_chars]
    return kept


def normalize_name(name: str) -> str:
    """``"Create Task"``, ``"create-task"``, ``"CREATE_TASK"`` -> ``"create_task"`` (accents dropped)."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "_", ascii_only.lower()).strip("_")


def map_flow(raw: Any, flows: FlowSet) -> str | None:
    """The configured flow (or fallback) ``raw`` names, or None when it names none."""
    if not isinstance(raw, str) or not raw.strip():
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
    """0..1 from ``0.9``, ``"0.9"``, ``"90%"``, ``90``, ``"high"``/``"alta"``; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        s = value.strip().lower().replace(",", ".")
        word = normalize_name(s).replace("_", " ")
        if word in _CONFIDENCE_WORDS:
            return _CONFIDENCE_WORDS[word]
        percent = s.endswith("%")
        try:
            number = float(s.rstrip("%").strip())
        except ValueError:
            return None
        value = number / 100 if percent else number
    if not isinstance(value, (int, float)) or math.isnan(value):
        return None
    number = float(value)
    if 1 < number <= 100:
        number /= 100  # a percent written as a number
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

    text = _strip_fences(raw or "").strip()
    start = text.find("{")
    if start < 0:
        raise AnswerInvalid("the answer contains no JSON object")
    end = text.rfind("}")
    candidate = text[start:end + 1] if end > start else text[start:]
    try:
        obj = json_repair.loads(candidate)
    except Exception as exc:  # noqa: BLE001 - json_repair raises assorted errors on garbage
        raise AnswerInvalid(f"the JSON object could not be read ({type(exc).__name__})") from None
    if isinstance(obj, list):  # "[{...}]" or a repaired fragment list: take the first object
        obj = next((o for o in obj if isinstance(o, dict)), None)
    if not isinstance(obj, dict) or not obj:
        raise AnswerInvalid("the answer contains no usable JSON object")
    return obj


def _reasoning(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    text = "" if value is None else str(value)
    return " ".join(text.split())[:_MAX_REASONING_CHARS]


def _entities(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and value:
        return {"items": value}
    return {}


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
        raise AnswerInvalid(f'"confidence" must be a number between 0 and 1, got {obj.get("confidence")!r}')
    reasoning = _reasoning(obj.get("reasoning"))
    flow = map_flow(raw_flow, flows)
    if flow is None:
        flow = flows.fallback
        reasoning = f"[model answered unknown flow {raw_flow[:60]!r}] {reasoning}".strip()
    elif confidence < flows.threshold and flow != flows.fallback:
        reasoning = f"[{flow} at confidence {confidence:.2f} is below the threshold {flows.threshold:g}] {reasoning}".strip()
        flow = flows.fallback
    return ParsedAnswer(flow, confidence, reasoning, _entities(obj.get("entities")),
                        raw_flow=None if raw_flow == flow else raw_flow)


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

    body = _strip_fences(text)
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
    return Partial(flow=flow, confidence=coerce_confidence(done.get("confidence")),
                   reasoning=_reasoning(partial.get("reasoning")), entities=_entities(done.get("entities")))


def reasoning_steps(reasoning: str) -> list[str]:
    """A reasoning text split into sentences (for ``reasoning_steps``)."""
    parts = re.split(r"(?<=[.!?;])\s+", reasoning.strip())
    return [p for p in parts if p]
