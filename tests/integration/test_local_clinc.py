"""The local tier on real data: a CLINC150 subset (skips when the data set is absent)."""

from __future__ import annotations

import time

import pytest

from director_llm.local import LocalIntentModel, LocalTierSettings
from director_llm.local.datasets import find_data_dir, load_dataset
from director_llm.local.evaluation import apply_threshold, in_scope_accuracy, oos_recall

pytestmark = pytest.mark.dataset

OOS = LocalTierSettings().oos_label
N_INTENTS = 30  # a fifth of CLINC150 keeps training to a few seconds on 2 cores
THRESHOLD = 0.5  # fixed in advance, not tuned on this split


@pytest.fixture(scope="module")
def clinc() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    data = find_data_dir("clinc150")
    if data is None:
        pytest.skip("CLINC150 not found: set DIRECTOR_DATA_DIR or place it in ../shared/data/clinc150")
    train = load_dataset(data, "clinc150", "train", oos_label=OOS)
    val = load_dataset(data, "clinc150", "val", oos_label=OOS)
    keep = set(sorted({i for _, i in train if i != OOS})[:: 150 // N_INTENTS]) | {OOS}
    return [e for e in train if e[1] in keep], [e for e in val if e[1] in keep]


def test_clinc_subset_accuracy_and_oos_recall(clinc: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> None:
    train, val = clinc
    started = time.perf_counter()
    model = LocalIntentModel.train(train)
    train_s = time.perf_counter() - started
    assert len(model.labels) == N_INTENTS + 1

    preds = model.predict_many([t for t, _ in val])
    gold = [i for _, i in val]
    final = apply_threshold([p.intent for p in preds], [p.confidence for p in preds], THRESHOLD, OOS)
    in_acc = in_scope_accuracy(gold, final, OOS)
    recall = oos_recall(gold, final, OOS)
    print(f"clinc subset: train {train_s:.1f}s, in-scope acc {in_acc:.3f}, oos recall {recall:.3f}")
    assert in_acc >= 0.93
    assert recall is not None and recall >= 0.85
