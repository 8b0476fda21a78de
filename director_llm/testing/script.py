"""What a fake provider answers: replies, faults, and the per-model scripts that pick them.

A *behaviour* is either a :class:`Reply` (a successful completion, possibly slow or streamed
at a realistic token rate) or a :class:`Fault` (an HTTP error, a hang, a reset connection,
a broken body or stream). A :class:`ScriptBook` decides, for each incoming request, which
behaviour to play:

1. a responder registered with ``respond_with`` (a callable ``fn(request) -> Reply | Fault``),
2. else the next step of a sequence registered with ``script`` (then its ``then`` behaviour,
   if any, once the steps are used up),
3. else the default behaviour.

Rules are matched on model name and/or protocol, and optionally on the API key the client
sent (``api_key=``: whichever header carried it, see ``RecordedRequest.api_key``); the most
specific rule wins (a key rule before any rule without a key; then model and protocol, then
model only, then protocol only). Everything here is plain data so that a
scenario can also be loaded from JSON (see :func:`behaviour_from_dict`).
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from director_llm.testing.recording import RecordedRequest

__all__ = [
    "Behaviour",
    "Fault",
    "FaultKind",
    "Reply",
    "Responder",
    "ScriptBook",
    "behaviour_from_dict",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful completion.

    Args:
        text: The assistant's text. Ignored when ``json`` is given.
        json: Any JSON-serialisable object; the reply text is its ``json.dumps``.
        usage: ``(prompt_tokens, completion_tokens)`` to report, or None to compute them
            (one token per whitespace-separated word, at least 1).
        delay: Seconds to wait before sending response headers.
        first_token_delay: Extra seconds before the first streamed chunk (added to
            ``delay`` for a non-streamed reply).
        token_delay: Seconds between streamed chunks.
        chunk_chars: Stream in slices of this many characters; None streams word by word.
        finish_reason: OpenAI-style finish reason; translated for other protocols.
    """

    text: str = "This is a fake reply."
    json: Any = None
    usage: tuple[int, int] | None = None
    delay: float = 0.0
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    chunk_chars: int | None = None
    finish_reason: str = "stop"

    @property
    def content(self) -> str:
        """The text the client should receive."""
        if self.json is not None:
            return json.dumps(self.json)
        return self.text

    def chunks(self) -> list[str]:
        """Split :attr:`content` into the pieces a stream sends, in order."""
        content = self.content
        if not content:
            return []
        if self.chunk_chars:
            size = self.chunk_chars
            return [content[i : i + size] for i in range(0, len(content), size)]
        # Word by word, each word keeping the whitespace before it, as real tokenisers do.
        pieces: list[str] = []
        current = ""
        for ch in content:
            if ch.isspace() and current and not current.isspace():
                pieces.append(current)
                current = ""
            current += ch
        pieces.append(current)
        return pieces


