"""How values become bytes: codecs, and the envelope every layer stores.

Redis is shared across processes and hosts, so what it holds must be data, never code:
no pickle (unpickling attacker-written bytes runs their code). Values are JSON, through
pydantic-core (Rust, as fast as orjson, already a dependency):

* ``JsonCodec``   dicts, lists, scalars (pydantic models are dumped as dicts). Default.
* ``PydanticCodec(tp)``  any type pydantic can validate (``IntentResult``, ``list[X]``):
  the hit comes back as ``tp``, not as a dict.
* ``BytesCodec``  raw bytes, untouched.

The envelope is ``MAGIC (2 bytes) | expires_at (float64, Unix seconds) | payload``. The
absolute expiry travels with the value so that promoting an entry from Redis or disk to
memory keeps its *remaining* lifetime instead of restarting the TTL, and so that every
layer can reject an expired entry even if its own TTL mechanism lagged. The magic's
second byte is the format version: a future format reads old entries as corrupt (a miss).
"""

from __future__ import annotations

import struct
from typing import Any, Generic, Protocol, TypeVar

# pydantic-core is loaded by the config models anyway, so this import costs nothing extra.
from pydantic_core import from_json, to_json

__all__ = ["BytesCodec", "Codec", "EnvelopeError", "JsonCodec", "PydanticCodec", "pack", "unpack"]

T = TypeVar("T")

MAGIC = b"D\x01"
_HEADER = struct.Struct(">2sd")
HEADER_SIZE = _HEADER.size


class EnvelopeError(ValueError):
    """The stored bytes are not an entry this version wrote (garbage, truncation, old format)."""


def pack(payload: bytes, expires_at: float) -> bytes:
    """Wrap ``payload`` with the magic and its absolute expiry (Unix seconds)."""
    return _HEADER.pack(MAGIC, expires_at) + payload


def unpack(blob: bytes) -> tuple[float, bytes]:
    """Return ``(expires_at, payload)``; raise ``EnvelopeError`` if ``blob`` is not an entry."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < HEADER_SIZE:
        raise EnvelopeError("entry too short or not bytes")
    magic, expires_at = _HEADER.unpack_from(blob)
    if magic != MAGIC or expires_at != expires_at:  # second test: NaN
        raise EnvelopeError("bad magic or expiry")
    return expires_at, bytes(blob[HEADER_SIZE:])


class Codec(Protocol[T]):
    """Turns a value into bytes and back. ``loads`` raises (any exception) on bad input."""

    def dumps(self, value: T) -> bytes: ...

    def loads(self, data: bytes) -> T: ...


class JsonCodec:
    """JSON via pydantic-core. Models and dataclasses are dumped; hits come back as dicts."""

    def dumps(self, value: Any) -> bytes:
        return to_json(value)

    def loads(self, data: bytes) -> Any:
        return from_json(data)


class PydanticCodec(Generic[T]):
    """JSON validated into ``tp`` on the way out, so a cached ``IntentResult`` stays one."""

    def __init__(self, tp: type[T] | Any) -> None:
        from pydantic import TypeAdapter

        self._adapter: Any = TypeAdapter(tp)

    def dumps(self, value: T) -> bytes:
        return self._adapter.dump_json(value)

    def loads(self, data: bytes) -> T:
        return self._adapter.validate_json(data)


class BytesCodec:
    """Identity: for callers that serialize themselves."""

    def dumps(self, value: bytes) -> bytes:
        return bytes(value)

    def loads(self, data: bytes) -> bytes:
        return data
