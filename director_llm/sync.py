"""A blocking facade for scripts and notebooks.

    from director_llm.sync import SyncDirector
    with SyncDirector.from_file("configs/director.toml") as director:
        print(director.classify_intent("quero criar uma tarefa para amanhã").flow)
        print(director.complete([{"role": "user", "content": "hi"}]).choices[0].message.content)
        for chunk in director.stream_response([{"role": "user", "content": "tell me a story"}]):
            ...

Every call runs on one private event loop in a background thread (so it also works where a
loop is already running, as in Jupyter, and connections and caches live on one loop).
``SyncDirector(director)`` wraps an existing ``Director``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from director_llm.budget.ledger import SpendReport
    from director_llm.director import Director
    from director_llm.engine.stream import StreamChunk
    from director_llm.intents.models import IntentClassification

__all__ = ["SyncDirector"]

T = TypeVar("T")


class SyncDirector:
    """Blocking versions of ``Director``'s calls (see the module docstring)."""

    def __init__(self, director: Director) -> None:
        self.director = director
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="director-sync", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def from_file(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> SyncDirector:
        """``Director.from_file(path, **kwargs)``, wrapped."""
        from director_llm.director import Director

        return cls(Director.from_file(path, **kwargs))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            from director_llm.errors import DirectorClosedError

            raise DirectorClosedError("this SyncDirector was closed; build a new one")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def classify_intent(self, text: str, history: list[Any] | None = None, **kwargs: Any) -> IntentClassification:
        """``Director.classify_intent``, blocking."""
        return self._run(self.director.classify_intent(text, history, **kwargs))

    def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """``Director.acompletion``, blocking (returns LiteLLM's ``ModelResponse``)."""
        return self._run(self.director.acompletion(messages, **kwargs))

    def stream_response(self, messages: list[dict[str, Any]], **kwargs: Any) -> Iterator[StreamChunk]:
        """``Director.stream_response`` as a plain iterator of ``TextDelta`` ... ``StreamEnd``."""
        stream = self.director.stream_response(messages, **kwargs)
        try:
            while True:
                try:
                    yield self._run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._run(stream.aclose())

    def health(self, **kwargs: Any) -> dict[str, Any]:
        """``Director.health``, blocking."""
        return self._run(self.director.health(**kwargs))

    def spend(self, **kwargs: Any) -> SpendReport:
        """``Director.spend``, blocking."""
        return self._run(self.director.spend(**kwargs))

    def reload(self, path: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
        """``Director.reload``, blocking: swap in the config file (default: the one it was
        built from); an invalid file raises ``ConfigError`` and the current config stays."""
        return self._run(self.director.reload(path))

    def reload_keys(self) -> dict[str, dict[str, str]]:
        """``Director.reload_keys``, run on the background loop (between its requests' steps)."""

        async def reload() -> dict[str, dict[str, str]]:
            return self.director.reload_keys()

        return self._run(reload())

    def close(self) -> None:
        """Close the Director and stop the background loop. Safe to call twice."""
        if self._closed:
            return
        self._run(self.director.aclose())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