class FaultKind(enum.StrEnum):
    """The ways a fake provider can misbehave."""

    STATUS = "status"
    """An HTTP error status with a provider-shaped error body."""
    HANG = "hang"
    """Accept the request and never answer (until the client gives up)."""
    RESET = "reset"
    """Close the TCP connection abruptly (RST) without any response."""
    MALFORMED_JSON = "malformed_json"
    """Status 200 with a body (or stream event) that is not valid JSON."""
    CUT_STREAM = "cut_stream"
    """Send the headers and a few chunks, then close the connection mid-body."""
    INVALID_UTF8 = "invalid_utf8"
    """Status 200 with invalid UTF-8 bytes inside the text."""
    EMPTY_CHOICES = "empty_choices"
    """Status 200 with no choices / content blocks / candidates."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A misbehaviour. Build one with the class methods, e.g. ``Fault.status(503)``.

    Attributes:
        kind: What goes wrong.
        status_code: HTTP status for ``STATUS`` faults.
        message: Error message put in the provider-shaped error body.
        error_type: Provider error type/code (e.g. ``"context_length_exceeded"``).
        body: Raw body to send instead of the provider-shaped one.
        headers: Extra response headers (e.g. ``Retry-After``).
        after_chunks: For ``CUT_STREAM``: how many text chunks to send before closing.
        reset: For ``CUT_STREAM``: close with a TCP RST instead of a clean FIN.
        delay: Seconds to wait before misbehaving.
        echo_credentials: For ``STATUS`` faults: append the credential headers and query
            parameters the client sent (``Authorization``, ``x-api-key``, ``x-goog-api-key``,
            ``api-key``, ``?key=``) to the error message, as careless providers and proxies
            do. For redaction tests.
    """

    kind: FaultKind
    status_code: int = 500
    message: str = ""
    error_type: str | None = None
    body: str | bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    after_chunks: int = 2
    reset: bool = False
    delay: float = 0.0
    echo_credentials: bool = False

    @classmethod
    def status(
        cls,
        status_code: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        echo_credentials: bool = False,
    ) -> Fault:
        """An HTTP error. ``body`` replaces the provider-shaped error body when given;
        ``echo_credentials`` appends the credentials the client sent to the message."""
        return cls(
            FaultKind.STATUS,
            status_code=status_code,
            message=message or f"Fake provider error {status_code}",
            error_type=error_type,
            body=body,
            headers=tuple((headers or {}).items()),
            delay=delay,
            echo_credentials=echo_credentials,
        )

    @classmethod
    def echo_credentials_error(cls, status_code: int = 401, message: str | None = None) -> Fault:
        """An HTTP error (401 by default) whose body echoes the credentials the client sent,
        headers included (``{"authorization": "Bearer sk-..."}``)."""
        return cls.status(status_code, message or "Incorrect API key provided", echo_credentials=True)

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, *, message: str | None = None) -> Fault:
        """HTTP 429, with a ``Retry-After`` header (seconds) when ``retry_after`` is given."""
        headers = {} if retry_after is None else {"Retry-After": _format_seconds(retry_after)}
        return cls.status(
            429,
            message or "Rate limit reached for requests",
            error_type="rate_limit_exceeded",
            headers=headers,
        )

    @classmethod
    def context_length_exceeded(cls, *, max_tokens: int = 8192) -> Fault:
        """HTTP 400 shaped like OpenAI's ``context_length_exceeded`` error."""
        return cls.status(
            400,
            f"This model's maximum context length is {max_tokens} tokens. However, your "
            "messages resulted in more tokens. Please reduce the length of the messages.",
            error_type="context_length_exceeded",
        )

    @classmethod
    def hang(cls) -> Fault:
        """Never answer; the server notices when the client disconnects."""
        return cls(FaultKind.HANG)

    @classmethod
    def connection_reset(cls, *, delay: float = 0.0) -> Fault:
        """Drop the connection with a TCP RST before sending anything."""
        return cls(FaultKind.RESET, delay=delay)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Answer 200 with a truncated, unparseable JSON body (or SSE event)."""
        return cls(FaultKind.MALFORMED_JSON)

    @classmethod
    def cut_stream(cls, after_chunks: int = 2, *, reset: bool = False) -> Fault:
        """Start a normal answer, then close the connection after ``after_chunks`` chunks."""
        return cls(FaultKind.CUT_STREAM, after_chunks=after_chunks, reset=reset)

    @classmethod
    def invalid_utf8(cls) -> Fault:
        """Answer 200 with bytes that are not valid UTF-8 inside the text."""
        return cls(FaultKind.INVALID_UTF8)

    @classmethod
    def empty_choices(cls) -> Fault:
        """Answer 200 with an empty ``choices`` list (or the protocol's equivalent)."""
        return cls(FaultKind.EMPTY_CHOICES)


Behaviour: TypeAlias = Reply | Fault
Responder: TypeAlias = Callable[["RecordedRequest"], Behaviour]
"""A callable that picks the behaviour for one request (e.g. an intent oracle)."""


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


@dataclass(slots=True)
class _Sequence:
    steps: list[Behaviour]
    then: Behaviour | None
    repeat: bool
    position: int = 0

    def next(self) -> Behaviour | None:
        if self.position < len(self.steps):
            step = self.steps[self.position]
            self.position += 1
            if self.repeat and self.position == len(self.steps):
                self.position = 0
            return step
        return self.then


_Key: TypeAlias = tuple[str | None, str | None, str | None]  # (model, protocol, api key)


@dataclass
class ScriptBook:
    """Thread-safe registry of scripted behaviours, consulted once per request."""

    default: Behaviour | Responder = field(default_factory=Reply)
    _responders: dict[_Key, Responder] = field(default_factory=dict)
    _sequences: dict[_Key, _Sequence] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(
        self,
        model: str | None,
        steps: Behaviour | Iterable[Behaviour],
        *,
        protocol: str | None = None,
        then: Behaviour | None = None,
        repeat: bool = False,
        api_key: str | None = None,
    ) -> None:
        """Play ``steps`` in order for matching requests.

        After the last step, matching requests get ``then`` if given, else the default
        (or, with ``repeat=True``, the steps again from the start). ``api_key`` narrows the
        rule to requests carrying that key (e.g. one key of a pool answers 401).
        """
        step_list = [steps] if isinstance(steps, (Reply, Fault)) else list(steps)
        for step in step_list:
            if not isinstance(step, (Reply, Fault)):
                raise TypeError(f"script steps must be Reply or Fault, not {type(step).__name__}")
        with self._lock:
            self._sequences[(model, protocol, api_key)] = _Sequence(step_list, then, repeat)

    def respond_with(
        self, model: str | None, responder: Responder, *, protocol: str | None = None, api_key: str | None = None
    ) -> None:
        """Call ``responder(request)`` for every matching request (``api_key``: only those
        carrying that key)."""
        with self._lock:
            self._responders[(model, protocol, api_key)] = responder

    def set_default(self, behaviour: Behaviour | Responder) -> None:
        """What requests matching no rule get (a behaviour or a responder callable)."""
        with self._lock:
            self.default = behaviour

    def clear(self) -> None:
        """Forget every rule and restore the default :class:`Reply`."""
        with self._lock:
            self._responders.clear()
            self._sequences.clear()
            self.default = Reply()

    def choose(self, request: RecordedRequest) -> Behaviour:
        """The behaviour for ``request`` (advances the matching sequence)."""
        with self._lock:
            chosen: Behaviour | Responder | None = None
            for key in _candidate_keys(request.model, request.protocol, request.api_key):
                if key in self._responders:
                    chosen = self._responders[key]
                    break
                if key in self._sequences:
                    chosen = self._sequences[key].next()
                    if chosen is not None:
                        break
            if chosen is None:
                chosen = self.default
        # Responders run outside the lock: they may be slow or script further replies.
        if callable(chosen) and not isinstance(chosen, (Reply, Fault)):
            chosen = chosen(request)
        if not isinstance(chosen, (Reply, Fault)):
            raise TypeError(f"responder returned {type(chosen).__name__}, expected Reply or Fault")
        return chosen


def _candidate_keys(model: str | None, protocol: str, api_key: str | None = None) -> Sequence[_Key]:
    pairs: tuple[tuple[str | None, str | None], ...] = (
        ((model, protocol), (model, None), (None, protocol), (None, None))
        if model
        else ((None, protocol), (None, None))
    )
    keyed = tuple((m, p, api_key) for m, p in pairs) if api_key else ()
    return keyed + tuple((m, p, None) for m, p in pairs)


def behaviour_from_dict(data: dict[str, Any]) -> Behaviour:
    """Build a behaviour from its JSON form.

    ``{"reply": {"text": "hi", "token_delay": 0.01}}`` gives a :class:`Reply`;
    ``{"fault": "status", "status_code": 503}`` or ``{"fault": "rate_limited",
    "retry_after": 2}`` gives a :class:`Fault` (any ``Fault`` class-method name works).
    """
    if "reply" in data:
        fields = dict(data["reply"])
        if fields.get("usage") is not None:
            fields["usage"] = tuple(fields["usage"])
        return Reply(**fields)
    if "fault" in data:
        name = data["fault"]
        kwargs = {k: v for k, v in data.items() if k != "fault"}
        factory: Callable[..., Fault] | None = {  # type: ignore[assignment]
            "status": Fault.status,
            "echo_credentials": Fault.echo_credentials_error,
            "rate_limited": Fault.rate_limited,
            "context_length_exceeded": Fault.context_length_exceeded,
            "hang": Fault.hang,
            "reset": Fault.connection_reset,
            "connection_reset": Fault.connection_reset,
            "malformed_json": Fault.malformed_json,
            "cut_stream": Fault.cut_stream,
            "invalid_utf8": Fault.invalid_utf8,
            "empty_choices": Fault.empty_choices,
        }.get(name)
        if factory is None:
            raise ValueError(f"unknown fault {name!r} in scenario")
        return factory(**kwargs)
    raise ValueError(f"a behaviour needs a 'reply' or 'fault' key, got {sorted(data)}")
