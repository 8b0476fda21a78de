"""Cache keys: canonical JSON hashed with BLAKE2b, plus input normalization.

A key must change whenever the answer could change, and only then. So:

* ``make_key`` hashes *everything* that shapes the answer (the payload: messages, model
  tier, temperature, schema...) together with ``namespace_parts`` (what kind of entry this
  is: ``{"kind": "classify"}``). The JSON is canonical (sorted keys, no whitespace, no
  lossy ``default=str``), so equal inputs give equal keys across processes and hosts.
* The *namespace* that ``TieredCache`` puts in front of every key comes from
  ``fingerprint(config_section)``: editing the prompts, flows or models changes the
  fingerprint, hence the namespace, so a config change can never serve a stale answer.

Normalization (what is safe to fold before hashing)
---------------------------------------------------
Folding more raises the hit rate but risks serving one text's answer to another that
means something different. Two levels:

================================  ==============  ==========================================
step                              classification  completion (chat)
================================  ==============  ==========================================
NFC (canonical equivalence)       yes             yes: renders identically, same meaning
NFKC (compatibility: ``ｆｕｌｌ``,  yes             no: ``x²`` -> ``x2``, ``ﬁ`` -> ``fi`` change
ligatures, superscripts)                          what a model is asked
casefold                          yes             no: "US" vs "us", code identifiers
collapse whitespace runs          yes             no: indentation in code is meaning
``\\r\\n`` -> ``\\n``, strip ends     yes             yes: transport noise, not content
================================  ==============  ==========================================

An intent depends on what the user wants, not on how they typed it, so classification
folds aggressively; a chat answer may depend on every character, so completion keeps
everything a reader could see.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["fingerprint", "make_key", "normalize_for_classification", "normalize_for_completion"]

#: 16-byte digests: 128 bits make an accidental collision negligible at any cache size we
#: will ever hold, and keep Redis keys short.
_DIGEST_SIZE = 16
#: Namespaces are short fingerprints; 8 bytes (16 hex chars) is plenty to tell configs apart.
_FINGERPRINT_SIZE = 8
_WHITESPACE = re.compile(r"\s+")


def _canonical_json(obj: Any) -> bytes:
    # No ``default=``: an object without a JSON form must be an error, not ``str(obj)``,
    # which could map two different objects to the same key.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def make_key(namespace_parts: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    """Return the hex BLAKE2b digest of ``namespace_parts`` and ``payload`` as canonical JSON.

    Both must be JSON-serializable (dicts, lists, str, int, float, bool, None); dump
    pydantic models with ``model_dump(mode="json")`` first. Raises ``TypeError`` or
    ``ValueError`` for anything else (including NaN), because a lossy fallback could make
    two different requests share an answer.
    """
    digest = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    digest.update(_canonical_json({"ns": namespace_parts, "payload": payload}))
    return digest.hexdigest()


def fingerprint(obj: Any) -> str:
    """Short hex digest of ``obj`` as canonical JSON: derive a cache namespace from config.

    Example: ``fingerprint(config.model_dump(mode="json", include={...}))``.
    """
    return hashlib.blake2b(_canonical_json(obj), digest_size=_FINGERPRINT_SIZE).hexdigest()


def normalize_for_classification(text: str) -> str:
    """Fold ``text`` for intent classification keys: NFKC, casefold, whitespace collapsed.

    "Quero  CANCELAR\\n" and "quero cancelar" share a key: the intent is the same.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return _WHITESPACE.sub(" ", text).strip()


def normalize_for_completion(text: str) -> str:
    """Fold ``text`` for chat completion keys: NFC, ``\\r\\n`` -> ``\\n``, ends stripped.

    Keeps case, inner whitespace and compatibility characters: they can change the answer.
    """
    text = unicodedata.normalize("NFC", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()
