"""What the trainer does with the store: train what it names and index the run as it goes.

:mod:`~trainer.ops.launch` (resolve a config id or file, derive with overrides, launch and
resume), :mod:`~trainer.ops.jobs` (the job queue), :mod:`~trainer.ops.worker` (claims and runs
queued jobs), :mod:`~trainer.ops.sweep` (grid plans to jobs) and :mod:`~trainer.ops.groups`
(k-fold and bagging groups of runs). Their ``trainer`` commands are in :mod:`trainer.store_cli`
and :mod:`trainer.groups_cli`.
"""

__all__ = ["groups", "jobs", "launch", "sweep", "worker"]
