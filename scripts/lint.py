"""Static checks CI runs before the tests: ruff (lint + format) and mypy.

    .venv/bin/python scripts/lint.py

* ``ruff check`` and ``ruff format --check`` on the package, tests and scripts;
* ``mypy`` on the whole package (settings in pyproject.toml), 0 errors;
* ``mypy --strict`` on the public API: ``director_llm/__init__.py`` and every module it
  exports a name from (read from ``director_llm._EXPORTS``, so a new export is checked too).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*cmd: str) -> int:
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def public_modules() -> list[str]:
    sys.path.insert(0, str(ROOT))
    import director_llm

    modules = sorted(set(director_llm._EXPORTS.values()))
    return ["director_llm/__init__.py", *(m.replace(".", "/") + ".py" for m in modules)]


def main() -> int:
    failed = 0
    failed |= run(str(BIN / "ruff"), "check", "director_llm", "tests", "scripts")
    failed |= run(str(BIN / "ruff"), "format", "--check", "director_llm", "tests", "scripts")
    failed |= run(str(BIN / "mypy"))
    failed |= run(str(BIN / "mypy"), "--strict", "--follow-imports=silent", *public_modules())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
