"""Trainer configs for tests: the tiny test_resnet-on-digits run, and section-wise overrides of any config."""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["TINY", "tiny_config", "with_sections"]

#: test_resnet on digits at 16 px for one epoch on the CPU: a few seconds on one thread
TINY: dict[str, Any] = {
    "model": {"name": "test_resnet"},
    "data": {"dataset": "digits", "img_size": 16, "batch_size": 16},
    "optimizer": {"name": "adamw", "lr": 3e-3}, "scheduler": {"name": "cosine"},
    "train": {"epochs": 1, "seed": 0, "device": "cpu"}}


def with_sections(cfg: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A copy of ``cfg`` with each named section's keys updated (a dict) or the section replaced (anything else)."""
    out = copy.deepcopy(cfg)
    for name, values in sections.items():
        current = out.get(name)
        out[name] = {**current, **values} if isinstance(values, dict) and isinstance(current, dict) else values
    return out


def tiny_config(**sections: Any) -> dict[str, Any]:
    """:data:`TINY` with ``sections`` merged in, e.g. ``tiny_config(train={"epochs": 2})``; a fresh dict each call."""
    return with_sections(TINY, **sections)
