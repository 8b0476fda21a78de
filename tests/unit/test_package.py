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

    for name in ("ConfigError", "InputError", "BudgetExceededError", "ProviderError", "ClassificationError",
                 "StreamInterruptedError", "CacheError"):
        assert issubclass(getattr(errors, name), errors.DirectorError)


def test_import_and_load_config_stay_light():
    code = ("import sys, director_llm; director_llm.load_config('configs/examples/seed.toml'); "
            "director_llm.Director.from_file('configs/examples/seed.toml'); "
            "print(sorted(m for m in ('litellm', 'redis', 'yaml', 'rich', 'numpy', 'sklearn') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_redact_removes_keys():
    from director_llm.errors import redact

    text = 'Authorization: Bearer sk-abcdefghijklmnop x-api-key: sk-ant-api03-zzzzzzzzzz key=AIzaSyA1234567890123456789'
    out = redact(text)
    assert "sk-abcdefghijklmnop" not in out and "zzzzzzzzzz" not in out and "AIzaSyA1234567890123456789" not in out
