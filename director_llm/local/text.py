"""TF-IDF n-grams of the local tier, in pure Python: the same code trains and predicts.

Two analyzers, like scikit-learn's ``TfidfVectorizer`` settings the tier always used:

* words: ``\\b\\w+\\b`` tokens of the lowercased, accent-stripped text, 1-2-grams;
* ``char_wb``: character 2-5-grams inside each whitespace-separated word padded with one
  space on each side (robust to typos and Portuguese inflection).

Each block is weighted ``(1 + ln tf) * idf`` with the smoothed ``idf = ln((1 + n) / (1 + df)) + 1``
and L2-normalised; the concatenation of the blocks is normalised again. Owning this code
(instead of calling scikit-learn at prediction time) keeps scikit-learn and scipy out of
the hot path and out of a CLI call's import time, and lets the fitted state be stored as
plain JSON and arrays (no pickle). Nothing here imports numpy.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

__all__ = ["Vocabulary", "char_wb_ngrams", "fit_vocabulary", "normalize_text", "sparse_row", "word_ngrams"]

_WORD = re.compile(r"(?u)\b\w+\b")
_SPACES = re.compile(r"\s\s+")
_WORD_MEMO = 50_000  # words whose char n-gram columns are remembered per vocabulary


def normalize_text(text: str) -> str:
    """Lowercase and strip accents (NFKD, combining marks dropped)."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def word_ngrams(text: str) -> list[str]:
    """Word 1-grams and 2-grams of an already normalised text."""
    tokens = _WORD.findall(text)
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def char_wb_ngrams(text: str, lo: int = 2, hi: int = 5) -> list[str]:
    """Character ``lo``..``hi``-grams within each space-padded word of a normalised text."""
    out: list[str] = []
    for word in _SPACES.sub(" ", text).split():
        w = f" {word} "
        size = len(w)
        for n in range(lo, hi + 1):
            if size < n:
                out.append(w)  # a short word counts once, whole
                break
            out.extend(w[i : i + n] for i in range(size - n + 1))
    return out


ANALYZERS: tuple[Callable[[str], list[str]], ...] = (word_ngrams, char_wb_ngrams)


class Vocabulary:
    """One fitted TF-IDF block: term -> column and the idf of each column."""

    __slots__ = ("_words", "analyzer", "idf", "index")

    def __init__(self, analyzer: Callable[[str], list[str]], terms: Sequence[str], idf: Sequence[float]) -> None:
        if len(terms) != len(idf):
            raise ValueError(f"vocabulary of {len(terms)} terms has {len(idf)} idf values")
        self.analyzer = analyzer
        self.index: dict[str, int] = {t: i for i, t in enumerate(terms)}
        self.idf = list(idf)
        self._words: dict[str, tuple[int, ...]] = {}
        """``char_wb`` only: a word's known n-gram columns (its n-grams never depend on the
        words around it), so a word seen before costs one lookup instead of ~20."""

    def columns(self, text: str) -> list[int]:
        """The columns of ``text``'s known terms, once per occurrence."""
        index = self.index
        if self.analyzer is not char_wb_ngrams:
            return [index[t] for t in self.analyzer(text) if t in index]
        words = self._words
        out: list[int] = []
        for word in text.split():
            cols = words.get(word)
            if cols is None:
                cols = tuple(index[t] for t in char_wb_ngrams(word) if t in index)
                if len(words) < _WORD_MEMO:
                    words[word] = cols
            out.extend(cols)
        return out

    def __len__(self) -> int:
        return len(self.idf)

    @property
    def terms(self) -> list[str]:
        return list(self.index)

    def weights(self, text: str) -> list[tuple[int, float]]:
        """(column, L2-normalised sublinear tf-idf) of a normalised text's known terms."""
        idf = self.idf
        counts = Counter(self.columns(text))
        block = [(i, (1.0 + math.log(c)) * idf[i]) for i, c in counts.items()]
        norm = math.sqrt(sum(v * v for _, v in block))
        return [(i, v / norm) for i, v in block] if norm > 0 else []


def fit_vocabulary(analyzer: Callable[[str], list[str]], texts: Iterable[str]) -> Vocabulary:
    """Terms (sorted) and smoothed idf over normalised ``texts``."""
    df: Counter[str] = Counter()
    n = 0
    for text in texts:
        df.update(set(analyzer(text)))
        n += 1
    terms = sorted(df)
    return Vocabulary(analyzer, terms, [math.log((1 + n) / (1 + df[t])) + 1.0 for t in terms])


def sparse_row(blocks: Sequence[Vocabulary], text: str) -> tuple[list[int], list[float]]:
    """The TF-IDF feature row of one raw text over ``blocks`` laid side by side, as
    (column indices, values); empty when no known term occurs."""
    norm_text = normalize_text(text)
    indices: list[int] = []
    values: list[float] = []
    offset = 0
    for block in blocks:
        for i, v in block.weights(norm_text):
            indices.append(offset + i)
            values.append(v)
        offset += len(block)
    total = math.sqrt(sum(v * v for v in values))
    if total > 0:
        values = [v / total for v in values]
    return indices, values
