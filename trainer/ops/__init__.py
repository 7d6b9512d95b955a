"""What the trainer does with the store: train what it names and index the run as it goes.

:mod:`~trainer.ops.launch` (resolve a config id or file, derive with overrides, launch and
resume), :mod:`~trainer.ops.query` (runs a query finds), :mod:`~trainer.ops.jobs` (the job queue),
:mod:`~trainer.ops.worker` (claims and runs queued jobs), :mod:`~trainer.ops.sweep` (grid plans to jobs), :mod:`~trainer.ops.search`
(random and bayes sweeps through Optuna, with :mod:`~trainer.ops.space` for their distributions,
:mod:`~trainer.ops.prune` for early stopping, :mod:`~trainer.ops.around` for perturbing a known
run and :mod:`~trainer.ops.sweep_report` for status and plots), :mod:`~trainer.ops.groups`
(k-fold and bagging groups of runs) and :mod:`~trainer.ops.ensemble` (ensembles of runs, combined by
:mod:`~trainer.ops.combine`). Their ``trainer`` commands are in :mod:`trainer.store_cli`,
:mod:`trainer.sweep_cli`, :mod:`trainer.groups_cli` and :mod:`trainer.ensemble_cli`.

A trained run: :mod:`~trainer.ops.restore` (a run folder back as config, model, class list and
preprocessing: the one loader of a run's best.pt), :mod:`~trainer.ops.evaluate` (``trainer eval``),
:mod:`~trainer.ops.predict` and :mod:`~trainer.ops.export`; :mod:`~trainer.ops.tune` (lr range
test, batch-size finder). Their commands are in :mod:`trainer.tools_cli`.
"""

__all__ = ["around", "combine", "ensemble", "evaluate", "export", "groups", "jobs", "launch", "predict", "prune",
           "query", "restore", "search", "space", "sweep", "sweep_report", "tune", "worker"]
