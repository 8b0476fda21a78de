"""The wire formats of the providers the fake server imitates, one class per protocol.

Each protocol knows how to read a request (model, stream flag, prompt text) and how to
write a complete answer, a stream (opening events, one event per text chunk, closing
events) and an error body, byte for byte the way the real provider does. The server
(:mod:`director_llm.testing.servers`) only decides *what* to send and *when*.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

__all__ = ["PROTOCOLS", "Protocol", "count_tokens"]

INVALID_UTF8 = b"\xff\xfe\xfd"
"""Bytes that can never appear in UTF-8, spliced into answers by the invalid-UTF-8 fault."""
_UTF8_MARK = "@@INVALID-UTF8@@"


def count_tokens(text: str) -> int:
    """The fake tokeniser: one token per whitespace-separated word, at least 1."""
    return max(1, len(text.split()))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def with_invalid_utf8(payload: bytes) -> bytes:
    """Replace the marker written by :meth:`Protocol.invalid_text` with invalid bytes."""
    return payload.replace(_UTF8_MARK.encode(), INVALID_UTF8)


def _texts(content: Any) -> list[str]:
    """Text pieces of an OpenAI/Anthropic/Ollama message ``content`` field."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part.get("text", "") for part in content if isinstance(part, dict)]
    return []


