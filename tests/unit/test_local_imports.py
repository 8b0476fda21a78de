"""The local-only `classify` path stays light: once the model is cached, a CLI call imports
neither LiteLLM, scikit-learn nor scipy (they cost seconds of a ~1 s budget). A real CLI
call in a fresh process each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("litellm", "sklearn", "scipy")
SCRIPT = """
import json, sys
heavy = set(json.loads(sys.argv[3]))
sys.argv = ["director-llm", "classify", sys.argv[1], "--json", "--config", sys.argv[2]]
from director_llm.cli.app import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


def classify(cache: Path, text: str) -> tuple[dict, list[str]]:
    env = {**os.environ, "DIRECTOR_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, text, str(ROOT / "configs" / "director.toml"), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result, loaded = done.stdout.strip().splitlines()[-2:]
    return json.loads(result), json.loads(loaded)


def test_cached_local_classify_imports_no_heavy_module(tmp_path: Path) -> None:
    first, loaded_first = classify(tmp_path, "quero criar uma tarefa para amanhã")
    assert first["flow"] == "create_task" and first["route"]["tier"] == "local"
    assert "litellm" not in loaded_first  # training needs scikit-learn, never LiteLLM
    second, loaded = classify(tmp_path, "cancela a reunião de amanhã")
    assert second["flow"] == "cancel" and second["route"]["tier"] == "local"
    assert loaded == [], f"the cached local path imported {loaded}"
