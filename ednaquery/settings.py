"""Settings in force: command-line flags > environment > config file > defaults.

Every process of ednaquery (the CLI, the indexer daemon, the trainer) reads its settings
through :func:`load_settings`, so they all agree on the store, the watched roots and the
aliases. Each value remembers where it came from, so ``ednaquery config`` can say why a
setting is what it is. The config file is TOML: ``.ednaquery/config.toml`` in the nearest
parent folder that has a ``.ednaquery/`` folder (like git finds ``.git``), else
``~/.config/ednaquery/config.toml``; ``--config`` or ``EDNAQUERY_CONFIG`` name another one.
Only one config file is read. Relative paths in a config file are relative to the project
folder (the one holding ``.ednaquery/``), or to the file's own folder for a user config file;
relative paths from flags and the environment are relative to the working directory.

A store URI may hold a password: :meth:`Settings.display_items` and ``repr`` mask it.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ednaquery.errors import UsageError
from ednaquery.loaders import DEFAULT_MAX_BYTES

#: Environment variable holding the config file's path.
CONFIG_ENV = "EDNAQUERY_CONFIG"
CONFIG_DIR_NAME = ".ednaquery"
CONFIG_FILE_NAME = "config.toml"
#: The embedded index's file name (in ``.ednaquery/`` or the user data dir).
INDEX_FILE_NAME = "index.db"

#: Environment variable of each setting that can be set from the environment.
ENV_VARS: dict[str, str] = {
    "store": "EDNAQUERY_STORE",
    "roots": "EDNAQUERY_ROOTS",
    "include": "EDNAQUERY_INCLUDE",
    "exclude": "EDNAQUERY_EXCLUDE",
    "poll": "EDNAQUERY_POLL",
    "debounce": "EDNAQUERY_DEBOUNCE",
    "reconcile_every": "EDNAQUERY_RECONCILE_EVERY",
    "max_file_bytes": "EDNAQUERY_MAX_FILE_BYTES",
    "runs_root": "EDNAQUERY_RUNS_ROOT",
    "cpu_threads": "EDNAQUERY_CPU_THREADS",
    "store_timeout_ms": "EDNAQUERY_STORE_TIMEOUT_MS",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass
class Settings:
    """What every ednaquery process needs to know; ``sources`` says where each value came from.

    ``store``: store URI (``mongodb://...``, ``sqlite:///abs/index.db`` or a file path); None means
    the embedded default (``.ednaquery/index.db`` of the nearest project, else the user data dir).
    ``include``/``exclude``: glob lists for the indexer; None means the indexer's built-in lists.
    ``runs_root``: where the trainer writes run folders; None and roots set: ``<first root>/runs``.
    ``cpu_threads``: torch CPU threads for the trainer; None lets the trainer pick its safe default.
    """

    store: str | None = None
    roots: list[str] = field(default_factory=list)
    include: list[str] | None = None
    exclude: list[str] | None = None
    poll: bool = False
    debounce: float = 0.3
    reconcile_every: float = 600.0
    aliases: list[list[str]] = field(default_factory=list)
    max_file_bytes: int = DEFAULT_MAX_BYTES
    runs_root: str | None = None
    cpu_threads: int | None = None
    store_timeout_ms: int = 3000
    #: the config file that was read (None: none found)
    config_path: Path | None = None
    #: setting name -> "flag", "env EDNAQUERY_X", "config <path>", "default" or "default (...)"
    sources: dict[str, str] = field(default_factory=dict)

    def source(self, name: str) -> str:
        """Where the value of setting ``name`` came from."""
        return self.sources.get(name, "default")

    def effective_runs_root(self) -> str | None:
        """``runs_root``, or ``<first root>/runs`` when unset and a root is known."""
        if self.runs_root:
            return self.runs_root
        return os.path.join(self.roots[0], "runs") if self.roots else None

    def alias_groups(self) -> list[list[str]]:
        """The built-in alias groups merged with the configured ones."""
        from ednaquery.query.aliases import load_alias_groups

        return load_alias_groups(self.aliases or None)

    def display_items(self) -> list[tuple[str, str, str]]:
        """``(name, value as text, source)`` for every setting, passwords masked."""
        from ednaquery.masking import mask_uri

        out: list[tuple[str, str, str]] = []
        for name in setting_names():
            value = getattr(self, name)
            source = self.source(name)
            if name == "store":
                text = mask_uri(value) if value else f"{default_store_path()} (embedded SQLite)"
            elif name in ("include", "exclude") and value is None:
                text = "(the indexer's built-in globs)"
            elif name == "runs_root" and value is None:
                eff = self.effective_runs_root()
                text = eff if eff else "(the trainer's default)"
                if eff:
                    source = "default (first root)/runs"
            elif name == "cpu_threads" and value is None:
                text = "(the trainer's default)"
            elif name == "aliases":
                text = "; ".join(", ".join(g) for g in value) if value else "(built-in groups only)"
            elif isinstance(value, list):
                text = os.pathsep.join(value) if name == "roots" else ", ".join(value)
                text = text or "(none)"
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
            out.append((name, text, source))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (store URI masked), for ``ednaquery config --json``."""
        from ednaquery.masking import mask_uri

        data = {name: getattr(self, name) for name in setting_names()}
        if data["store"]:
            data["store"] = mask_uri(data["store"])
        return data

    def __repr__(self) -> str:
        from ednaquery.masking import mask_uri

        parts = []
        for name in setting_names():
            value = getattr(self, name)
            if name == "store" and value:
                value = mask_uri(value)
            parts.append(f"{name}={value!r}")
        return f"Settings({', '.join(parts)})"


def setting_names() -> list[str]:
    """The names of all settings (excluding bookkeeping fields)."""
    return [f.name for f in fields(Settings) if f.name not in ("config_path", "sources")]


# ---------------------------------------------------------------- where things are


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest folder (from ``start`` up) that holds a ``.ednaquery/`` folder."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_DIR_NAME).is_dir():
            return folder
    return None


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/ednaquery`` (``~/.local/share/ednaquery`` by default): the per-user index and
    the daemons' state."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ednaquery"


def default_store_path(start: Path | None = None) -> Path:
    """The embedded index when no store is set: ``.ednaquery/index.db`` in the nearest project folder
    (from ``start``, default the working directory, up; like git finds ``.git``), else the user's."""
    project = find_project_dir(start)
    if project is not None:
        return project / CONFIG_DIR_NAME / INDEX_FILE_NAME
    return user_data_dir() / INDEX_FILE_NAME


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/ednaquery/config.toml`` (``~/.config/...`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ednaquery" / CONFIG_FILE_NAME


# ---------------------------------------------------------------- the config file


def find_config_file(start: Path | None = None) -> Path | None:
    """The config file that applies when none is named: the project's, else the user's, else None."""
    project = find_project_dir(start)
    if project is not None and (project / CONFIG_DIR_NAME / CONFIG_FILE_NAME).is_file():
        return project / CONFIG_DIR_NAME / CONFIG_FILE_NAME
    user = user_config_path()
    return user if user.is_file() else None


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings a TOML config file sets (validated names; values still raw)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except OSError as e:
        raise UsageError(f"cannot read config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config file {path} is not valid TOML: {e}") from None
    names = setting_names()
    for key in data:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(names)})"
            raise UsageError(f"unknown setting {key!r} in {path}{hint}")
    return data


def _config_base_dir(path: Path) -> Path:
    """The folder relative paths in a config file are relative to."""
    parent = path.resolve().parent
    return parent.parent if parent.name == CONFIG_DIR_NAME else parent


# ---------------------------------------------------------------- values


def _abspath(value: str, base: Path | None) -> str:
    p = Path(os.path.expanduser(value))
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return os.path.normpath(str(p))


def _store_value(value: str, base: Path | None) -> str:
    if "://" in value:
        return value
    return _abspath(value, base)


def _as_bool(name: str, value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"setting {name} ({where}) must be true or false, not {value!r}")


def _as_number(name: str, value: Any, where: str, kind: type, minimum: float) -> Any:
    if isinstance(value, bool):
        raise UsageError(f"setting {name} ({where}) must be a number, not {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"setting {name} ({where}) must be a{'n integer' if kind is int else ' number'}, "
                         f"not {value!r}") from None
    if number < minimum:
        raise UsageError(f"setting {name} ({where}) must be at least {minimum}, not {value!r}")
    return number


def _as_list(name: str, value: Any, where: str, sep: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(sep) if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(f"setting {name} ({where}) must be a list of strings, not {value!r}")


def _convert(name: str, value: Any, where: str, base: Path | None) -> Any:
    """Check and normalise one setting's value; ``base`` resolves relative paths."""
    if name == "store":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise UsageError(f"setting store ({where}) must be a URI or a path, not {value!r}")
        return _store_value(value, base)
    if name == "roots":
        return [_abspath(v, base) for v in _as_list(name, value, where, os.pathsep)]
    if name in ("include", "exclude"):
        return _as_list(name, value, where, ",")
    if name == "poll":
        return _as_bool(name, value, where)
    if name in ("debounce", "reconcile_every"):
        return _as_number(name, value, where, float, 0.0)
    if name in ("max_file_bytes", "store_timeout_ms"):
        return _as_number(name, value, where, int, 1)
    if name == "cpu_threads":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
            return None
        return _as_number(name, value, where, int, 1)
    if name == "runs_root":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise UsageError(f"setting runs_root ({where}) must be a path, not {value!r}")
        return _abspath(value, base)
    if name == "aliases":
        from ednaquery.query.aliases import load_alias_groups

        load_alias_groups(value)  # validates; raises UsageError naming the bad group
        return [list(g) for g in value]
    raise UsageError(f"unknown setting {name!r}")


def load_settings(config_path: str | os.PathLike | None = None, *, env: Mapping[str, str] | None = None,
                  cwd: str | os.PathLike | None = None, **flags: Any) -> Settings:
    """The settings in force: ``flags`` (None values ignored) > environment > config file > defaults.

    ``config_path`` names the config file (else ``EDNAQUERY_CONFIG``, else the project's or the
    user's); ``env`` and ``cwd`` default to the process's own (tests pass their own).
    Raises :class:`UsageError` for an unknown flag, a bad value or an unreadable config file.
    """
    environ = os.environ if env is None else env
    start = Path(cwd) if cwd is not None else Path.cwd()
    names = setting_names()
    for name in flags:
        if name not in names:
            raise UsageError(f"unknown setting {name!r}")

    settings = Settings()
    if config_path is not None:
        path: Path | None = Path(config_path).expanduser()
        named = True
    elif environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV]).expanduser()
        named = True
    else:
        path = find_config_file(start)
        named = False
    if path is not None and not path.is_absolute():
        path = start / path
    if path is not None:
        if named and not path.is_file():
            raise UsageError(f"config file {path} does not exist (named by "
                             f"{'--config' if config_path is not None else CONFIG_ENV})")
        settings.config_path = path.resolve()
        base = _config_base_dir(path)
        for name, value in read_settings_file(path).items():
            setattr(settings, name, _convert(name, value, f"in {path}", base))
            settings.sources[name] = f"config {path}"

    for name, var in ENV_VARS.items():
        raw = environ.get(var)
        if raw is None or (raw == "" and name != "poll"):
            continue
        setattr(settings, name, _convert(name, raw, f"from {var}", start))
        settings.sources[name] = f"env {var}"

    for name, value in flags.items():
        if value is None or (isinstance(value, (list, tuple)) and not value and name != "aliases"):
            continue
        setattr(settings, name, _convert(name, value, "from the command line", start))
        settings.sources[name] = "flag"

    if "store" not in settings.sources:
        project = find_project_dir(start)
        settings.sources["store"] = ("default (nearest .ednaquery/)" if project is not None
                                     else "default (user data dir)")
    return settings
