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

Signed entries. With a signing key (``DIRECTOR_CACHE_SECRET`` set, see ``cache.identity``)
the envelope is ``SIGNED_MAGIC | expires_at | tag (32 bytes) | payload``, where ``tag`` is
HMAC-SHA256 over the entry's full cache key, the header and the payload: an entry cannot be
forged, edited, given a longer life or copied under another key by someone who can write
to Redis or the disk directory but does not know the secret. A reader with a signing key
treats an unsigned or badly signed entry as corrupt (a miss: deleted, then overwritten); a
reader without one accepts signed entries without checking them (it trusts the store
anyway).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from typing import Any, Generic, Protocol, TypeVar

# pydantic-core is loaded by the config models anyway, so this import costs nothing extra.
from pydantic_core import from_json, to_json

__all__ = ["BytesCodec", "Codec", "EnvelopeError", "JsonCodec", "PydanticCodec", "pack", "unpack"]

T = TypeVar("T")

MAGIC = b"D\x01"
SIGNED_MAGIC = b"S\x01"
_HEADER = struct.Struct(">2sd")
HEADER_SIZE = _HEADER.size
TAG_SIZE = hashlib.sha256().digest_size


class EnvelopeError(ValueError):
    """The stored bytes are not an entry this version wrote (garbage, truncation, old
    format), or not one signed with this process' key."""


def _tag(signing_key: bytes, key: str, header: bytes, payload: bytes) -> bytes:
    mac = hmac.new(signing_key, key.encode("utf-8"), hashlib.sha256)
    mac.update(b"\x00")
    mac.update(header)
    mac.update(payload)
    return mac.digest()


def pack(payload: bytes, expires_at: float, *, key: str = "", signing_key: bytes | None = None) -> bytes:
    """Wrap ``payload`` with the magic and its absolute expiry (Unix seconds); with a
    ``signing_key``, sign it for the full cache ``key`` it is stored under."""
    if signing_key is None:
        return _HEADER.pack(MAGIC, expires_at) + payload
    header = _HEADER.pack(SIGNED_MAGIC, expires_at)
    return header + _tag(signing_key, key, header, payload) + payload


def unpack(blob: bytes, *, key: str = "", signing_key: bytes | None = None) -> tuple[float, bytes]:
    """Return ``(expires_at, payload)``; raise ``EnvelopeError`` if ``blob`` is not an entry
    (or, with a ``signing_key``, not one validly signed for ``key``)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) < HEADER_SIZE:
        raise EnvelopeError("entry too short or not bytes")
    blob = bytes(blob)
    magic, expires_at = _HEADER.unpack_from(blob)
    if magic not in (MAGIC, SIGNED_MAGIC) or math.isnan(expires_at):
        raise EnvelopeError("bad magic or expiry")
    if magic == MAGIC:
        if signing_key is not None:
            raise EnvelopeError("unsigned entry (signing is on)")
        return expires_at, blob[HEADER_SIZE:]
    if len(blob) < HEADER_SIZE + TAG_SIZE:
        raise EnvelopeError("signed entry too short")
    tag = blob[HEADER_SIZE : HEADER_SIZE + TAG_SIZE]
    payload = blob[HEADER_SIZE + TAG_SIZE :]
    if signing_key is not None and not hmac.compare_digest(tag, _tag(signing_key, key, blob[:HEADER_SIZE], payload)):
        raise EnvelopeError("bad signature")
    return expires_at, payload


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
