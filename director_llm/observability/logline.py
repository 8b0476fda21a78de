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


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def emit(fields: dict[str, Any], *, fmt: str) -> None:
    """Log ``fields`` (None values already left out) as one line."""
    if fmt == "json":
        message = _JSON.encode(fields)
    else:
        parts = ["request"]
        for k, v in fields.items():
            kind = type(v)
            if kind is str:
                if not v or " " in v or '"' in v or "=" in v:
                    v = json.dumps(v, ensure_ascii=False)
            elif kind is float:
                v = f"{v:.6g}"
            elif kind is list:
                v = ",".join(v) or "-"
            parts.append(f"{k}={v}")
        message = " ".join(parts)
    log.info("%s", message, extra={"director": fields})
