"""``trainer predict``: class names with probabilities for images, from a run's best.pt.

Column ``i`` of the model's output is ``class_names[i]`` of the checkpoint (see
:mod:`trainer.ops.restore`): a name is never looked up in a list built anew (a folder
listing, a sorted set), which is how a hand-made frontend once labelled every image with
its neighbouring class.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ednaquery.errors import UsageError
from trainer.ops.restore import RestoredRun, read_images

__all__ = ["FORMATS", "Prediction", "format_predictions", "predict"]

FORMATS = ("table", "json", "csv")
CHUNK = 256  # images decoded at a time


@dataclass
class Prediction:
    """The top classes of one image, most probable first: ``[(class name, class index, probability)]``."""

    image: str
    top: list[tuple[str, int, float]]


def predict(run: RestoredRun, paths: Sequence[Path], top: int = 5) -> list[Prediction]:
    """The ``top`` most probable classes of each image in ``paths``."""
    if top < 1:
        raise UsageError("--top must be 1 or more")
    k = min(top, len(run.class_names))
    out: list[Prediction] = []
    for i in range(0, len(paths), CHUNK):
        chunk = list(paths[i:i + CHUNK])
        probs = run.probabilities(read_images(chunk, run.preprocess))
        values, indices = probs.topk(k, dim=1)
        for p, vs, ix in zip(chunk, values.tolist(), indices.tolist()):
            out.append(Prediction(str(p), [(run.class_names[j], j, v) for v, j in zip(vs, ix)]))
    return out


def format_predictions(preds: Sequence[Prediction], fmt: str) -> str:
    """``table`` (one line per image: the top classes with probabilities), ``json`` or ``csv`` (one row
    per image and rank)."""
    if fmt == "json":
        return json.dumps([{"image": p.image, "predictions": [
            {"rank": r + 1, "class": name, "index": idx, "probability": prob}
            for r, (name, idx, prob) in enumerate(p.top)]} for p in preds], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "rank", "class", "index", "probability"])
        for p in preds:
            for r, (name, idx, prob) in enumerate(p.top):
                w.writerow([p.image, r + 1, name, idx, f"{prob:.6f}"])
        return buf.getvalue().rstrip("\n")
    if fmt == "table":
        from ednaquery.terminal import printable

        width = max((len(printable(p.image)) for p in preds), default=5)
        lines = [f"{'image':<{width}}  predictions"]
        for p in preds:
            shown = "  ".join(f"{printable(name)} {prob:.3f}" for name, _, prob in p.top)
            lines.append(f"{printable(p.image):<{width}}  {shown}")
        return "\n".join(lines)
    raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
