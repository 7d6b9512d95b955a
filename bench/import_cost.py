"""What importing the CLI costs a command, as a ratio against starting Python at all.

Run by hand: ``.venv/bin/python bench/import_cost.py [ROUNDS]``. Each round starts a fresh
interpreter twice, alternately: ``python -c pass`` (the reference) and ``python -c "import
ednaquery.cli"``. Both are measured in the same run on the same machine, so the ratio of the
medians means something on a busy or slow machine where seconds do not. The test suite checks
the cause instead (tests/core/test_cli.py: no ML stack, driver or renderer is imported).
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

REFERENCE = "pass"
CLI = "import ednaquery.cli"


def _seconds(code: str) -> float:
    """Wall time of one fresh interpreter running ``code``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def measure(rounds: int) -> tuple[float, float]:
    """Median seconds of (reference, CLI import) over ``rounds`` alternating runs."""
    ref: list[float] = []
    cli: list[float] = []
    _seconds(CLI)  # warm the OS file cache and the bytecode cache once
    for _ in range(rounds):
        ref.append(_seconds(REFERENCE))
        cli.append(_seconds(CLI))
    return statistics.median(ref), statistics.median(cli)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rounds = int(args[0]) if args else 15
    ref, cli = measure(rounds)
    print(f"{'python -c pass':34} {ref * 1000:7.1f} ms (median of {rounds})")
    print(f"{'python -c ' + repr(CLI):34} {cli * 1000:7.1f} ms")
    print(f"import cost: {(cli - ref) * 1000:.1f} ms, {cli / ref:.2f}x a bare interpreter start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
