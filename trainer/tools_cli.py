"""The ``trainer`` commands that use a trained run or probe a config: eval, predict, export, tune.

A thin click layer over :mod:`trainer.ops.restore` (a run folder back as a model),
:mod:`trainer.ops.evaluate`, :mod:`trainer.ops.predict`, :mod:`trainer.ops.export` and
:mod:`trainer.ops.tune`. RUN is a run folder or a run id prefix (looked up in the store).
Bad input (an unknown run, a missing best.pt, an unreadable image, an unknown format) is
one ``error:`` line and exit status 2. :func:`register` attaches them to ``trainer``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ednaquery.clikit import command_app, store_option
from ednaquery.errors import UsageError
from ednaquery.terminal import printable

__all__ = ["COMMANDS", "register"]

_store_option = store_option("store_uri")


def _restore(run: str, store_uri: str | None, device: str | None, *, need_store: bool = False) -> tuple[Any, Any]:
    """(the restored run, the open App or None): RUN as a folder, else through the store."""
    from trainer.ops.restore import resolve_run, restore_run

    is_folder = os.path.isdir(run)
    app = command_app(store_uri) if need_store or not is_folder else None
    try:
        folder = resolve_run(run, None if is_folder else app.open_store(create=True))
        return restore_run(folder, device=_device(device)), app
    except BaseException:
        if app is not None:
            app.close()
        raise


def _device(device: str | None) -> str:
    from trainer.engine.loop import resolve_device
    from trainer.ops.launch import check_device

    return str(resolve_device(check_device(device) or "cpu"))


# ------------------------------------------------------------------ eval


@click.command("eval", epilog="""\b
Examples:
  trainer eval 20261122-221530 --data imagefolder:/data/fonts-test
  trainer eval runs/20261122-221530-3fa9 --split test          # fashion_mnist: its t10k files
  trainer eval 20261122-221530 --split val --json
  ednaquery find kind=run 'test_acc>0.9'
\b
Records test_loss, test_acc, test_top5, test_balanced_acc, test_macro_f1, per-class
test_recall_<class>... in the run (summary.json, re-indexed: searchable like val_acc) and
writes confusion_matrix_test.png.
Exit status: 0 evaluated, 2 bad input (unknown run, no best.pt, unreadable data).""")
@click.argument("run")
@click.option("--data", default=None, metavar="imagefolder:PATH",
              help="Images to evaluate on: PATH/<class>/* (or PATH/<split>/<class>/*). "
                   "Default: the run's own dataset.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="test: recorded as test_*; val: the run's validation split, recorded as eval_val_*.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default: the run's eval batch.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: cpu).")
@click.option("--no-record", is_flag=True, help="Print the metrics only; change nothing in the run.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@_store_option
def eval_cmd(run: str, data: str | None, split: str, batch_size: int | None, device: str | None,
             no_record: bool, as_json: bool, store_uri: str | None) -> None:
    """Evaluate RUN's best.pt on held-out images; record the metrics and the confusion matrix in the run."""
    from trainer.ops.evaluate import check_recordable, evaluate, record

    restored, app = _restore(run, store_uri, device, need_store=not no_record)
    try:
        if not no_record:
            check_recordable(restored)
        report = evaluate(restored, data=data, split=split, batch_size=batch_size)
        files = [] if no_record else record(restored, report, app.open_store(create=True))
    finally:
        if app is not None:
            app.close()
    if as_json:
        import json

        click.echo(json.dumps({"run_id": restored.run_id, "split": split, "data": report.source,
                               "images": report.images, "metrics": report.metrics,
                               "files": [str(f) for f in files]}, indent=2))
        return
    click.echo(printable(f"run {restored.run_id}: {report.images} images from {report.source}"))
    for name, value in report.metrics.items():
        click.echo(printable(f"{name:>22}: {value:.4f}"))
    for f in files:
        click.echo(printable(f"wrote {f}"), err=True)


# ------------------------------------------------------------------ predict


@click.command(epilog="""\b
Examples:
  trainer predict 20261122-221530 photo.png
  trainer predict runs/20261122-221530-3fa9 images/ --top 3
  trainer predict 20261122-221530 images/ --format csv > predictions.csv
  trainer predict 20261122-221530 x.png --format json | jq '.[0].predictions[0].class'""")
@click.argument("run")
@click.argument("images", metavar="IMAGE_OR_FOLDER")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="Classes shown per image.")
@click.option("--format", "fmt", default="table", show_default=True, metavar="table|json|csv",
              help="Output format.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: cpu).")
@_store_option
def predict(run: str, images: str, top: int, fmt: str, device: str | None, store_uri: str | None) -> None:
    """Class names with probabilities for an image or every image in a folder, from RUN's best.pt."""
    from trainer.ops.predict import FORMATS, format_predictions
    from trainer.ops.predict import predict as predict_images
    from trainer.ops.restore import image_files

    if fmt not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    paths = image_files(images)
    restored, app = _restore(run, store_uri, device)
    if app is not None:
        app.close()
    # the table escapes control characters itself; json and csv keep the exact class names and paths,
    # which click.echo would otherwise strip of anything that looks like a colour code when piped
    click.echo(format_predictions(predict_images(restored, paths, top), fmt), color=True)


