"""One run trained by N processes with DistributedDataParallel (``trainer launch --gpus N``).

:mod:`~trainer.ddp.launch` runs in the launching process: it starts N copies of
:mod:`~trainer.ddp.entry` (``python -m trainer.ddp.entry SPEC``) through torch.distributed's
elastic launcher, passes stop requests on and makes the run folder tell the truth afterwards.
"""

__all__ = ["entry", "launch"]
