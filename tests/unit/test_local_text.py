"""TF-IDF blocks: the per-word memo of char n-gram columns changes no number."""

from __future__ import annotations

from collections import Counter

from director_llm.local.text import char_wb_ngrams, fit_vocabulary, normalize_text, word_ngrams

TRAIN = ["quero criar uma tarefa", "qual é a previsão do tempo", "toca uma música", "criar  lembrete\tamanhã"]
ASK = ["criar uma tarefa amanhã", "tarefa tarefa tarefa", "previsão   do\ttempo hoje", "", "xyz", "a"]


def test_columns_match_the_analyzer_with_and_without_the_memo() -> None:
    for analyzer in (word_ngrams, char_wb_ngrams):
        vocab = fit_vocabulary(analyzer, [normalize_text(t) for t in TRAIN])
        for text in ASK * 2:  # the second round is served from the memo
            norm = normalize_text(text)
            expected = Counter(vocab.index[t] for t in analyzer(norm) if t in vocab.index)
            assert Counter(vocab.columns(norm)) == expected, (analyzer.__name__, text)
