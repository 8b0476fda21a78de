"""What a fake provider saw: the requests it received and the clients that hung up early."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Disconnect", "RecordedRequest"]

_KEY_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received by the fake server.

    Attributes:
        protocol: ``"openai"``, ``"anthropic"``, ``"ollama"``, ``"gemini"`` or
            ``"gemini_openai"``.
        path: URL path, e.g. ``/v1/chat/completions``.
        model: Model name from the body (or from the URL for Gemini native), or None.
        headers: Request headers, names lower-cased.
        body: Parsed JSON body (None when absent or not JSON).
        query: Query-string parameters.
        received_at: ``time.time()`` when the request arrived.
        stream: Whether the client asked for a streamed answer.
    """

    protocol: str
    path: str
    model: str | None
    headers: dict[str, str]
    body: Any
    query: dict[str, str]
    received_at: float
    stream: bool = False

    @property
    def api_key(self) -> str | None:
        """The credential the client sent, whichever header or query parameter carried it."""
        for name in _KEY_HEADERS:
            value = self.headers.get(name)
            if value:
                return value.removeprefix("Bearer ").removeprefix("bearer ")
        return self.query.get("key")

    @property
    def credentials(self) -> dict[str, str]:
        """Every credential header and query parameter the client sent, by (lower-case) name."""
        found = {name: self.headers[name] for name in _KEY_HEADERS if self.headers.get(name)}
        if self.query.get("key"):
            found["?key"] = self.query["key"]
        return found

    @property
    def messages(self) -> list[Any]:
        """The chat messages (``messages`` or Gemini's ``contents``), or an empty list."""
        if not isinstance(self.body, dict):
            return []
        return list(self.body.get("messages") or self.body.get("contents") or [])

    @property
    def last_user_text(self) -> str:
        """Text of the last user message, whatever the protocol ("" when there is none).

        Handy for responders that answer according to what the user asked. A message made
        of several text parts gives them joined by newlines; note that LiteLLM's ``gemini/``
        provider, given an ``api_base``, sends the system prompt as the first part of the
        first user message rather than as ``systemInstruction``.
        """
        for message in reversed(self.messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _message_text(message)
        return ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (used by the HTTP control endpoint)."""
        return asdict(self)


def _message_text(message: dict[str, Any]) -> str:
    # OpenAI/Anthropic/Ollama: "content" is a string or a list of typed parts;
    # Gemini: "parts" is a list of {"text": ...}.
    content = message.get("content", message.get("parts"))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A client that closed its connection before the answer was complete.

    Attributes:
        protocol: Protocol of the interrupted request.
        model: Model of the interrupted request.
        path: URL path of the interrupted request.
        chunks_sent: How many text chunks had been written before the disconnect.
        at: ``time.time()`` when the server noticed.
    """

    protocol: str
    model: str | None
    path: str
    chunks_sent: int
    at: float = field(default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)
