"""The default config as a user runs it on a fresh machine: no keys, no network, no cache.

``director-llm classify`` runs in a subprocess whose sockets are disabled (any connect
raises), with an empty user cache, so the local tier must train from the built-in flows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Runs the real CLI entry point with every outgoing connection refused.
NO_NETWORK = """
import atexit, socket, sys
atexit.register(lambda: sys.stderr.write(f"litellm imported: {'litellm' in sys.modules}\\n"))
def _refuse(self, *a, **k):
    raise OSError("network disabled by the test")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
sys.argv = ["director-llm", *sys.argv[1:]]
from director_llm.cli.app import main
main()
"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "DIRECTOR_CONFIG"}
    env.update(DIRECTOR_CACHE_DIR=str(tmp_path / "cache"), XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    return env


def test_default_config_classifies_offline_with_no_keys(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-c",
        NO_NETWORK,
        "classify",
        "quero criar uma tarefa para amanhã",
        "--json",
        "--config",
        str(ROOT / "configs" / "director.toml"),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=_env(tmp_path), cwd=tmp_path, timeout=180
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["flow"] == "create_task"
    assert result["route"]["tier"] == "local"
    assert result["route"]["cost_usd"] == 0
    assert result["route"]["deployment"] == "local/intent"
    assert "litellm imported: False" in done.stderr  # the local-only path stays light
    assert list((tmp_path / "cache" / "local-models").glob("*.npz")), "the trained model was not cached"

    # Second start: loads the cached model (no retraining), still offline.
    again = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=_env(tmp_path), cwd=tmp_path, timeout=180
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["flow"] == "create_task"


def test_console_script_default_config(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("director-llm")
    done = subprocess.run(
        [str(exe), "classify", "obrigado pela ajuda!", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env=_env(tmp_path),
        cwd=ROOT,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["flow"] == "thanks" and result["route"]["tier"] == "local"
