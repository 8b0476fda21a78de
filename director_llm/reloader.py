"""Reload a Director when its config file changes (``serve --reload-config`` uses it).

``await watch_and_reload(director)`` watches the file the Director was built from (or
``path``) with ``watchfiles`` and calls ``director.reload(path)`` after each change: a valid
file swaps in (``Director.reload``), an invalid one is logged as a warning with the located
error ``check-config`` gives, and the current config keeps serving. It returns when
``stop_event`` is set, or runs until cancelled.

The directory is watched, not the file: editors and deploy tools replace a file by renaming a
new one over it, which a watch on the old file would miss.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from director_llm.errors import ConfigError, DirectorClosedError

if TYPE_CHECKING:
    from director_llm.director import Director

__all__ = ["watch_and_reload"]

log = logging.getLogger("director_llm")


async def watch_and_reload(
    director: Director,
    path: str | os.PathLike[str] | None = None,
    *,
    stop_event: asyncio.Event | None = None,
    debounce_ms: int = 300,
    on_reload: Callable[[dict[str, list[str]] | ConfigError], Any] | None = None,
) -> None:
    """Watch ``path`` (default: ``director.source``) and reload ``director`` on each change.

    ``on_reload`` (optional) receives each outcome: the ``added``/``removed``/``kept`` dict of
    a reload, or the ``ConfigError`` of a rejected file. Needs ``watchfiles``
    (``pip install 'director-llm[reload]'``)."""
    source = path if path is not None else director.source
    if source is None:
        raise ConfigError("this Director was built from a config object, not a file: give watch_and_reload a path")
    target = Path(source).resolve()
    try:
        from watchfiles import awatch
    except ImportError as exc:  # pragma: no cover - an optional dependency
        raise ConfigError("config reloading needs watchfiles: pip install 'director-llm[reload]'") from exc

    def is_target(_change: Any, changed: str) -> bool:
        return Path(changed).name == target.name

    async for _changes in awatch(
        target.parent,
        watch_filter=is_target,
        stop_event=stop_event,
        debounce=debounce_ms,
        recursive=False,
    ):
        if not target.exists():
            continue  # removed, or mid-replace: the next event brings the new file
        outcome: dict[str, list[str]] | ConfigError
        try:
            outcome = await director.reload(target)
        except ConfigError as exc:
            log.warning("config reload rejected, the current config keeps serving: %s", exc)
            outcome = exc
        except DirectorClosedError:
            return
        else:
            log.info(
                "config reloaded from %s: added %s, removed %s",
                target,
                ", ".join(outcome["added"]) or "none",
                ", ".join(outcome["removed"]) or "none",
            )
        if on_reload is not None:
            on_reload(outcome)