class Protocol:
    """OpenAI chat completions (``/v1/chat/completions``); the base for the others."""

    name: ClassVar[str] = "openai"
    stream_content_type: ClassVar[str] = "text/event-stream"
    json_content_type: ClassVar[str] = "application/json"

    def __init__(self) -> None:
        # One instance serves one request, so a stream's id can live on it.
        self._stream_id = f"chatcmpl-fake{uuid.uuid4().hex[:20]}"

    # -- reading -------------------------------------------------------------------------
    def model(self, body: Any, path_model: str | None) -> str | None:
        """Model named by the request."""
        return body.get("model") if isinstance(body, dict) else path_model

    def wants_stream(self, body: Any, query: dict[str, str], path: str) -> bool:
        """Whether the client asked for a streamed answer."""
        return isinstance(body, dict) and bool(body.get("stream"))

    def prompt_text(self, body: Any) -> str:
        """All prompt text, for computing ``prompt_tokens``."""
        if not isinstance(body, dict):
            return ""
        return " ".join(t for m in body.get("messages") or [] for t in _texts(m.get("content")))

    # -- complete answers ----------------------------------------------------------------
    def complete(self, model: str, text: str, usage: tuple[int, int], finish_reason: str) -> bytes:
        """A whole non-streamed answer."""
        message = {"role": "assistant", "content": text}
        return _dumps(self._completion(model, [self._choice(message, finish_reason)], usage))

    def empty(self, model: str, usage: tuple[int, int]) -> bytes:
        """A 200 answer with no choices."""
        return _dumps(self._completion(model, [], usage))

    def _choice(self, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
        return {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason,
        }

    def _completion(self, model: str, choices: list[Any], usage: tuple[int, int]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{uuid.uuid4().hex[:20]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": choices,
            "usage": _openai_usage(usage),
            "system_fingerprint": "fp_fake",
        }

    # -- streams -------------------------------------------------------------------------
    def stream_open(self, model: str, usage: tuple[int, int], request_body: Any) -> list[bytes]:
        """Events sent before the first text chunk."""
        return [self._sse(self._chunk(model, {"role": "assistant", "content": ""}, None))]

    def stream_text(self, model: str, text: str) -> bytes:
        """One event carrying ``text``."""
        return self._sse(self._chunk(model, {"content": text}, None))

    def stream_close(self, model: str, usage: tuple[int, int], finish_reason: str, request_body: Any) -> list[bytes]:
        """Events sent after the last text chunk."""
        events = [self._sse(self._chunk(model, {}, finish_reason))]
        options = request_body.get("stream_options") if isinstance(request_body, dict) else None
        if isinstance(options, dict) and options.get("include_usage"):
            final = self._chunk(model, {}, None)
            final["choices"] = []
            final["usage"] = _openai_usage(usage)
            events.append(self._sse(final))
        events.append(b"data: [DONE]\n\n")
        return events

    def stream_malformed(self, model: str) -> bytes:
        """An event whose JSON is cut short."""
        return b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"delta":\n\n'

    def stream_empty(self, model: str) -> list[bytes]:
        """A stream of chunks with no choices."""
        chunk = self._chunk(model, {}, None)
        chunk["choices"] = []
        return [self._sse(chunk), b"data: [DONE]\n\n"]

    def _chunk(self, model: str, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {
            "id": self._stream_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
        }

    @staticmethod
    def _sse(obj: Any, event: str | None = None) -> bytes:
        prefix = f"event: {event}\n".encode() if event else b""
        return prefix + b"data: " + _dumps(obj) + b"\n\n"

    # -- errors --------------------------------------------------------------------------
    def error(self, status: int, message: str, error_type: str | None) -> bytes:
        """The provider's error body for ``status``."""
        kind = "invalid_request_error" if status < 500 else "server_error"
        if status == 429:
            kind = "requests"
        if status == 401:
            kind = "invalid_request_error"
        code = error_type or {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return _dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})

    @staticmethod
    def invalid_text(text: str) -> str:
        """``text`` with a marker that :func:`with_invalid_utf8` turns into invalid bytes."""
        return f"{text} {_UTF8_MARK}"

    @staticmethod
    def malformed() -> bytes:
        """A non-streamed body that is not valid JSON."""
        return b'{"id": "broken", "choices": [{"message": {"content": "cut'


def _openai_usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class GeminiOpenAIProtocol(Protocol):
    """Gemini's OpenAI-compatible endpoint (``/v1beta/openai/chat/completions``)."""

    name: ClassVar[str] = "gemini_openai"


class AnthropicProtocol(Protocol):
    """Anthropic messages (``/v1/messages``)."""

    name: ClassVar[str] = "anthropic"
    _STOP: ClassVar[dict[str, str]] = {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
    }

    def prompt_text(self, body: Any) -> str:
        if not isinstance(body, dict):
            return ""
        system = " ".join(_texts(body.get("system")))
        return " ".join([system, super().prompt_text(body)]).strip()

    def complete(self, model: str, text: str, usage: tuple[int, int], finish_reason: str) -> bytes:
        return _dumps(self._message(model, [{"type": "text", "text": text}], usage, finish_reason))

    def empty(self, model: str, usage: tuple[int, int]) -> bytes:
        return _dumps(self._message(model, [], usage, "stop"))

    def _message(
        self,
        model: str,
        content: list[Any],
        usage: tuple[int, int],
        finish_reason: str | None,
    ) -> dict[str, Any]:
        return {
            "id": f"msg_fake{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": self._STOP.get(finish_reason, finish_reason) if finish_reason else None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        }

    def stream_open(self, model: str, usage: tuple[int, int], request_body: Any) -> list[bytes]:
        start = self._message(model, [], (usage[0], 1), None)
        return [
            self._sse({"type": "message_start", "message": start}, "message_start"),
            self._sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            self._sse({"type": "ping"}, "ping"),
        ]

    def stream_text(self, model: str, text: str) -> bytes:
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        }
        return self._sse(delta, "content_block_delta")

    def stream_close(self, model: str, usage: tuple[int, int], finish_reason: str, request_body: Any) -> list[bytes]:
        stop = self._STOP.get(finish_reason, finish_reason)
        return [
            self._sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            self._sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage[1]},
                },
                "message_delta",
            ),
            self._sse({"type": "message_stop"}, "message_stop"),
        ]

    def stream_malformed(self, model: str) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{\n\n'

    def stream_empty(self, model: str) -> list[bytes]:
        return [
            self._sse(
                {
                    "type": "message_start",
                    "message": self._message(model, [], (1, 0), None),
                },
                "message_start",
            ),
            self._sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 0},
                },
                "message_delta",
            ),
            self._sse({"type": "message_stop"}, "message_stop"),
        ]

    def error(self, status: int, message: str, error_type: str | None) -> bytes:
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            413: "request_too_large",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error")
        if error_type == "context_length_exceeded":
            kind = "invalid_request_error"
        return _dumps({"type": "error", "error": {"type": kind, "message": message}})


