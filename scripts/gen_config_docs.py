"""Write the config reference and JSON Schema generated from director_llm/config/models.py.

python scripts/gen_config_docs.py           # write docs/configuration.md, docs/director.schema.json
python scripts/gen_config_docs.py --check   # exit 1 if a committed file differs (what the test checks)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from director_llm.config.schema import json_schema_text, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {
    ROOT / "docs" / "configuration.md": reference_markdown,
    ROOT / "docs" / "director.schema.json": json_schema_text,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is stale")
    args = parser.parse_args()
    stale = []
    for path, generate in GENERATED.items():
        text = generate()
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
