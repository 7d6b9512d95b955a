"""Settings a test runs under: no ``EDNAQUERY_*`` variable and no user or project config file in play."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["clean_settings"]


def clean_settings(tmp_path: Path, monkeypatch: Any) -> Path:
    """Drop every ``EDNAQUERY_*`` variable and point ``EDNAQUERY_CONFIG`` at an empty ``tmp_path/none.toml``,
    so only the built-in defaults apply whatever the developer's shell or home holds; the empty file's path.

    ``monkeypatch`` is pytest's fixture or a ``pytest.MonkeyPatch.context()`` (for module-scoped fixtures)."""
    for name in list(os.environ):
        if name.startswith("EDNAQUERY_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "none.toml"
    empty.write_text("")
    monkeypatch.setenv("EDNAQUERY_CONFIG", str(empty))
    return empty
