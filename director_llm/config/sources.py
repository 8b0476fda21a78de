"""Where a config comes from: an explicit path, ``$DIRECTOR_CONFIG``, ``./configs/director.toml``,
else the default config shipped inside the package (so every command works from any
directory). Reading is bounded: a config file is at most ``MAX_CONFIG_BYTES``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from director_llm.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("configs/director.toml")
"""Looked up in the working directory when no path and no ``$DIRECTOR_CONFIG`` are given."""
CONFIG_ENV_VAR = "DIRECTOR_CONFIG"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Larger files are refused before parsing; training data belongs in ``training_file``."""
SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}

log = logging.getLogger("director_llm.config")


def packaged_default_path() -> Path:
    """The default config shipped in the package: offline, embedded local tier, built-in flows."""
    return Path(__file__).resolve().parent.parent / "defaults" / "director.toml"


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$DIRECTOR_CONFIG``, else ``./configs/director.toml`` when it exists,
    else the packaged default config (a warning on stderr says so)."""
    if path is not None:
        return Path(path)
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        return Path(env)
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    default = packaged_default_path()
    log.warning(
        "no config given (--config, $%s) and no %s here: using the built-in default config "
        "(offline, local tier only); `director-llm init` writes an editable copy",
        CONFIG_ENV_VAR,
        DEFAULT_CONFIG_PATH,
    )
    return default


def read_config_file(p: Path, *, hint: str = "") -> tuple[str, str]:
    """``(text, format)`` of the config file ``p``; ``ConfigError`` naming the file otherwise
    (``hint`` is added to "file not found": where the path came from)."""
    if not p.exists():
        raise ConfigError(f"{p}: file not found{hint}", path=str(p))
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a .toml or .yaml file", path=str(p))
    fmt = SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{p}: unknown file type {p.suffix[:20]!r}; use .toml, .yaml or .yml", path=str(p))
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{p}: {size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,} bytes (put "
                "large training data in providers.<local>.training_file)",
                path=str(p),
            )
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(p)) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read file: {exc.strerror}", path=str(p)) from None
    if len(raw) > MAX_CONFIG_BYTES:  # a device or a file that grew while read
        raise ConfigError(f"{p}: more than {MAX_CONFIG_BYTES:,} bytes; a config file is at most that", path=str(p))
    return text, fmt
