"""Moved to ``director_llm.engine.stream`` (streams run on the request engine); the names
stay importable from here."""

from director_llm.engine.stream import RESUME_PROMPT, ResponseStream, StreamChunk, StreamEnd, TextDelta
from director_llm.route import Attempt, Route

__all__ = ["RESUME_PROMPT", "Attempt", "ResponseStream", "Route", "StreamChunk", "StreamEnd", "TextDelta"]