class OllamaProtocol(Protocol):
    """Ollama chat (``/api/chat``): NDJSON streaming, and ``stream`` defaults to true."""

    name: ClassVar[str] = "ollama"
    stream_content_type: ClassVar[str] = "application/x-ndjson"

    def wants_stream(self, body: Any, query: dict[str, str], path: str) -> bool:
        return isinstance(body, dict) and body.get("stream", True) is not False

    def complete(self, model: str, text: str, usage: tuple[int, int], finish_reason: str) -> bytes:
        return _dumps(self._final(model, text, usage, finish_reason))

    def empty(self, model: str, usage: tuple[int, int]) -> bytes:
        return _dumps(self._final(model, "", usage, "stop"))

    def _line(self, model: str, text: str) -> dict[str, Any]:
        return {
            "model": model,
            "created_at": _iso_now(),
            "message": {"role": "assistant", "content": text},
            "done": False,
        }

    def _final(self, model: str, text: str, usage: tuple[int, int], finish_reason: str) -> dict[str, Any]:
        final = self._line(model, text)
        final.update(
            done=True,
            done_reason="length" if finish_reason == "length" else "stop",
            total_duration=1_000_000,
            load_duration=100_000,
            prompt_eval_count=usage[0],
            prompt_eval_duration=200_000,
            eval_count=usage[1],
            eval_duration=700_000,
        )
        return final

    def stream_open(self, model: str, usage: tuple[int, int], request_body: Any) -> list[bytes]:
        return []

    def stream_text(self, model: str, text: str) -> bytes:
        return _dumps(self._line(model, text)) + b"\n"

    def stream_close(self, model: str, usage: tuple[int, int], finish_reason: str, request_body: Any) -> list[bytes]:
        return [_dumps(self._final(model, "", usage, finish_reason)) + b"\n"]

    def stream_malformed(self, model: str) -> bytes:
        return b'{"model":"' + model.encode() + b'","message":{"role":"assistant","content":\n'

    def stream_empty(self, model: str) -> list[bytes]:
        return [_dumps(self._final(model, "", (1, 0), "stop")) + b"\n"]

    def error(self, status: int, message: str, error_type: str | None) -> bytes:
        return _dumps({"error": message})

    @staticmethod
    def tags(models: list[str]) -> bytes:
        """Body of ``GET /api/tags``."""
        return _dumps(
            {
                "models": [
                    {
                        "name": m,
                        "model": m,
                        "modified_at": _iso_now(),
                        "size": 1_000_000,
                        "digest": uuid.uuid5(uuid.NAMESPACE_URL, m).hex,
                        "details": {
                            "format": "gguf",
                            "family": "llama",
                            "parameter_size": "1B",
                        },
                    }
                    for m in models
                ]
            }
        )

    @staticmethod
    def show(model: str) -> bytes:
        """Body of ``POST /api/show``: enough for LiteLLM's model-info lookup."""
        return _dumps(
            {
                "modelfile": f"FROM {model}",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": {
                    "format": "gguf",
                    "family": "llama",
                    "parameter_size": "1B",
                },
                "model_info": {
                    "general.architecture": "llama",
                    "llama.context_length": 8192,
                },
                "capabilities": ["completion"],
            }
        )


