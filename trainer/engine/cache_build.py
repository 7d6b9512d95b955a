"""One build process of the prepared cache: ``python -m trainer.engine.cache_build JOB.json``.

:func:`trainer.engine.cache.open_cache` starts one per core, each with a slice of the folder; a
separate interpreter (not a fork) so that no lock held by a thread of the training process is
inherited, and the caller's ``__main__`` is never re-imported.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from trainer.engine.cache import write_part


def main(argv: list[str]) -> int:
    """Run the job described by the JSON file ``argv[0]``."""
    import torch

    torch.set_num_threads(1)  # one build process per core
    job = json.loads(Path(argv[0]).read_text())
    write_part(job["paths"], job["short_side"], job["channels"], Path(job["folder"]), job["part"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
