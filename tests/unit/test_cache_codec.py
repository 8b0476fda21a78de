"""Envelope and codecs: round trips, and garbage detected rather than trusted."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from director_llm.cache.codec import BytesCodec, EnvelopeError, JsonCodec, PydanticCodec, pack, unpack


class Intent(BaseModel):
    flow: str
    confidence: float


def test_envelope_round_trip_keeps_expiry_and_payload() -> None:
    blob = pack(b'{"a":1}', 1234.5)
    assert unpack(blob) == (1234.5, b'{"a":1}')


@pytest.mark.parametrize("garbage", [b"", b"D", b"not an entry at all", b"D\x02" + bytes(8) + b"x"])
def test_envelope_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(EnvelopeError):
        unpack(garbage)


def test_json_codec_round_trips_a_chat_completion_dict() -> None:
    value = {"id": "c1", "choices": [{"message": {"role": "assistant", "content": "olá"}}], "usage": None}
    codec = JsonCodec()
    assert codec.loads(codec.dumps(value)) == value


def test_json_codec_dumps_models_as_dicts() -> None:
    codec = JsonCodec()
    assert codec.loads(codec.dumps(Intent(flow="billing", confidence=0.9))) == {"flow": "billing", "confidence": 0.9}


def test_pydantic_codec_returns_the_model_type() -> None:
    codec = PydanticCodec(Intent)
    back = codec.loads(codec.dumps(Intent(flow="billing", confidence=0.9)))
    assert isinstance(back, Intent) and back.flow == "billing"
    with pytest.raises(ValueError):
        codec.loads(b'{"flow": 3}')


def test_bytes_codec_is_identity() -> None:
    assert BytesCodec().loads(BytesCodec().dumps(b"\x00\xff")) == b"\x00\xff"


# ------------------------------------------------------------------------ signed envelope
SIGNING_KEY = b"k" * 32
FULL_KEY = "director:v1:cfg-0123:abcd"


def test_signed_envelope_round_trip_and_any_change_is_refused() -> None:
    blob = pack(b'{"flow":"cancel"}', 99.0, key=FULL_KEY, signing_key=SIGNING_KEY)
    assert blob.startswith(b"S\x01")
    assert unpack(blob, key=FULL_KEY, signing_key=SIGNING_KEY) == (99.0, b'{"flow":"cancel"}')
    for i in range(len(blob)):  # flip each byte in turn: header, tag and payload are all covered
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(EnvelopeError):
            unpack(bytes(tampered), key=FULL_KEY, signing_key=SIGNING_KEY)
    with pytest.raises(EnvelopeError, match="signature"):
        unpack(blob, key=FULL_KEY + "x", signing_key=SIGNING_KEY)  # replayed under another key
    with pytest.raises(EnvelopeError, match="signature"):
        unpack(blob, key=FULL_KEY, signing_key=b"another key")


def test_signing_on_refuses_unsigned_entries_and_off_accepts_signed_ones() -> None:
    with pytest.raises(EnvelopeError, match="unsigned"):
        unpack(pack(b"{}", 5.0), key=FULL_KEY, signing_key=SIGNING_KEY)
    signed = pack(b"{}", 5.0, key=FULL_KEY, signing_key=SIGNING_KEY)
    assert unpack(signed) == (5.0, b"{}")  # a reader without the secret trusts the store anyway
    with pytest.raises(EnvelopeError):
        unpack(signed[:20], key=FULL_KEY, signing_key=SIGNING_KEY)  # cut inside the tag
