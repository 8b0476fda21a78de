"""``director-llm eval`` as a user runs it: the default config, a small labelled set written
here, the simulated remote tiers, the report files, and a CLINC150 subset when present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from director_llm.cli.app import app
from director_llm.config.models import IntentsConfig

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = str(ROOT / "configs" / "director.toml")
# Two labels are deliberately wrong: a greeting labelled cancel, a thanks labelled help.
ROWS = [
    ("oi, bom dia!", "greeting"),
    ("olá, tudo bem?", "cancel"),
    ("quero criar uma tarefa para amanhã", "create_task"),
    ("cancela a reunião de amanhã", "cancel"),
    ("muito obrigado!", "help"),
    ("tchau, até amanhã", "goodbye"),
    ("qual a capital da França?", "out_of_scope"),
    ("cadê meu pedido?", "query_status"),
    ("o que você sabe fazer?", "help"),
    ("valeu pela ajuda", "thanks"),
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval-cache")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    monkeypatch.setenv("DIRECTOR_CACHE_DIR", str(cache_dir))
    monkeypatch.delenv("DIRECTOR_CONFIG", raising=False)


def write_set(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": t, "intent": i}, ensure_ascii=False) + "\n" for t, i in rows), encoding="utf-8"
    )
    return path


def run(*args: str) -> dict:
    result = CliRunner().invoke(app, ["eval", *args, "--config", DEFAULT_CONFIG, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_local_eval_counts_the_wrong_labels(tmp_path: Path) -> None:
    out = run(str(write_set(tmp_path / "set.jsonl", ROWS)), "--validation-share", "0")
    assert out["mode"] == "local" and out["n"] == len(ROWS)
    local = out["local"]
    assert local["accuracy"] <= (len(ROWS) - 2) / len(ROWS)  # the two wrong labels cannot match
    pairs = {(g, p) for g, p, _ in local["top_confusions"]}
    assert ("cancel", "greeting") in pairs and ("help", "thanks") in pairs
    assert local["p50_ms"] > 0 and local["cost_per_1k"] == 0
    # No validation part: no threshold is recommended (it would be chosen on the reported messages).
    assert out["suggestions"] == {} and out["validation"] is None and local["suggested_threshold"] is None


def test_thresholds_come_from_the_validation_part_only(tmp_path: Path) -> None:
    rows = [(f"{t} {k}", i) for k in ("", "por favor", "agora") for t, i in ROWS]
    out = run(str(write_set(tmp_path / "set.jsonl", rows)))
    assert out["validation"]["n"] + out["n"] == len(rows)
    assert 0 < out["validation"]["n"] < len(rows)
    suggested = out["suggestions"]["local_confidence_threshold"]
    assert 0 <= suggested < 1 and out["local"]["suggested_threshold"] == suggested
    # Reported at the config's threshold, not the suggestion.
    assert out["local"]["threshold"] == IntentsConfig().confidence_threshold
    again = run(str(write_set(tmp_path / "set2.jsonl", list(reversed(rows)))))
    assert again["validation"]["n"] == out["validation"]["n"]  # the split depends on the texts, not the order


def test_simulated_cascade_and_report_files(tmp_path: Path) -> None:
    data = write_set(
        tmp_path / "set.jsonl",
        [(t, i) for t, i in ROWS if (t, i) not in {("olá, tudo bem?", "cancel"), ("muito obrigado!", "help")}],
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(data),
            "--config",
            DEFAULT_CONFIG,
            "--report",
            str(tmp_path / "r"),
            "--simulate-remote",
            "accuracy_mini=0.0,accuracy_4o=1.0",
            "--threshold",
            "1.0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.output
    out = json.loads((tmp_path / "r" / "report.json").read_text())
    assert out["simulated"] and out["mode"] == "cascade"
    mini, strong = out["tiers"]["simulated/gpt-4o-mini"], out["tiers"]["simulated/gpt-4o"]
    assert mini["accuracy"] == 0.0 and strong["accuracy"] == 1.0  # the oracle honours its accuracy
    assert strong["cost_per_1k"] > mini["cost_per_1k"] > 0  # priced like the real models
    assert out["headline"]["escalation_rate"] == 1.0  # threshold 1.0 escalates everything
    assert out["headline"]["accuracy"] == 1.0
    assert (tmp_path / "r" / "accuracy_vs_cost.png").stat().st_size > 1000


def test_bad_input_exits_2(tmp_path: Path) -> None:
    data = write_set(tmp_path / "set.jsonl", ROWS[:3])
    bad_spec = CliRunner().invoke(
        app, ["eval", str(data), "--config", DEFAULT_CONFIG, "--simulate-remote", "accuracy_gpt5=2"]
    )
    assert bad_spec.exit_code == 2 and "simulate-remote" in bad_spec.output
    no_llm = CliRunner().invoke(app, ["eval", str(data), "--config", DEFAULT_CONFIG, "--tier", "cascade"])
    assert no_llm.exit_code == 2 and "--simulate-remote" in no_llm.output
    missing = CliRunner().invoke(app, ["eval", str(tmp_path / "nope.jsonl"), "--config", DEFAULT_CONFIG])
    assert missing.exit_code == 2


def test_console_script(tmp_path: Path, cache_dir: Path) -> None:
    data = write_set(tmp_path / "set.jsonl", ROWS[:4])
    exe = Path(sys.executable).with_name("director-llm")
    env = {**os.environ, "DIRECTOR_CACHE_DIR": str(cache_dir)}
    done = subprocess.run(
        [str(exe), "eval", str(data), "--config", DEFAULT_CONFIG, "--json", "--validation-share", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n"] == 4


def test_clinc_subset_with_train_file(tmp_path: Path) -> None:
    from director_llm.local import load_training_file
    from director_llm.local.datasets import find_data_dir, sample_per_intent

    data = find_data_dir("clinc150")
    if data is None:
        pytest.skip(
            "CLINC150 not found in $DIRECTOR_DATA_DIR or ../shared/data (see the README section on the local tier and eval)"
        )
    train, _ = sample_per_intent(load_training_file(data / "clinc150" / "train.jsonl"), 5, seed=1)
    val = load_training_file(data / "clinc150" / "val.jsonl")[::31]  # 100 messages across intents
    out = run(str(write_set(tmp_path / "val.jsonl", val)), "--train", str(write_set(tmp_path / "train.jsonl", train)))
    assert any("flows built from the training data" in n for n in out["notes"])
    assert any("--train file alone" in n for n in out["notes"])
    assert out["n"] + out["validation"]["n"] == len(val)
    # 5-shot on 150 intents at the shipped threshold (chosen for the full training set, so a
    # 5-shot model falls back often): still far above chance (0.007).
    assert out["local"]["in_scope_accuracy"] > 0.3