class GeminiProtocol(Protocol):
    """Gemini native (``/v1beta/models/{model}:generateContent`` / ``:streamGenerateContent``)."""

    name: ClassVar[str] = "gemini"
    _STOP: ClassVar[dict[str, str]] = {
        "stop": "STOP",
        "length": "MAX_TOKENS",
        "content_filter": "SAFETY",
    }

    def model(self, body: Any, path_model: str | None) -> str | None:
        return path_model

    def wants_stream(self, body: Any, query: dict[str, str], path: str) -> bool:
        return path.endswith(":streamGenerateContent")

    def is_sse(self, query: dict[str, str]) -> bool:
        """Streams use SSE with ``?alt=sse``; otherwise a streamed JSON array."""
        return query.get("alt") == "sse"

    def prompt_text(self, body: Any) -> str:
        if not isinstance(body, dict):
            return ""
        contents = list(body.get("contents") or [])
        if isinstance(body.get("systemInstruction"), dict):
            contents.append(body["systemInstruction"])
        return " ".join(
            str(part.get("text", "")) for c in contents for part in c.get("parts") or [] if isinstance(part, dict)
        )

    def _response(
        self,
        model: str,
        text: str | None,
        usage: tuple[int, int],
        finish_reason: str | None,
    ) -> dict[str, Any]:
        candidates: list[Any] = []
        if text is not None:
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "index": 0,
            }
            if finish_reason:
                candidate["finishReason"] = self._STOP.get(finish_reason, finish_reason.upper())
            candidates.append(candidate)
        return {
            "candidates": candidates,
            "usageMetadata": {
                "promptTokenCount": usage[0],
                "candidatesTokenCount": usage[1],
                "totalTokenCount": usage[0] + usage[1],
            },
            "modelVersion": model,
            "responseId": uuid.uuid4().hex[:22],
        }

    def complete(self, model: str, text: str, usage: tuple[int, int], finish_reason: str) -> bytes:
        return _dumps(self._response(model, text, usage, finish_reason))

    def empty(self, model: str, usage: tuple[int, int]) -> bytes:
        return _dumps(self._response(model, None, usage, None))

    # Gemini streams whole GenerateContentResponse objects: text events without usage, and
    # the usage on the last one. With ``?alt=sse`` each is an SSE event; without it the
    # stream is one JSON array written element by element.
    sse: bool = True
    _events_sent: int = 0

    def _frame(self, obj: Any) -> bytes:
        if self.sse:
            return b"data: " + _dumps(obj) + b"\r\n\r\n"
        sep = b"" if self._events_sent == 0 else b",\r\n"
        self._events_sent += 1
        return sep + _dumps(obj)

    def stream_open(self, model: str, usage: tuple[int, int], request_body: Any) -> list[bytes]:
        return [] if self.sse else [b"["]

    def stream_text(self, model: str, text: str) -> bytes:
        event = self._response(model, text, (0, 0), None)
        del event["usageMetadata"]
        return self._frame(event)

    def stream_close(self, model: str, usage: tuple[int, int], finish_reason: str, request_body: Any) -> list[bytes]:
        events = [self._frame(self._response(model, "", usage, finish_reason))]
        return events if self.sse else [*events, b"]"]

    def stream_malformed(self, model: str) -> bytes:
        return b'data: {"candidates":[{"content":{"parts":[{"text":\r\n\r\n'

    def stream_empty(self, model: str) -> list[bytes]:
        events = [self._frame(self._response(model, None, (1, 0), None))]
        return events if self.sse else [b"[", *events, b"]"]

    def error(self, status: int, message: str, error_type: str | None) -> bytes:
        grpc = {
            400: "INVALID_ARGUMENT",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            503: "UNAVAILABLE",
            504: "DEADLINE_EXCEEDED",
        }.get(status, "INTERNAL")
        return _dumps({"error": {"code": status, "message": message, "status": grpc}})


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


PROTOCOLS: dict[str, type[Protocol]] = {
    p.name: p
    for p in (
        Protocol,
        GeminiOpenAIProtocol,
        AnthropicProtocol,
        OllamaProtocol,
        GeminiProtocol,
    )
}
"""Protocol classes by name; instantiate one per request."""
