"""One run trained by N processes with DistributedDataParallel (``trainer launch --gpus N``).

:mod:`~trainer.ddp.launch` runs in the launching process: it starts N copies of
:mod:`~trainer.ddp.entry` (``python -m trainer.ddp.entry SPEC``) through torch.distributed's
elastic launcher, passes stop requests on and makes the run folder tell the truth afterwards.
The two sides talk through the files of :mod:`~trainer.ddp.control`.
"""

__all__ = ["control", "entry", "launch"]
