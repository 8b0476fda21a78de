"""Unit tests of the nearest-example memory blended into the local tier's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from director_llm.local.knn import ExampleMemory


def _unit(*rows: list[float]) -> np.ndarray:
    a = np.array(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# Labels deliberately interleaved: the memory must group them itself.
EMB = _unit([1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0.9, 0.1])
LABELS = np.array([0, 1, 0, 1])


def test_closest_label_wins_and_far_queries_go_to_the_none_slot() -> None:
    memory = ExampleMemory(EMB, LABELS, 2, oos_index=None, temperature=0.05, oos_similarity=0.5)
    p = memory.probabilities(_unit([1, 0.05, 0], [0, 0, 1]))
    assert p[0].argmax() == 0 and p[0, 0] > 0.9
    # Orthogonal to every example: the "nothing is close" slot takes almost all the mass.
    assert p[1].sum() < 0.05
    assert np.all(p >= 0)


def test_oos_label_absorbs_the_none_slot() -> None:
    emb = np.vstack([EMB, _unit([0, 0, 1])])
    memory = ExampleMemory(emb, np.r_[LABELS, 2], 3, oos_index=2, temperature=0.05, oos_similarity=0.5)
    p = memory.probabilities(_unit([0, 0.2, 1], [0.1, 0.1, 0.1]))
    assert p.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert p[0].argmax() == 2


def test_blocks_match_single_rows() -> None:
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(600, 3)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    memory = ExampleMemory(EMB, LABELS, 2, oos_index=None, temperature=0.1, oos_similarity=0.6)
    batch = memory.probabilities(queries)
    assert batch.shape == (600, 2)
    for i in (0, 255, 256, 599):
        assert batch[i] == pytest.approx(memory.probabilities(queries[i : i + 1])[0])
