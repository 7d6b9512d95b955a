"""The ``trainer`` command: a thin click layer over the engine (trainer.engine.runner and friends).

Engine commands that work on files directly:

    trainer train config.yaml [key=value ...] [--run-dir DIR] [--quiet] [--resume]
    trainer check config.yaml [key=value ...]     validate; print the resolved config
    trainer plot RUN_DIR                          (re)draw curves, confusion matrix, predictions
    trainer optimizers                            optimizer names a config may use
    trainer schema                                every config key, its type, default and meaning
    trainer cache ls | rm KEY | rm --all          the prepared image caches of image folders

Store-facing commands (launch by config id, queue, worker, sweep) attach to :data:`main`.
Torch is imported only by the commands that train or plot.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ednaquery.clikit import App, AppGroup, echo_error, store_option
from ednaquery.terminal import printable


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)




def read_config_file(path: Path) -> dict:
    """A YAML or JSON config file as a mapping (safe loading only)."""
    import yaml

    from trainer.errors import ConfigError

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file holds no config")
    return raw


def load_with_overrides(path: Path, overrides: tuple[str, ...]) -> tuple[dict, Any]:
    """(effective raw mapping, validated TrainerConfig) for a file plus ``key=value`` overrides."""
    from trainer.engine.config import apply_overrides, load_config

    raw = read_config_file(path)
    if overrides:
        if not isinstance(raw, dict):
            load_config(raw)  # raises the "not a trainer config" error
        raw = apply_overrides(raw, list(overrides))
    return raw, load_config(raw)


@click.group(cls=AppGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  trainer train config.yaml optimizer.lr=3e-4 --run-dir runs/try1
  trainer --store mongodb://db.example.org/ednaquery launch 3fa9c2
\b
Exit status: 0 success, 1 nothing found or the run failed, 2 usage error, bad input
or store unreachable, 130 interrupted.""")
@store_option()
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
@click.pass_context
def main(ctx: click.Context, store: str | None, debug: bool) -> None:
    """Train timm image classifiers from ednaquery configs."""
    ctx.obj = App(store=store, debug=debug)


@main.command(epilog="""\b
Examples:
  trainer train examples/quickstart/resnet18_digits.yaml
  trainer train config.yaml optimizer.lr=3e-4 epochs=5 --run-dir runs/lr3e-4
  trainer train config.yaml --run-dir runs/lr3e-4 --resume""")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder to write (default: ./runs/<run-id>).")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir from its last.pt.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def train(config: Path, overrides: tuple[str, ...], run_dir: Path | None, resume: bool, quiet: bool) -> None:
    """Train CONFIG (a trainer YAML file), with optional key=value OVERRIDES."""
    from ednaquery.documents import config_id, new_run_id
    from trainer.engine.runner import run_training

    raw, cfg = load_with_overrides(config, overrides)
    if resume and run_dir is None:
        raise click.UsageError("--resume needs --run-dir (the run folder to continue)")
    if resume and not (run_dir / "last.pt").exists():
        raise click.UsageError(f"--resume: {run_dir / 'last.pt'} does not exist")
    run_id = None
    if run_dir is None:
        run_id = new_run_id()
        run_dir = Path("runs") / run_id
    result = run_training(cfg, run_dir, resume_from=run_dir if resume else None, quiet=quiet, run_id=run_id,
                          config_id=None if resume else config_id(raw))
    out = _console(stderr=True)
    if result.status == "failed":
        echo_error(str(result.error))
        sys.exit(result.exit_code or 1)
    acc = result.metrics.get("val_acc", {})
    shown = f" val_acc last {acc['last']:.4f} best {acc['best']:.4f}" if acc else ""
    out.print(printable(f"run {result.run_id} {result.status}{shown} -> {result.run_dir}"), markup=False)
    if result.status != "completed":
        sys.exit(result.exit_code or 1)


@main.command(epilog="""\b
Examples:
  trainer check config.yaml
  trainer check config.yaml optimizer.name=sgd optimizer.lr=0.1""")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
def check(config: Path, overrides: tuple[str, ...]) -> None:
    """Validate CONFIG (plus OVERRIDES) and print it fully resolved."""
    import yaml

    from trainer.engine.config import to_dict

    _, cfg = load_with_overrides(config, overrides)
    click.echo(yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None), nl=False)


@main.command(epilog="Example: trainer plot runs/20261122-221530-3fa9")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def plot(run_dir: Path) -> None:
    """Draw curves.png, confusion_matrix.png and predictions.png for RUN_DIR."""
    from trainer.engine.plots import plot_run

    files = plot_run(run_dir)
    if not files:
        raise click.UsageError(f"{run_dir} has no metrics to plot (is it a run folder?)")
    for f in files:
        click.echo(str(f))


@main.command(epilog="""\b
Examples:
  trainer optimizers
  trainer optimizers --json | jq '.[].name'""")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def optimizers(as_json: bool) -> None:
    """List the optimizer names a config may use (timm's, minus the excluded ones)."""
    from trainer.engine.optim import list_optimizers

    items = list_optimizers()
    if as_json:
        import json

        click.echo(json.dumps([{"name": n, "description": d} for n, d in items], indent=2))
        return
    from rich.table import Table

    table = Table("name", "description", box=None)
    for name, desc in items:
        table.add_row(name, desc)
    _console().print(table)


@main.command(epilog="Example: trainer schema | grep optimizer")
def schema() -> None:
    """Every config key with its type, default and meaning."""
    from rich.markup import escape
    from rich.table import Table

    from trainer.engine.config import SCHEMA_VERSION, schema_docs

    table = Table("key", "type", "default", "meaning", title=f"trainer config, version {SCHEMA_VERSION}",
                  box=None)
    for key, tp, default, doc in schema_docs():
        table.add_row(key, tp, "null" if default is None else escape(repr(default)), escape(doc))  # [h, w] is text
    _console().print(table)


from trainer.cache_cli import cache  # trainer cache ls|rm: the prepared image caches
from trainer.ensemble_cli import ensemble  # trainer ensemble (trainer/ops/ensemble.py)
from trainer.groups_cli import register as register_groups  # cv, bag, group: k-fold and bagging groups
from trainer.store_cli import register  # the store commands: launch, queue, worker, ls, sweep...
from trainer.sweep_cli import sweep as sweep_command
from trainer.tools_cli import register as register_tools  # eval, predict, export, tune

main.add_command(cache)
register(main)
register_groups(main)
main.add_command(ensemble)
main.add_command(sweep_command)  # grid, random, bayes and --around sweeps
register_tools(main)


if __name__ == "__main__":  # pragma: no cover
    main()
