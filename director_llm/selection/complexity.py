"""How hard is this request? A heuristic that costs microseconds, no model, no I/O.

The score in [0, 1] adds bounded contributions of cheap signals of the LAST user message
and the conversation around it:

==================  ==========  =========================================================
signal              max weight  why it predicts the need for a stronger model
==================  ==========  =========================================================
length              0.30        long asks carry more constraints (log-scaled chars)
reasoning markers   0.25        "explain", "compare", "why", "step by step", "prove"...
code                0.20        code blocks / code-like syntax: correctness matters
multi-part          0.15        several questions or a numbered list of asks
structure           0.05        many lines, bullets, tables
history depth       0.10        long conversations need context tracking
trivial markers     -0.25       greetings, thanks, yes/no: a small model answers
local confidence    +-0.20      the local classifier's confidence (high: easier)
==================  ==========  =========================================================

Levels: ``simple`` below ``SIMPLE_BELOW``, ``complex`` from ``COMPLEX_FROM``, else
``medium``. Markers cover English and Portuguese (the seed's language). LiteLLM's
``complexity_router`` scores similar features but ignores budget; this one feeds
``selection`` which adds the budget and health.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["simple", "medium", "complex"]

SIMPLE_BELOW = 0.25
COMPLEX_FROM = 0.55
_LENGTH_W, _REASON_W, _CODE_W, _MULTI_W, _STRUCT_W, _HISTORY_W = 0.30, 0.25, 0.20, 0.15, 0.05, 0.10
_TRIVIAL_W, _CONFIDENCE_W = 0.25, 0.20
_SHORT_CHARS, _LONG_CHARS = 40, 2000  # length weight is 0 at/below short, full at/above long

# Single words are matched against a set (one C-speed split, no backtracking regex);
# phrases by substring. Both lower-case, English and Portuguese.
_REASONING_WORDS = frozenset(
    "explain why compare contrast analyze analyse design architect prove derive evaluate tradeoff "
    "tradeoffs trade-off trade-offs reason implement refactor optimize optimise debug plan summarize "
    "summarise translate draft explique compare analise projete prove avalie implemente otimize "
    "planeje resuma traduza escreva".split()
)
_REASONING_PHRASES = ("step by step", "step-by-step", "how does", "how do ", "write a ", "por que", "passo a passo")
_CODE_MARKS = ("```", "def ", "class ", "import ", "return ", "=>", "select ", ";\n", "{\n", "</", "#include")
_WORDS = re.compile(r"[\w'-]+")
_TRIVIAL = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|ok|okay|yes|no|bye|good (morning|night|afternoon)|"
    r"oi|ol[aá]|obrigad[oa]|valeu|sim|n[aã]o|tchau|bom dia|boa (tarde|noite))\b[\s!.?]*$",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Complexity:
    """A request's estimated difficulty: ``score`` in [0, 1], its ``level`` and the
    per-signal contributions (for the route's reason and for tuning)."""

    score: float
    level: Level
    signals: dict[str, float]

    def __str__(self) -> str:
        return f"{self.level} ({self.score:.2f})"


def level_of(score: float) -> Level:
    """The level of a score (``SIMPLE_BELOW`` / ``COMPLEX_FROM`` thresholds)."""
    if score < SIMPLE_BELOW:
        return "simple"
    return "complex" if score >= COMPLEX_FROM else "medium"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def estimate_complexity(messages: Sequence[Any] | str, *, local_confidence: float | None = None) -> Complexity:
    """Score ``messages`` (chat dicts, or one string). ``local_confidence`` is the local
    tier's confidence in its own answer, when it ran: high confidence lowers the score."""
    if isinstance(messages, str):
        last, turns = messages, 0
    else:
        last, turns = "", 0
        for m in reversed(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role == "user" and not last and isinstance(m, dict):
                last = _text(m.get("content"))
            elif role in ("user", "assistant"):
                turns += 1
    n = len(last)
    s: dict[str, float] = {}
    if n > _SHORT_CHARS:
        s["length"] = _LENGTH_W * min(1.0, math.log(n / _SHORT_CHARS) / math.log(_LONG_CHARS / _SHORT_CHARS))
    low = last.lower()
    reasoning = len(_REASONING_WORDS.intersection(_WORDS.findall(low)))
    reasoning += sum(1 for p in _REASONING_PHRASES if p in low)
    if reasoning:
        s["reasoning"] = _REASON_W * min(1.0, 0.6 + 0.2 * (reasoning - 1))
    if any(m in low for m in _CODE_MARKS):
        s["code"] = _CODE_W
    asks = last.count("?") + len(_LIST_ITEM.findall(last))
    if asks > 1:
        s["multi_part"] = _MULTI_W * min(1.0, (asks - 1) / 3)
    lines = last.count("\n")
    if lines >= 3:
        s["structure"] = _STRUCT_W * min(1.0, lines / 15)
    if turns:
        s["history"] = _HISTORY_W * min(1.0, turns / 12)
    if n <= 60 and _TRIVIAL.match(last):
        s["trivial"] = -_TRIVIAL_W
    if local_confidence is not None:
        # 0.6 is neutral (the default confidence threshold); 1.0 gives -W, 0.2 or less +W.
        s["local_confidence"] = _CONFIDENCE_W * max(-1.0, min(1.0, (0.6 - local_confidence) / 0.4))
    score = max(0.0, min(1.0, sum(s.values())))
    return Complexity(round(score, 4), level_of(score), s)
