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
