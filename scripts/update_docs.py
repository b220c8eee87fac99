"""Fill the generated parts of the README: the configuration table (from service/settings.py).

    .venv/bin/python scripts/update_docs.py          # rewrite README.md in place
    .venv/bin/python scripts/update_docs.py --check  # exit 1 when README.md is out of date (the tests do this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.settings import markdown_table  # noqa: E402

BLOCK = re.compile(r"(<!-- settings -->\n).*?(<!-- /settings -->)", re.S)


def updated(text: str) -> str:
    if not BLOCK.search(text):
        raise SystemExit("README.md has no <!-- settings --> ... <!-- /settings --> block")
    return BLOCK.sub(lambda m: m.group(1) + markdown_table() + "\n" + m.group(2), text)


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = updated(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md's configuration table is out of date: run scripts/update_docs.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