# ------------------------------------------------------------------ export


@click.command(epilog="""\b
Examples:
  trainer export 20261122-221530 --format onnx           # runs/<id>/export/model.onnx + model.json
  trainer export runs/20261122-221530-3fa9 --format torchscript -o deploy/fonts.pt
\b
The model takes float32 NCHW pixels 0..255 at the run's image size and returns softmax
probabilities; the normalisation is inside. model.json (and the artefact's metadata) holds
the class list and the preprocessing.""")
@click.argument("run")
@click.option("--format", "fmt", required=True, metavar="torchscript|onnx", help="Artefact format.")
@click.option("-o", "--output", default=None, metavar="PATH",
              help="Artefact path (default: <run>/export/model.pt or model.onnx).")
@_store_option
def export(run: str, fmt: str, output: str | None, store_uri: str | None) -> None:
    """Write RUN's best.pt as a TorchScript or ONNX inference artefact with its class list and preprocessing."""
    from trainer.ops.export import FORMATS, export_run

    if fmt not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    restored, app = _restore(run, store_uri, None)
    if app is not None:
        app.close()
    artefact, side = export_run(restored, fmt, output)
    click.echo(printable(str(artefact)))
    click.echo(printable(str(side)))


# ------------------------------------------------------------------ tune


@click.group(epilog="""\b
Examples:
  trainer tune lr config.yaml
  trainer tune batch-size config.yaml --device cuda""")
def tune() -> None:
    """Find a learning rate (range test) or the largest batch that fits, for a config."""


def _config(config: str, overrides: tuple[str, ...], store_uri: str | None) -> tuple[Any, Any, Any]:
    """(validated TrainerConfig, ResolvedConfig, App or None) for a config file or a store id prefix."""
    from trainer.engine.config import load_config
    from trainer.ops.launch import derive, index_config_file, resolve_target

    app = None
    if os.path.isfile(config):
        base = index_config_file(None, config, index=False)
    else:
        app = command_app(store_uri)
        base = resolve_target(app.open_store(create=True), config)
    resolved = derive(base, list(overrides))
    return load_config(resolved.config), resolved, app


def _check_folder(path: Path | None, option: str) -> None:
    """Refuse a file option whose folder does not exist before a probe runs for minutes, not after."""
    if path is not None and not path.expanduser().resolve().parent.is_dir():
        raise UsageError(f"{option}: the folder {path.parent} does not exist")


def _apply(resolved: Any, key: str, value: Any, store_uri: str | None, app: Any, output: Path | None) -> None:
    """``--apply``: index a config derived with ``key=value`` and say its id; ``--output``: write it as YAML."""
    import json

    import yaml

    from ednaquery.fsutil import write_atomic
    from trainer.ops.launch import derive

    derived = derive(resolved, [f"{key}={json.dumps(value)}"])
    if output is not None:
        write_atomic(output, yaml.safe_dump(derived.config, sort_keys=False, default_flow_style=None))
        click.echo(printable(f"wrote {output} ({key}={value})"), err=True)
    if derived is resolved:
        click.echo(f"the config already has {key}={value}; nothing new to index")
        return
    own = app is None
    app = app or command_app(store_uri)
    try:
        store = app.open_store(create=True)
        if resolved.derived_from is not None:  # the overridden parent is a config of its own
            store.upsert([resolved.doc])
        if derived.derived_from is not None:
            store.upsert([derived.doc])
    finally:
        if own:
            app.close()
    click.echo(f"config {derived.config_id[:12]} ({key}={value}); `trainer launch {derived.config_id[:12]}` "
               f"trains it")


@tune.command("lr", epilog="""\b
Examples:
  trainer tune lr config.yaml
  trainer tune lr config.yaml --steps 200 --end-lr 1 --plot lr.png
  trainer tune lr 3fa9c2 --apply                  # index a config with optimizer.lr set
  trainer tune lr config.yaml --rule min10 --apply --output tuned.yaml
\b
Range test: the lr grows exponentially from --start-lr to --end-lr over --steps updates
of a fresh model; the loss is smoothed (EMA 0.98, bias-corrected). --rule steepest
(default) suggests the lr where the smoothed loss falls fastest against log(lr), before
its minimum; --rule min10 suggests a tenth of the lr at the minimum.""")
@click.argument("config")
@click.argument("overrides", nargs=-1)
@click.option("--start-lr", type=float, default=1e-7, show_default=True)
@click.option("--end-lr", type=float, default=10.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=5), default=100, show_default=True, help="Updates in the sweep.")
@click.option("--rule", type=click.Choice(["steepest", "min10"]), default="steepest", show_default=True)
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("lr_range.png"),
              show_default=True, help="Where to draw loss against lr.")
