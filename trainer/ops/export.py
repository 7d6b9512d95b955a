"""``trainer export``: a run's best.pt as a self-describing inference artefact (TorchScript or ONNX).

The exported model takes ``images``: float32 ``[N, C, H, W]`` pixel values 0..255, already
resized to ``img_size`` with ``channels`` channels (1 grey, 3 RGB), and returns
``probabilities``: ``[N, classes]``, softmax applied. The normalisation (mean/std) is inside the
model, so a consumer cannot get it wrong; the batch size is free.

Beside the artefact, ``<name>.json`` (the sidecar) holds the class list (column ``i`` is
``class_names[i]``), the preprocessing and the input/output description. The same facts
travel inside the artefact: in ONNX's ``metadata_props`` (``class_names``, ``preprocess``,
``ednaquery`` as JSON strings) and in TorchScript's extra files (``class_names.json``,
``preprocess.json``, ``ednaquery.json``, read with ``torch.jit.load(path, _extra_files=...)``).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ednaquery.errors import UsageError
from ednaquery.fsutil import atomic_file, write_json_atomic
from trainer.ops.restore import RestoredRun

__all__ = ["EXPORT_FORMAT", "FORMATS", "InferenceModel", "export_run", "sidecar"]

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
EXPORT_FORMAT = "ednaquery-trainer-export"
EXPORT_VERSION = 1
OPSET = 18


class InferenceModel(torch.nn.Module):
    """The run's model with its normalisation in front and softmax behind: 0..255 pixels -> probabilities."""

    def __init__(self, run: RestoredRun) -> None:
        super().__init__()
        self.prepare = run.preprocess.input_module().to(run.device)  # mean/std, or the data.features stack
        self.model = run.model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.prepare(images)).float().softmax(1)


def sidecar(run: RestoredRun, fmt: str, artefact: Path) -> dict[str, Any]:
    """What the artefact is and how to feed it (the ``<name>.json`` written beside it)."""
    p = run.preprocess
    return {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "artefact": artefact.name, "artefact_format": fmt,
        "run_id": run.run_id, "checkpoint": run.checkpoint, "checkpoint_epoch": run.best.get("epoch"),
        "model": run.cfg.model.name, "class_names": list(run.class_names), "preprocess": p.as_dict(),
        "input": {"name": "images", "dtype": "float32", "layout": "NCHW",
                  "shape": ["batch", p.channels, p.img_size[0], p.img_size[1]], "range": [0, 255],
                  "channels": "greyscale" if p.channels == 1 else "RGB",
                  "normalisation": ("inside the model: the data.features stack " + "+".join(p.features)
                                    if p.features else "inside the model ((x / 255 - mean) / std)")},
        "output": {"name": "probabilities", "shape": ["batch", len(run.class_names)],
                   "meaning": "softmax probabilities; column i is class_names[i]"},
    }


def _example(run: RestoredRun, n: int = 2) -> torch.Tensor:
    h, w = run.preprocess.img_size
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, run.preprocess.channels, h, w, generator=g) * 255.0).to(run.device)


def _torchscript(run: RestoredRun, path: Path, meta: dict[str, Any]) -> None:
    wrapper = InferenceModel(run).eval()
    extra = {"class_names.json": json.dumps(meta["class_names"]), "preprocess.json": json.dumps(meta["preprocess"]),
             "ednaquery.json": json.dumps(meta)}
    with warnings.catch_warnings():  # torch marks TorchScript deprecated; asked for by name, it is what we write
        warnings.simplefilter("ignore", FutureWarning)
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, _example(run), check_trace=False)
        with atomic_file(path) as fh:
            torch.jit.save(traced, fh, _extra_files=extra)


def _onnx(run: RestoredRun, path: Path, meta: dict[str, Any]) -> None:
    import onnx

    wrapper = InferenceModel(run).eval().cpu()
    example = _example(run).cpu()
    buf = io.BytesIO()
    chatter = io.StringIO()  # the exporter prints its progress on stdout; the command's stdout is the path
    with torch.no_grad(), contextlib.redirect_stdout(chatter):
        try:
            program = torch.onnx.export(wrapper, (example,), input_names=["images"], output_names=["probabilities"],
                                        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1)}},
                                        opset_version=OPSET, dynamo=True, verbose=False)
            model = program.model_proto
        except Exception:  # noqa: BLE001 - some models only trace with the TorchScript-based exporter
            with torch.no_grad():
                torch.onnx.export(wrapper, (example,), buf, input_names=["images"], output_names=["probabilities"],
                                  dynamic_axes={"images": {0: "batch"}, "probabilities": {0: "batch"}},
                                  opset_version=OPSET, dynamo=False)
            model = onnx.load_from_string(buf.getvalue())
    for key, value in (("class_names", json.dumps(meta["class_names"])),
                       ("preprocess", json.dumps(meta["preprocess"])), ("ednaquery", json.dumps(meta))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "ednaquery-trainer"
    with atomic_file(path) as fh:
        fh.write(model.SerializeToString())


def export_run(run: RestoredRun, fmt: str, output: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Write the artefact (``output``, default ``<run>/export/model<ext>``) and its sidecar; (artefact, sidecar)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    path = Path(output) if output else run.run_dir / "export" / f"model{FORMATS[fmt]}"
    if path.is_dir():
        path = path / f"model{FORMATS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = sidecar(run, fmt, path)
    if fmt == "torchscript":
        _torchscript(run, path, meta)
    else:
        _onnx(run, path, meta)
    side = path.with_suffix(".json")
    write_json_atomic(side, meta)
    return path, side
