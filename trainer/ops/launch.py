"""``trainer launch``: train the config a store id (or a file) names, and index the run as it goes.

A target is a config id prefix (4+ characters, resolved by the store) or the path of a config
file; a file is indexed first (as the indexer would index it), so its run links to a config
the store knows. ``key=value`` overrides make a *derived* config: a new config document with
no file, tagged ``derived``, whose ``derived_from`` names its parent; that is what runs.

The run folder is ``<runs root>/<run id>``; the runs root defaults to the ``runs_root``
setting, else ``<first watched root>/runs`` (so the indexer sees it), else ``./runs``.
The run is indexed as it trains (:class:`trainer.recorder.RunRecorder`); a store that is down
does not stop it.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ednaquery.documents import config_id as content_id
from ednaquery.documents import make_config_document, new_run_id, original_config
from ednaquery.errors import LoadError, NotFound, UsageError
from ednaquery.loaders import FORMATS, LoadResult, load_file
from ednaquery.runfolder import run_document
from ednaquery.store.base import FileState, PathUpdate, Store
from trainer.errors import ConfigError
from trainer.recorder import RunRecorder

log = logging.getLogger(__name__)

DERIVED_FORMAT = "derived"
DERIVED_TAG = "derived"


@dataclass
class ResolvedConfig:
    """A config ready to run: its mapping, its content id and its store document."""

    config: dict
    config_id: str
    doc: dict
    #: the parent's id when this config was derived with overrides
    derived_from: str | None = None


# ------------------------------------------------------------------ targets


def _looks_like_path(target: str) -> bool:
    return os.sep in target or "/" in target or Path(target).suffix.lower() in FORMATS


def validate(config: Any, what: str) -> Any:
    """The validated :class:`trainer.engine.config.TrainerConfig`; ConfigError names ``what`` on failure."""
    from trainer.engine.config import load_config

    try:
        return load_config(config)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def read_user_file(path: str | os.PathLike[str]) -> LoadResult:
    """A config or sweep file the user named, loaded; one that cannot be read or parsed is bad input
    (:class:`ConfigError`, exit status 2), not a failure."""
    try:
        return load_file(path)
    except LoadError as exc:
        raise ConfigError(str(exc)) from None


def index_config_file(store: Store | None, path: str | os.PathLike[str], *, index: bool = True) -> ResolvedConfig:
    """Load a config file, check it is a trainer config, index it (``store.apply``) and return it.

    ``index=False`` only loads and checks (for dry runs).
    """
    p = os.path.abspath(path)
    loaded = read_user_file(p)
    if not loaded.documents:
        raise ConfigError(f"{path}: the file holds no config")
    config = loaded.documents[0]
    warnings = list(loaded.warnings)
    if len(loaded.documents) > 1:
        warnings.append("the file holds several documents; the trainer uses the first")
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a trainer config: expected a mapping")
    validate(config, str(path))
    st = os.stat(p)
    doc = make_config_document(config, path=p, format=loaded.format, size=st.st_size, mtime=st.st_mtime,
                               warnings=warnings)
    if index and store is not None:
        store.apply([PathUpdate(p, [doc], FileState(st.st_size, st.st_mtime_ns, st.st_ino))])
    return ResolvedConfig(config=config, config_id=doc["_id"], doc=doc)


def config_from_store(store: Store, id_or_prefix: str) -> ResolvedConfig:
    """The config document an id (prefix) names; a run or error record is refused with a hint."""
    doc = store.get(id_or_prefix)
    kind = doc.get("kind")
    if kind == "run":
        raise UsageError(f"{id_or_prefix!r} is a run, not a config: `trainer resume {doc['_id']}` continues it, "
                         f"`trainer launch {str(doc.get('config_id') or '')[:12]}` runs its config again")
    if kind != "config":
        raise UsageError(f"{id_or_prefix!r} is a {kind} record, not a config; `ednaquery find kind=config` lists "
                         "configs")
    config = original_config(doc)
    if not isinstance(config, dict):
        raise ConfigError(f"config {doc['_id'][:12]}: not a trainer config: expected a mapping")
    validate(config, f"config {doc['_id'][:12]}")
    return ResolvedConfig(config=config, config_id=doc["_id"], doc=doc)


def resolve_target(store: Store, target: str, *, index: bool = True) -> ResolvedConfig:
    """A config id prefix or a config file path -> the config to run (files are indexed first
    unless ``index`` is False)."""
    if os.path.isfile(target):
        return index_config_file(store, target, index=index)
    if _looks_like_path(target):
        raise UsageError(f"{target}: no such config file")
    try:
        return config_from_store(store, target)
    except NotFound:
        raise NotFound(f"no config with id {target!r} in the store; `ednaquery find kind=config` lists ids, "
                       "or give a config file's path") from None


def derived_document(config: dict, parent_id: str, overrides: Sequence[str], *, tags: Sequence[str] = (),
                     extra: dict | None = None) -> dict:
    """The config document of a config derived from ``parent_id`` by ``overrides`` (no file)."""
    doc = make_config_document(config, path=None, format=DERIVED_FORMAT)  # derived_from says so: no warning
    doc["tags"] = sorted({DERIVED_TAG, *tags})
    doc["derived_from"] = parent_id
    doc["overrides"] = list(overrides)
    doc.update(extra or {})
    return doc


def override_strings(overrides: Sequence[str] | dict[str, Any]) -> list[str]:
    """Overrides as ``key=value`` strings (strings as they are, other values as JSON)."""
    if not isinstance(overrides, dict):
        return list(overrides)
    import json

    return [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]


def derive(base: ResolvedConfig, overrides: Sequence[str] | dict[str, Any], *, tags: Sequence[str] = (),
           extra: dict | None = None) -> ResolvedConfig:
    """Apply overrides to ``base`` and validate (nothing is written); the same config when they change nothing."""
    from trainer.engine.config import apply_overrides

    if not overrides:
        return base
    config = apply_overrides(base.config, overrides if isinstance(overrides, dict) else list(overrides))
    cid = content_id(config)
    if cid == base.config_id:
        return base
    validate(config, "with the overrides " + " ".join(override_strings(overrides)))
    doc = derived_document(config, base.config_id, override_strings(overrides), tags=tags, extra=extra)
    return ResolvedConfig(config=config, config_id=cid, doc=doc, derived_from=base.config_id)


def prepare(store: Store, target: str, overrides: Sequence[str] = (), *, index: bool = True) -> ResolvedConfig:
    """Resolve ``target``, apply ``overrides`` and index the derived config: what ``launch`` will run
    (``index`` False: nothing is written, for a dry run)."""
    base = resolve_target(store, target, index=index)
    resolved = derive(base, overrides)
    if index and resolved.derived_from is not None:
        store.upsert([resolved.doc])
    return resolved


# ------------------------------------------------------------------ runs root and indexing


def default_runs_root(settings: Any = None) -> Path:
    """``runs_root`` setting, else ``<first watched root>/runs``, else ``./runs`` (absolute)."""
    if settings is None:
        from ednaquery.settings import load_settings

        settings = load_settings()
    root = settings.effective_runs_root() if settings is not None else None
    return Path(os.path.abspath(root or "runs"))


def runs_root_for(flag: str | os.PathLike[str] | None, settings: Any = None) -> Path:
    """The folder a ``--runs-root`` flag names (resolved), else :func:`default_runs_root`."""
    return Path(flag).resolve() if flag else default_runs_root(settings)


# ------------------------------------------------------------------ launch and resume


def check_device(device: str | None) -> str | None:
    """Validate a ``--device`` value (auto, cpu, cuda, cuda:N)."""
    if device:
        from trainer.engine.config import parse_device

        try:
            return parse_device(device)
        except ConfigError:
            raise UsageError(f"--device: {device!r} is not auto, cpu, cuda or cuda:N") from None
    return device


def _apply_device(cfg: Any, device: str | None) -> Any:
    """Set ``train.device`` for this run only (the config id stays the parent's)."""
    if device:
        cfg.train.device = check_device(device)
    return cfg


def check_gpus(gpus: int | None) -> None:
    """``--gpus N``: 0 is the CPU, 1 one process, more a DDP run (see :mod:`trainer.ddp.launch`)."""
    if gpus is not None and gpus < 0:
        raise UsageError("--gpus must be 0 (CPU) or more")


def run_config(store: Store, resolved: ResolvedConfig, *, runs_root: Path, quiet: bool = False,
               device: str | None = None, run_id: str | None = None, stop: threading.Event | None = None,
               handle_signals: bool = True, announce: Callable[[str], None] | None = None,
               on_start: Callable[[str, Path], None] | None = None, gpus: int | None = None,
               store_uri: str | None = None, labels: dict[str, Any] | None = None,
               on_epoch: Callable[[Any], Any] | None = None) -> Any:
    """Train an already resolved (and indexed) config into a new run folder; returns the engine's RunResult.

    ``labels`` (extra run.json fields, e.g. a sweep's id and trial) and ``on_epoch`` (may answer
    ``pruned`` to end the run) go to :func:`trainer.engine.runner.run_training`; one process only.

    ``gpus`` > 1 trains with that many DDP processes (:func:`trainer.ddp.launch.run_ddp`; they
    reach the store through ``store_uri``, by default the one ``store`` was opened with).
    """
    cfg = _apply_device(validate(resolved.config, f"config {resolved.config_id[:12]}"), device)
    if gpus is not None and gpus > 1:
        from trainer.ddp.launch import plan_backend

        plan_backend(cfg.train.device, gpus)  # a one-line error before any run folder exists
    run_id = run_id or new_run_id()
    run_dir = Path(runs_root) / run_id
    if on_start is not None:
        on_start(run_id, run_dir)
    return _train(store, cfg, run_dir, run_id=run_id, config_id=resolved.config_id, resume=False,
                  gpus=gpus, quiet=quiet, stop=stop, handle_signals=handle_signals, announce=announce,
                  store_uri=store_uri, labels=labels, on_epoch=on_epoch)


def _train(store: Store, cfg: Any, run_dir: Path, *, run_id: str, config_id: str | None, resume: bool,
           gpus: int | None, quiet: bool, stop: threading.Event | None, handle_signals: bool,
           announce: Callable[[str], None] | None, store_uri: str | None,
           labels: dict[str, Any] | None = None, on_epoch: Callable[[Any], Any] | None = None) -> Any:
    """Train ``cfg`` into ``run_dir`` (continuing it when ``resume``), indexing the run as it goes.

    ``gpus`` > 1: that many DDP processes (:func:`trainer.ddp.launch.run_ddp`, which checks the
    devices first); else this process. Both launch and resume come through here.
    """
    if gpus is not None and gpus > 1:
        from trainer.ddp.launch import run_ddp
        from trainer.engine.config import to_dict

        return run_ddp(store, to_dict(cfg), nproc=gpus, run_dir=run_dir, run_id=run_id, config_id=config_id,
                       quiet=quiet, resume=resume, stop=stop, handle_signals=handle_signals,
                       announce=announce, uri=store_uri)
    from trainer.engine.runner import run_training

    recorder = RunRecorder(store, run_dir, announce=announce)
    result = run_training(cfg, run_dir, on_status=recorder, resume_from=run_dir if resume else None,
                          quiet=quiet, run_id=run_id, config_id=config_id, stop=stop,
                          handle_signals=handle_signals, labels=labels, on_epoch=on_epoch)
    if (run_dir / "run.json").exists() and not recorder.record():
        log.warning("run %s is not in the store (%s); `ednaquery index %s` adds it later", run_id,
                    recorder.last_error, run_dir)
    return result


def launch(target: str, overrides: Sequence[str] = (), *, store: Store, runs_root: str | os.PathLike | None = None,
           quiet: bool = False, device: str | None = None, stop: threading.Event | None = None,
           handle_signals: bool = True, announce: Callable[[str], None] | None = None) -> Any:
    """Resolve ``target`` (id prefix or file), derive with ``overrides``, train, index; returns a RunResult.

    Raises :class:`EdnaError` (one line) for a bad target or config; a run that fails while
    training is reported in the result (``status == "failed"``), not raised.
    """
    resolved = prepare(store, target, overrides)
    root = Path(os.path.abspath(runs_root)) if runs_root else default_runs_root()
    return run_config(store, resolved, runs_root=root, quiet=quiet, device=device, stop=stop,
                      handle_signals=handle_signals, announce=announce)


def record_of_kind(store: Store, id_or_prefix: str, kind: str, hint: str, *, name: str | None = None) -> dict | None:
    """The store's record an id (prefix) names, or None if none does; a record of another kind is refused
    with ``hint`` (``name``: how the user wrote the id, for the message)."""
    try:
        doc = store.get(id_or_prefix)
    except NotFound:
        return None
    if doc.get("kind") != kind:
        raise UsageError(f"{(name or id_or_prefix)!r} is a {doc.get('kind')}, not a {kind}; {hint}")
    return doc


def find_run_folder(store: Store | None, run: str, runs_root: Path | None = None) -> Path:
    """The folder of a run named by id (prefix, through the store), by path, or as ``<runs root>/<id>``."""
    if os.path.isdir(run) and (Path(run) / "run.json").is_file():
        return Path(os.path.abspath(run))
    if store is not None:
        doc = record_of_kind(store, run, "run", "`trainer ls` lists runs")
        if doc is not None:
            for p in [*(doc.get("paths") or []), *(doc.get("past_paths") or [])]:
                folder = Path(p) if os.path.isdir(p) else Path(p).parent
                if (folder / "run.json").is_file():
                    return folder
            raise UsageError(f"run {doc['_id']}'s folder is not on this machine (last seen at "
                             f"{(doc.get('paths') or doc.get('past_paths') or ['?'])[0]})")
    if runs_root is not None and (Path(runs_root) / run / "run.json").is_file():
        return Path(runs_root) / run
    raise NotFound(f"no run {run!r}: give a run id from `trainer ls` or a run folder")


def resume(run: str, *, store: Store, runs_root: Path | None = None, quiet: bool = False,
           device: str | None = None, stop: threading.Event | None = None, handle_signals: bool = True,
           announce: Callable[[str], None] | None = None, gpus: int | None = None,
           store_uri: str | None = None, on_epoch: Callable[[Any], Any] | None = None) -> Any:
    """Continue a run from its ``last.pt`` (same run id and folder), indexing it as it goes.

    A checkpoint holds the bare model's weights, so a run started with DDP resumes in one
    process and the other way round; ``gpus`` > 1 resumes with that many DDP processes.
    """
    run_dir = find_run_folder(store, run, runs_root)
    if not (run_dir / "last.pt").is_file():
        raise UsageError(f"run {run_dir.name} has no checkpoint (last.pt) to resume from")
    info = run_document(run_dir)
    if info.get("status") == "completed":
        raise UsageError(f"run {info['_id']} is already completed; launch its config again for a new run")
    if not info.get("config"):
        raise UsageError(f"run {run_dir.name} has no config.yaml to resume with")
    from ednaquery.documents import unescape_keys

    cfg = _apply_device(validate(unescape_keys(info["config"]), f"run {run_dir.name}"), device)
    return _train(store, cfg, run_dir, run_id=info["_id"], config_id=info.get("config_id"), resume=True,
                  gpus=gpus, quiet=quiet, stop=stop, handle_signals=handle_signals, announce=announce,
                  store_uri=store_uri, on_epoch=on_epoch)
