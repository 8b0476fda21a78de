"""Issue 13: the local-model disk cache is state that can be planted. Nothing read from it may
run code, a tampered file is a cache miss (the model is rebuilt), and a directory other users
can write is refused. Real files, real models (TF-IDF only where the encoder is not the point,
so each test trains in about a second), and the real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from director_llm.local import LocalIntentModel, LocalTierSettings
from director_llm.local.store import cache_key, model_paths

ROOT = Path(__file__).resolve().parents[2]
FAST = LocalTierSettings(features="tfidf")
EXAMPLES = [
    *[
        (t, "weather")
        for t in (
            "will it rain today",
            "weather forecast for tomorrow",
            "is it sunny outside",
            "how cold is it",
            "do I need an umbrella",
        )
    ],
    *[
        (t, "music")
        for t in ("play some jazz", "put on my playlist", "next song please", "turn the music up", "skip this track")
    ],
    *[
        (t, "alarm")
        for t in (
            "wake me up at 7",
            "set an alarm for 6 am",
            "alarm in ten minutes",
            "turn off the alarm",
            "snooze the alarm",
        )
    ],
]


class Planted:
    """A pickle payload that touches ``marker`` when unpickled (what an attacker would plant)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def planted_pickle(marker: Path) -> bytes:
    return pickle.dumps({"key": "x", "model": Planted(marker)})


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir(mode=0o700)
    return d


def paths(cache: Path, settings: LocalTierSettings = FAST) -> tuple[Path, Path]:
    return model_paths(cache, cache_key(EXAMPLES, settings))


def check_model(model: LocalIntentModel) -> None:
    assert model.predict("set an alarm for 8").intent == "alarm"
    assert model.predict("play my favourite song").intent == "music"


def test_the_model_is_stored_without_pickle(cache: Path) -> None:
    LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    npz, meta = paths(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted([npz.name, meta.name])
    body = json.loads(meta.read_text())
    assert body["npz_sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    with np.load(npz, allow_pickle=False) as z:  # every array loads without pickle
        assert all(z[name].dtype != object for name in z.files)
    assert oct(npz.stat().st_mode & 0o777) == oct(0o600) and oct(cache.stat().st_mode & 0o777) == oct(0o700)


def test_a_pickle_planted_under_the_predictable_names_never_runs(cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    npz, meta = paths(cache)
    payload = planted_pickle(marker)
    # The old cache name, and the new .npz with a JSON that vouches for it (right key and hash).
    (cache / f"local-intent-{cache_key(EXAMPLES, FAST)[:32]}.pkl").write_bytes(payload)
    npz.write_bytes(payload)
    meta.write_text(
        json.dumps({"key": cache_key(EXAMPLES, FAST), "format": 2, "npz_sha256": hashlib.sha256(payload).hexdigest()})
    )
    model = LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    assert not marker.exists()
    assert not model.loaded_from_cache
    check_model(model)
    # The planted files were replaced by a real model, which the next start loads.
    assert npz.read_bytes() != payload
    assert LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache).loaded_from_cache
    assert not marker.exists()


def test_an_object_array_inside_a_valid_archive_never_runs(cache: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    npz, meta = paths(cache)
    with np.load(npz, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["coef_t"] = np.array([Planted(marker)], dtype=object)  # numpy pickles object arrays
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz.write_bytes(buf.getvalue())
    body = json.loads(meta.read_text())
    body["npz_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()  # the attacker fixes the hash too
    meta.write_text(json.dumps(body))
    model = LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    assert not marker.exists()
    assert not model.loaded_from_cache
    check_model(model)


def test_a_tampered_model_is_rebuilt(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    npz, _ = paths(cache)
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the coefficients
    npz.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="director_llm.local.store"):
        model = LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    assert not model.loaded_from_cache
    assert "SHA-256" in caplog.text
    check_model(model)
    assert model.predict("is it raining") == first.predict("is it raining")
    assert LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache).loaded_from_cache


def test_inconsistent_arrays_are_a_miss(cache: Path) -> None:
    LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    npz, meta = paths(cache)
    with np.load(npz, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["coef_t"] = arrays["coef_t"][:5]  # a shape that does not fit the vocabulary
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz.write_bytes(buf.getvalue())
    body = json.loads(meta.read_text())
    body["npz_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    meta.write_text(json.dumps(body))
    model = LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    assert not model.loaded_from_cache
    check_model(model)


def test_a_directory_other_users_can_write_is_refused(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A model trained on swapped labels, planted where the real one would be.
    swapped = [(t, {"alarm": "music", "music": "alarm"}.get(i, i)) for t, i in EXAMPLES]
    planted = LocalIntentModel.train(swapped, settings=FAST)
    from director_llm.local.store import save_cached

    assert save_cached(cache, cache_key(EXAMPLES, FAST), *planted.to_state()) is not None
    cache.chmod(0o777)
    try:
        with caplog.at_level(logging.WARNING, logger="director_llm.local.store"):
            model = LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
        assert "writable by other users" in caplog.text and "chmod go-w" in caplog.text
        assert not model.loaded_from_cache
        check_model(model)  # the planted, swapped model was not used
    finally:
        cache.chmod(0o700)


def test_a_file_other_users_can_write_is_not_loaded(cache: Path) -> None:
    LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    npz, _ = paths(cache)
    npz.chmod(0o666)
    assert not LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache).loaded_from_cache


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to hand a directory to another uid"
)
def test_a_directory_owned_by_another_user_is_refused(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    os.chown(cache, 54321, -1)
    with caplog.at_level(logging.WARNING, logger="director_llm.local.store"):
        model = LocalIntentModel.train(EXAMPLES, settings=FAST, cache_dir=cache)
    assert "owned by another user" in caplog.text
    assert not any(cache.iterdir())  # nothing written there
    check_model(model)


def _cli(env: dict[str, str], text: str) -> dict:
    exe = Path(sys.executable).with_name("director-llm")
    done = subprocess.run(
        [str(exe), "classify", text, "--json", "--config", str(ROOT / "configs" / "director.toml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_classify_never_runs_a_planted_model_and_rebuilds(tmp_path: Path) -> None:
    """The reported attack, end to end: plant pickles under every name the default config's
    model could have (found from the first run), run `classify` again."""
    base = tmp_path / "cache"
    env = {**os.environ, "DIRECTOR_CACHE_DIR": str(base)}
    first = _cli(env, "quero criar uma tarefa para amanhã")
    assert first["flow"] == "create_task"
    models = base / "local-models"
    marker = tmp_path / "pwned"
    payload = planted_pickle(marker)
    stored = sorted(models.glob("local-intent-*"))
    assert stored and not list(models.glob("*.pkl"))
    for path in stored:
        if path.suffix == ".npz":
            path.write_bytes(payload)
            path.with_suffix(".pkl").write_bytes(payload)
    encoder_files = [p for p in models.glob("usem3-*/*.npy")]
    for path in encoder_files[:1]:
        path.write_bytes(payload)  # the encoder's weight cache too
    again = _cli(env, "quero criar uma tarefa para amanhã")
    assert not marker.exists()
    assert again["flow"] == "create_task"
    assert again["confidence"] == pytest.approx(first["confidence"], abs=1e-6)
    assert all(p.read_bytes() != payload for p in models.glob("local-intent-*.npz"))