@click.option("--apply", "apply_", is_flag=True, help="Index a config derived with optimizer.lr=SUGGESTION.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --apply: also write the derived config to this YAML file.")
@click.option("--json", "as_json", is_flag=True, help="Print the curve and the suggestion as JSON.")
@_store_option
def tune_lr(config: str, overrides: tuple[str, ...], start_lr: float, end_lr: float, steps: int, rule: str,
            device: str | None, plot_path: Path, apply_: bool, output: Path | None, as_json: bool,
            store_uri: str | None) -> None:
    """Learning-rate range test for CONFIG (file or config id, plus key=value OVERRIDES); suggest an lr."""
    from trainer.engine.plots import plot_lr_range
    from trainer.ops.launch import check_device
    from trainer.ops.tune import lr_range_test

    _check_folder(plot_path, "--plot")
    _check_folder(output, "--output")
    cfg, resolved, app = _config(config, overrides, store_uri)
    try:
        found = lr_range_test(cfg, start_lr=start_lr, end_lr=end_lr, steps=steps, rule=rule,
                              device=check_device(device))
        plot_lr_range(found.lrs, found.losses, found.smoothed, found.suggestion, plot_path,
                      title=f"lr range test: {cfg.model.name}, batch {cfg.data.batch_size}")
        if as_json:
            import json

            click.echo(json.dumps({"suggestion": found.suggestion, "rule": found.rule,
                                   "min_loss_lr": found.min_loss_lr, "diverged": found.diverged,
                                   "lrs": found.lrs, "losses": found.losses, "smoothed": found.smoothed}))
        else:
            every = max(1, len(found.lrs) // 20)
            click.echo(f"{'lr':>10}  {'loss':>9}  {'smoothed':>9}")
            for i in range(0, len(found.lrs), every):
                click.echo(f"{found.lrs[i]:>10.3g}  {found.losses[i]:>9.4f}  {found.smoothed[i]:>9.4f}")
            click.echo(printable(f"plot: {plot_path}"), err=True)
        if found.suggestion is None:
            raise UsageError("the loss never fell during the sweep: lower --start-lr or raise --steps")
        if not as_json:
            click.echo(f"suggested lr {found.suggestion:.3g} ({rule}; the smoothed loss is lowest at "
                       f"{found.min_loss_lr:.3g})")
        if apply_:
            _apply(resolved, "optimizer.lr", float(f"{found.suggestion:.3g}"), store_uri, app, output)
    finally:
        if app is not None:
            app.close()


@tune.command("batch-size", epilog="""\b
Examples:
  trainer tune batch-size config.yaml --device cuda
  trainer tune batch-size config.yaml --max 1024 --margin 0.2 --apply
\b
Doubles the batch from --start until a size runs out of memory (or --max), then
binary-searches; a size fits when full training steps run at it. The answer is the
largest fit less --margin, rounded down to a multiple of 8. Images/s at each size.""")
@click.argument("config")
@click.argument("overrides", nargs=-1)
@click.option("--start", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--max", "max_batch", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--margin", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Fraction kept free below the largest batch that fits.")
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed training steps per size.")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default: the config's).")
@click.option("--apply", "apply_", is_flag=True, help="Index a config derived with data.batch_size=ANSWER.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --apply: also write the derived config to this YAML file.")
@_store_option
def tune_batch_size(config: str, overrides: tuple[str, ...], start: int, max_batch: int, margin: float, steps: int,
                    device: str | None, apply_: bool, output: Path | None, store_uri: str | None) -> None:
    """Largest batch size of CONFIG that fits on this device (with a margin), and images/s at each size."""
    from trainer.ops.launch import check_device
    from trainer.ops.tune import TrainStepProbe, search_batch_size

    _check_folder(output, "--output")
    cfg, resolved, app = _config(config, overrides, store_uri)
    try:
        probe = TrainStepProbe(cfg, device=check_device(device), steps=steps)

        def show(t: Any) -> None:
            if t.fits:
                mem = f"  {t.peak_mem_mb:,.0f} MB" if t.peak_mem_mb is not None else ""
                click.echo(f"batch {t.batch_size:>6}: fits  {t.images_per_s or 0:,.0f} images/s{mem}")
            else:
                click.echo(f"batch {t.batch_size:>6}: out of memory")

        found = search_batch_size(probe, start=start, max_batch=max_batch, margin=margin, say=show)
        limit = " (--max reached)" if found.hit_max else ""
        click.echo(f"largest batch that fits on {probe.device}: {found.largest_fit}{limit}; "
                   f"suggested data.batch_size {found.suggestion} ({margin:.0%} margin)")
        if apply_:
            _apply(resolved, "data.batch_size", found.suggestion, store_uri, app, output)
    finally:
        if app is not None:
            app.close()


# ------------------------------------------------------------------ registration

COMMANDS = (eval_cmd, predict, export, tune)


def register(group: click.Group) -> None:
    """Add eval, predict, export and tune to the ``trainer`` group."""
    for cmd in COMMANDS:
        group.add_command(cmd)

