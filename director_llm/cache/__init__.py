"""Multi-layer cache: in-process memory -> Redis -> disk (see ``tiered``).

Importing this package is cheap: redis-py and diskcache load only when a ``TieredCache``
turns those layers on.
"""

from director_llm.cache.codec import BytesCodec, Codec, JsonCodec, PydanticCodec
from director_llm.cache.keys import (
    fingerprint,
    make_key,
    normalize_for_classification,
    normalize_for_completion,
)
from director_llm.cache.stats import CacheStats, LayerStats
from director_llm.cache.tiered import CacheHit, TieredCache

__all__ = [
    "BytesCodec",
    "CacheHit",
    "CacheStats",
    "Codec",
    "JsonCodec",
    "LayerStats",
    "PydanticCodec",
    "TieredCache",
    "fingerprint",
    "make_key",
    "normalize_for_classification",
    "normalize_for_completion",
]
