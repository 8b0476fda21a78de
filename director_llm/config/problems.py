"""``Problem``: one finding of the config checks (an error fails loading, a warning is shown
by ``check-config``; ``--strict`` makes warnings errors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """``level`` error or warning, the dotted ``key`` to edit, and a message with the fix."""

    level: Literal["error", "warning"]
    key: str
    message: str
