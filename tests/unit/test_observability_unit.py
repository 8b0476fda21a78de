"""The observer's vocabulary (outcomes, label values) and the import cost of observability."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from director_llm.errors import AttemptOverBudgetError, BudgetExceededError, ProviderError
from director_llm.observability.observer import NOOP_OBSERVER, OUTCOMES, fallback_reason, outcome_of
from director_llm.route import Attempt, Route

ROOT = Path(__file__).resolve().parents[2]


def test_outcomes() -> None:
    ok = Route(deployment="p/a", attempts=[Attempt("p/a", "ok")])
    fell = Route(deployment="p/b", attempts=[Attempt("p/a", "Timeout"), Attempt("p/b", "ok")])
    skipped = Route(deployment="p/b", attempts=[Attempt("p/a", "skipped", "circuit open"), Attempt("p/b", "ok")])
    assert outcome_of(ok, None) == "ok"
    assert outcome_of(fell, None) == "fallback"
    assert outcome_of(skipped, None) == "ok"  # nothing was called and failed
    assert outcome_of(Route(cache="redis"), None) == "cache_hit"
    over = AttemptOverBudgetError(window="hour", limit_usd=1.0, spent_usd=1.0, requested_usd=0.1)
    assert outcome_of(None, over) == "refused_budget"
    plain = BudgetExceededError("over", window="day", limit_usd=1.0, spent_usd=1.0)
    assert outcome_of(None, plain) == "refused_budget"
    assert outcome_of(None, ProviderError("slow down", status_code=429)) == "rate_limited"
    assert outcome_of(None, ProviderError("down", status_code=503)) == "error"
    assert outcome_of(None, ValueError("x")) == "error"
    assert set(OUTCOMES) == {"ok", "error", "fallback", "cache_hit", "refused_budget", "rate_limited"}


def test_fallback_reason_names_deployments_and_error_classes_only() -> None:
    attempts = [Attempt(f"p/{i}", "InternalServerError", "upstream said: secret prompt") for i in range(5)]
    reason = fallback_reason([*attempts, Attempt("p/z", "ok")])
    assert reason == "p/0: InternalServerError; p/1: InternalServerError; p/2: InternalServerError (+2 more)"
    assert fallback_reason([Attempt("p/z", "ok")]) is None


def test_label_values_are_bounded_identifiers() -> None:
    from director_llm.observability.prometheus import label

    assert label("InternalServerError") == "InternalServerError"
    assert label('bad"label\n{x}') == "bad_label__x_"
    assert len(label("x" * 500)) == 64 and label("") == "none"


def test_noop_observer_accepts_every_event() -> None:
    obs = NOOP_OBSERVER.request("complete")
    obs.attempt(Attempt("p/a", "ok"))
    obs.local_decision("answered")
    obs.finish(None, error=ValueError("x"))


def _loaded(code: str) -> list[str]:
    probe = (
        f"import sys; {code}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prometheus_client', 'opentelemetry', 'litellm')))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])


def test_observability_costs_nothing_at_import_and_construction(tmp_path: Path) -> None:
    assert _loaded("import director_llm.metrics, director_llm.observability") == []
    cfg = tmp_path / "director.toml"
    cfg.write_text('[providers.openai]\nmodels = ["gpt-4o-mini"]\n[caching]\nmemory_size_mb = 8\n')
    assert _loaded(f"import director_llm; director_llm.Director.from_file({str(cfg)!r})") == []
    # With Redis in the config, redis-py may import OpenTelemetry for its own instrumentation;
    # Director still imports neither prometheus_client nor LiteLLM.
    loaded = _loaded("import director_llm; director_llm.Director.from_file('configs/examples/seed.toml')")
    assert "prometheus_client" not in loaded and "litellm" not in loaded


def test_metrics_off_never_imports_prometheus_client(tmp_path: Path) -> None:
    cfg = tmp_path / "director.toml"
    cfg.write_text('[providers.local]\nfeatures = "tfidf"\n[observability]\nmetrics = false\n')
    code = (
        "import asyncio; from director_llm import Director\n"
        f"d = Director.from_file({str(cfg)!r})\n"
        "assert d.metrics_text() == ''\n"
        "asyncio.run(d.refresh_metrics())"
    )
    assert "prometheus_client" not in _loaded(f"exec({code!r})")
