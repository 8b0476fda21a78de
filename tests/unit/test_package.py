"""The package surface: sorted __all__, lazy exports, no heavy imports at import time."""

from __future__ import annotations

import subprocess
import sys

import director_llm


def test_all_is_sorted_and_resolvable():
    assert director_llm.__all__ == sorted(director_llm.__all__)
    for name in director_llm.__all__:
        assert getattr(director_llm, name) is not None


def test_errors_share_one_root():
    from director_llm import errors

    for name in (
        "ConfigError",
        "InputError",
        "BudgetExceededError",
        "ProviderError",
        "ClassificationError",
        "StreamInterruptedError",
        "CacheError",
    ):
        assert issubclass(getattr(errors, name), errors.DirectorError)


HEAVY = ("litellm", "redis", "yaml", "rich", "numpy", "sklearn")


def _modules_loaded_by(code: str) -> list[str]:
    probe = f"import sys; {code}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])


def test_import_and_load_config_stay_light():
    assert _modules_loaded_by("import director_llm; director_llm.load_config('configs/examples/seed.toml')") == []


def test_building_a_director_does_not_import_litellm():
    # Redis is imported when the config uses it (clients are created lazily, not connected).
    loaded = _modules_loaded_by("import director_llm; director_llm.Director.from_file('configs/examples/seed.toml')")
    assert "litellm" not in loaded and "numpy" not in loaded and "sklearn" not in loaded


def test_redact_removes_keys():
    from director_llm.errors import redact

    text = "Authorization: Bearer sk-abcdefghijklmnop x-api-key: sk-ant-api03-zzzzzzzzzz key=AIzaSyA1234567890123456789"
    out = redact(text)
    assert "sk-abcdefghijklmnop" not in out and "zzzzzzzzzz" not in out and "AIzaSyA1234567890123456789" not in out
