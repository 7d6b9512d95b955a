"""Test-tree hygiene: no ``sys.path`` edits under tests/ (the ``pythonpath`` ini option in pyproject.toml
is the one sanctioned way tests reach the repo root and ``tests.support``)."""
from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
# spelled so that this file does not match itself
PATH_HACK = re.compile(r"\bsys\s*\.\s*path\s*\.\s*(?:" + "insert|append" + r")\b")


def path_hacks(root: Path) -> list[str]:
    """``file:line`` of every ``sys.path`` insert/append in the files under ``root``."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if PATH_HACK.search(line):
                found.append(f"{path.relative_to(root)}:{n}")
    return found


def test_no_test_file_edits_sys_path() -> None:
    assert path_hacks(TESTS) == [], "use tests.support imports (pythonpath in pyproject.toml), not sys.path edits"


def test_the_check_finds_an_edit(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "test_x.py").write_text("import sys\nsys.path" + ".insert(0, '..')\n")
    (tmp_path / "conftest.py").write_text("import sys\nsys.path" + ".append('.')\n")
    (tmp_path / "clean.py").write_text("import sys\nprint(sys.path)\n")
    assert path_hacks(tmp_path) == ["conftest.py:2", "sub/test_x.py:2"]
