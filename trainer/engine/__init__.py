"""The training engine: a config in, a run folder out; it never touches the store.

:mod:`~trainer.engine.config` (the config schema), :mod:`~trainer.engine.data` and
:mod:`~trainer.engine.augment` (datasets and transforms; image folders go through the prepared
pipeline: :mod:`~trainer.engine.prepared`, :mod:`~trainer.engine.cache`,
:mod:`~trainer.engine.device_augment`), :mod:`~trainer.engine.sampling` (weighted batch order, imbalanced
subsets), :mod:`~trainer.engine.features` (engineered input channels), :mod:`~trainer.engine.filters`
(median blur, CLAHE), :mod:`~trainer.engine.model` (timm
models), :mod:`~trainer.engine.optim` (optimizers and schedules), :mod:`~trainer.engine.loop`
(the training loop), :mod:`~trainer.engine.distributed` (the loop's view of DDP: rank, world
size, collectives), :mod:`~trainer.engine.runner` (:func:`~trainer.engine.runner.run_training`,
the one call), :mod:`~trainer.engine.runs` (the run folder's files), :mod:`~trainer.engine.stats`
(run statistics: loader wait, NVML sampling, latency, FLOPs), :mod:`~trainer.engine.plots`
and :mod:`~trainer.engine.progress`. The modules import torch only where they need it.
"""

__all__ = ["augment", "cache", "config", "data", "device_augment", "distributed", "features", "filters", "loop",
           "model", "optim", "plots", "prepared", "progress", "runner", "runs", "sampling", "stats"]
