"""Locating and sampling the benchmark data sets (CLINC150, Banking77) used to measure the tier.

The data is never shipped in the repository: it lives in ``$DIRECTOR_DATA_DIR`` or in
``../shared/data`` relative to the project root. Callers (tests, ``scripts/eval_local.py``)
skip with a clear reason when ``find_data_dir`` returns None.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from director_llm.local.model import load_training_file

__all__ = ["CLINC_OOS_LABEL", "find_data_dir", "load_dataset", "sample_per_intent"]

#: The out-of-scope label used in CLINC150's files.
CLINC_OOS_LABEL = "oos"


def find_data_dir(required: str = "clinc150") -> Path | None:
    """The data directory holding ``required/``, from ``$DIRECTOR_DATA_DIR`` or
    ``<project root>/../shared/data``; None when neither has it."""
    candidates = []
    if os.environ.get("DIRECTOR_DATA_DIR"):
        candidates.append(Path(os.environ["DIRECTOR_DATA_DIR"]))
    project_root = Path(__file__).resolve().parents[2]
    candidates.append(project_root.parent / "shared" / "data")
    for base in candidates:
        if (base / required).is_dir():
            return base
    return None


def load_dataset(data_dir: Path, name: str, split: str, *, oos_label: str | None = None) -> list[tuple[str, str]]:
    """``data_dir/name/split.jsonl`` as (text, intent) pairs; CLINC's ``oos`` label is
    renamed to ``oos_label`` when given (so it matches the tier's settings)."""
    examples = load_training_file(data_dir / name / f"{split}.jsonl")
    if oos_label is not None:
        examples = [(t, oos_label if i == CLINC_OOS_LABEL else i) for t, i in examples]
    return examples


def sample_per_intent(examples: Sequence[tuple[str, str]], k: int, *, seed: int,
                      intents: Sequence[str] | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split into (``k`` random examples per intent, the rest), reproducibly for ``seed``.

    ``intents`` restricts both parts to those intents (others are dropped).
    """
    rng = random.Random(seed)
    by_intent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ex in examples:
        by_intent[ex[1]].append(ex)
    keep = set(intents) if intents is not None else set(by_intent)
    chosen: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    for intent in sorted(by_intent):
        if intent not in keep:
            continue
        items = list(by_intent[intent])
        rng.shuffle(items)
        chosen.extend(items[:k])
        rest.extend(items[k:])
    return chosen, rest
