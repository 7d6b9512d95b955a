"""Image folders for tests: ``<root>/c<k>/<i>.jpg`` of mixed sizes whose class is learnable from its colour."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["SIZES", "make_folder"]

SIZES = [(40, 60), (75, 50), (33, 33), (90, 120), (20, 70), (64, 48)]  # (h, w): wide, tall, small, large


def make_folder(root: Path, classes: int = 2, per_class: int = 6, fmt: str = "jpg", seed: int = 0) -> list[Path]:
    """Class folders of images of mixed sizes: class k is mostly colour k (learnable) plus noise."""
    rng = np.random.RandomState(seed)
    colours = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 230], [230, 220, 40]], np.float64)
    paths = []
    for k in range(classes):
        (root / f"c{k}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = SIZES[(i + k) % len(SIZES)]
            arr = np.clip(colours[k] + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            p = root / f"c{k}" / f"{i}.{fmt}"
            Image.fromarray(arr).save(p, quality=90) if fmt == "jpg" else Image.fromarray(arr).save(p)
            paths.append(p)
    return paths
