"""Training-time augmentation of the fallback class with inputs that carry no request.

Emoji-only messages, punctuation and hesitations ("hmm", "🚀", "🙂🙂🙂", "...") share no
word with any flow, so the classifier had nothing but the sentence embedding to go on, and
short embeddings all sit close to the shortest examples (greetings): every such input
landed on ``greeting``. When the config trains a fallback class (its fallback flow has
examples), these are added to it, so the tier answers them with the fallback flow unless a
flow's own examples say otherwise: an input that already is an example of a flow (say "ok"
under ``thanks``) is not added, and a flow with emoji examples still wins on those (its
n-grams and embeddings are nearer).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["NOISE_EXAMPLES", "augment"]

NOISE_EXAMPLES: tuple[str, ...] = (
    "🚀",
    "🙂",
    "🙂🙂🙂",
    "😀",
    "😂😂",
    "🤔",
    "🔥🔥",
    "🎉",
    "❤️",
    "👀",
    "💩",
    "🙃",
    "...",
    "?",
    "???",
    "!!!",
    "-",
    ":)",
    ":/",
    "¯\\_(ツ)_/¯",
    "hmm",
    "hmmm",
    "humm",
    "ahn",
    "uhm",
    "eh",
    "er",
    "hum",
    "asdf",
    "qwerty",
    "jjjj",
    "xpto",
    "aaaaa",
    "zzz",
    "lorem ipsum",
    "ok",
    "okay",
    "k",
)


def augment(examples: Sequence[tuple[str, str]], fallback: str) -> list[tuple[str, str]]:
    """``examples`` plus ``NOISE_EXAMPLES`` as ``fallback`` when ``fallback`` is a trained
    class (has examples) and the text is not already an example of some label."""
    examples = list(examples)
    if not any(intent == fallback for _, intent in examples):
        return examples
    seen = {text.casefold().strip() for text, _ in examples}
    return examples + [(t, fallback) for t in NOISE_EXAMPLES if t.casefold() not in seen]
