"""The request engine: one path for complete, stream, classify and stream-classify."""

from director_llm.engine.core import Engine
from director_llm.engine.parts import Parts
from director_llm.engine.run import AttemptRejected, Run, Slot
from director_llm.engine.stream import ResponseStream, StreamEnd, TextDelta

__all__ = ["AttemptRejected", "Engine", "Parts", "ResponseStream", "Run", "Slot", "StreamEnd", "TextDelta"]
