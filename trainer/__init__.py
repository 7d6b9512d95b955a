"""The bundled timm trainer, in three parts that import only downwards.

- :mod:`trainer.engine`: train a config into a run folder; it never touches the store.
- :mod:`trainer.ddp`: one run trained by N DistributedDataParallel processes.
- :mod:`trainer.ops`: train what the store names (launch, resume), the job queue, the worker
  and sweeps.

:mod:`trainer.cli` is the ``trainer`` command (:mod:`trainer.store_cli` and :mod:`trainer.sweep_cli`
add the commands that use the store, :mod:`trainer.cache_cli` ``trainer cache``); :mod:`trainer.errors`
holds the exceptions all parts share.
:mod:`trainer.recorder` indexes a run folder as it trains, for ops/ and ddp/ alike.
Importing a package imports none of its modules, so ``trainer --help`` stays fast.
"""

__all__ = ["cache_cli", "cli", "ddp", "engine", "errors", "ops", "recorder", "store_cli", "sweep_cli"]
