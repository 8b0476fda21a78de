"""Locating and sampling the benchmark data sets (CLINC150, Banking77) used to measure the tier.

The data is never shipped in the repository: it lives in ``$DIRECTOR_DATA_DIR`` or in
``../shared/data`` relative to the project root. Callers (tests, ``scripts/eval_local.py``)
skip with a clear reason when ``find_data_dir`` returns None.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from director_llm.local.model import load_training_file

__all__ = ["CLINC_OOS_LABEL", "find_data_dir", "load_dataset", "sample_per_intent", "split_indices", "split_validation"]

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


def sample_per_intent(
    examples: Sequence[tuple[str, str]], k: int, *, seed: int, intents: Sequence[str] | None = None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
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


def split_indices(examples: Sequence[tuple[str, str]], share: float = 0.5) -> tuple[list[int], list[int]]:
    """Indices of (the validation part, the held-out part) of labelled examples, the same on
    every machine: within each label, examples are ordered by the SHA-256 of their text and
    the first ``share`` of them (rounded down; at least one when a label has two or more)
    form the validation part. Thresholds and calibration are chosen on the validation part;
    numbers are reported on the held-out part, which nothing is ever tuned on."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, (_, label) in enumerate(examples):
        by_label[label].append(i)
    chosen: set[int] = set()
    for idx in by_label.values():
        idx = sorted(idx, key=lambda i: (hashlib.sha256(examples[i][0].encode("utf-8")).hexdigest(), i))
        k = int(len(idx) * share)
        if k == 0 and len(idx) >= 2:
            k = 1
        chosen.update(idx[:k])
    return sorted(chosen), [i for i in range(len(examples)) if i not in chosen]


def split_validation(
    examples: Sequence[tuple[str, str]], share: float = 0.5
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(validation part, held-out part) of ``examples`` (see ``split_indices``), order kept."""
    val, held = split_indices(examples, share)
    return [examples[i] for i in val], [examples[i] for i in held]
