"""One structured log line per request, at INFO on the ``director_llm`` logger.

Fields: entry, outcome, deployment, provider, model, tier, group, strategy, cache layer,
prompt and completion tokens, cost, latency, first-token latency (streams), upstream calls,
the attempts as ``deployment:outcome``, the error class (requests that failed), and for
classifications the flow and confidence. Never prompt or answer text, error messages (an
upstream body may quote the prompt) or secrets.

``[observability] log_format``: ``text`` (``request entry=complete outcome=ok ...``, the
default) or ``json`` (the message is one JSON object). Either way the fields are also on the
record as ``record.director`` for structured handlers. Nothing is built when INFO is not
enabled for the logger (the host application decides, as with any library logger).
"""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["LOGGER_NAME", "emit", "enabled"]

LOGGER_NAME = "director_llm"
log = logging.getLogger(LOGGER_NAME)


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def emit(fields: dict[str, Any], *, fmt: str) -> None:
    """Log ``fields`` (None values left out) as one line."""
    clean = {k: v for k, v in fields.items() if v is not None}
    if fmt == "json":
        message = json.dumps(clean, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        message = "request " + " ".join(f"{k}={_text(v)}" for k, v in clean.items())
    log.info("%s", message, extra={"director": clean})


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "-"
    text = str(value)
    return text if text and " " not in text else json.dumps(text, ensure_ascii=False)
