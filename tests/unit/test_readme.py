"""The README's claims that tests produce must match what they produced."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows(text: str) -> list[tuple[str, ...]]:
    """Fault-matrix rows without the timing column (it changes run to run)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---") and not line.startswith("| fault |"):
            cells = tuple(c.strip() for c in line.strip("|").split("|"))
            rows.append(cells[:-1])
    return rows


def test_readme_fault_matrix_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- fault-matrix:start")
    end = readme.index("<!-- fault-matrix:end -->")
    generated = (ROOT / "docs" / "fault-matrix.md").read_text(encoding="utf-8")
    assert _rows(readme[start:end]) == _rows(generated)
    assert len(_rows(generated)) >= 30


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci
    for script in ("bench_check_config.py", "bench_router.py", "bench_cache.py", "bench_selection.py",
                   "bench_stream_intent.py", "bench_cascade.py", "bench_breaker.py", "bench_streaming.py"):
        assert (ROOT / "scripts" / script).exists(), script
        assert script in readme, script
