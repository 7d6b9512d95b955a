"""The README's first command, run the way a new user runs it: `make demo` on the installed project.

`make test` (the README's second command) is what CI itself runs, so it needs no test of its own here.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_make_demo_indexes_examples_trains_and_finds_the_run() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the demo runs from the project's .venv (make test creates it)")
    env = {k: v for k, v in os.environ.items() if k not in ("EDNAQUERY_STORE", "EDNAQUERY_CONFIG")}
    proc = subprocess.run(["make", "-s", "demo"], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"indexed 51 file\(s\) .* 1 error record", out), out[-3000:]
    assert "examples/broken/bad_indent.yaml" in out  # the broken file is an error record, not a crash
    assert "vit_tiny_patch16_224" in out  # `find 'lr<1e-3' model=vit` found the ViT configs
    assert "using CPU" in out or "using cuda" in out.lower()
    # the last step finds the run the demo trained: a run id row with status completed
    assert re.search(r"\d{8}-\d{6}-[0-9a-f]{4}\s+run:completed", out), out[-3000:]
