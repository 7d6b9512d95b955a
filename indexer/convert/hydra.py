"""Hydra ``defaults:`` lists: compose a config file with the configs it selects.

A Hydra config names other configs in its defaults list; the config Hydra hands to the
program is the merge of all of them. This module rebuilds that composition from the
files, as Hydra 1.1+ does when the file is the primary config (``--config-name``):

- entries: ``_self_``; ``group: option`` (an option of a config group, a folder of the
  config root); ``group: [a, b]``; ``group@pkg: option``; ``path/to/config`` (a config by
  path); ``optional`` (a missing option is skipped silently); ``override`` (changes the
  option another entry chose, wherever in the tree, like ``experiment/*.yaml`` do);
  ``null`` (nothing selected). Group paths are relative to the folder of the config that
  names them, absolute with a leading ``/``.
- order: entries merge in list order, later wins; ``_self_`` (the file's own keys) goes
  where it is listed, at the end if it is not listed.
- packages: where a config's keys land. The default is its group (``model/mnist.yaml``
  -> ``model.*``); ``@pkg`` in the entry (relative to the including config's package),
  the ``# @package`` header (absolute: ``_global_``, ``_global_.x``, ``x``), ``_here_``,
  and the legacy ``_group_``/``_name_`` keywords.

The config root is the nearest ancestor folder named ``configs`` or ``conf``; failing
that, the file's folder or one of its two parents, whichever holds the configs the
defaults list names. A file whose ``defaults`` entries name nothing that exists, has no
``_self_``, no ``# @package`` header and no config root is not treated as Hydra (its
``defaults`` key is then plain data). Configs under ``hydra/`` that are not there are
Hydra's own (``hydra/job_logging: colorlog``...) and are skipped without a warning; other
missing configs get one.

An ``override`` with nothing to override (an ``experiment/x.yaml`` indexed on its own,
not composed into the primary config) is applied as a plain selection, so the
experiment's effective config includes the configs it selects. The result is the
composition in the *global* package; :func:`compose` returns it with the file's own
package so that the caller can resolve interpolations globally, then show the file's part.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ednaquery.errors import LoadError
from ednaquery.loaders import DEFAULT_MAX_BYTES
from indexer.convert.filecache import load_cached
from indexer.convert.merge import merge_at

ROOT_NAMES = ("configs", "conf")
EXTENSIONS = (".yaml", ".yml")
MAX_PASSES = 4


@dataclass
class Composition:
    """A composed config in the global package, and the package the file's own keys live in."""

    tree: dict
    package: str
    root: str
    warnings: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)


@dataclass
class _Entry:
    kind: str  # "self" | "group" | "config"
    name: str = ""  # group (group entries) or config path (config entries), as written
    option: Any = None
    package: str | None = None
    optional: bool = False
    override: bool = False


def has_defaults_list(doc: Any) -> bool:
    """True if a document has a Hydra-shaped ``defaults`` list."""
    if not isinstance(doc, dict) or not isinstance(doc.get("defaults"), list):
        return False
    return all(isinstance(e, str) or (isinstance(e, dict) and len(e) == 1) for e in doc["defaults"])


def _parse(item: Any) -> _Entry | None:
    if isinstance(item, str):
        text = item.strip()
        if text == "_self_":
            return _Entry("self")
        words = text.split()
        optional = words[0] == "optional" and len(words) > 1
        path = words[-1]
        path, _, pkg = path.partition("@")
        return _Entry("config", path, package=pkg or None, optional=optional) if path else None
    if isinstance(item, dict) and len(item) == 1:
        key, option = next(iter(item.items()))
        words = str(key).split()
        if not words:
            return None
        flags = set(words[:-1])
        group, _, pkg = words[-1].partition("@")
        if not group or flags - {"optional", "override"}:
            return None
        if option is not None and not isinstance(option, (str, list)):
            return None
        return _Entry("group", group, option, pkg or None, "optional" in flags, "override" in flags)
    return None


def _header_package(directive: str | None, default_package: str) -> str | None:
    """A ``# @package`` header in Hydra's absolute form (``_global_...``), or None."""
    if directive is None:
        return None
    header = directive.strip()
    if header in ("", "_group_"):
        return None
    header = header.replace("_group_", default_package)
    if header == "_global_" or header.startswith("_global_."):
        return header
    return f"_global_.{header}"


def _final_package(parent: str, package: str | None, relative_group: str, name: str | None) -> str:
    """Hydra's package rule: entry package (relative) or header (absolute) or the group."""
    if package is None:
        package = relative_group.replace("/", ".")
    if name:
        package = package.replace("_name_", name)
    if parent == "":
        ret = package
    elif package == "":
        ret = parent
    else:
        ret = f"{parent}.{package}"
    i = ret.rfind("_global_")
    return ret if i == -1 else ret[i + len("_global_") + 1:]


def _entry_package(entry: _Entry, default_package: str) -> str | None:
    pkg = entry.package
    if pkg is None:
        return None
    if pkg == "_here_":
        return ""
    if "_group_" in pkg:
        return "_global_." + pkg.replace("_group_", default_package)
    return pkg


def _is_hydra_builtin(group_path: str) -> bool:
    return group_path == "hydra" or group_path.startswith("hydra/")


class _Composer:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.overrides: dict[str, Any] = {}
        self.add_unmatched: set[str] = set()
        self.reset()

    def reset(self) -> None:
        self.warnings: list[str] = []
        self.depends_on: list[str] = []
        self.seen_overrides: dict[str, Any] = {}
        self.group_keys: set[str] = set()

    def find(self, config_path: str) -> str | None:
        first = None
        for ext in EXTENSIONS:
            p = os.path.normpath(os.path.join(self.root, config_path + ext))
            first = first or p
            if os.path.isfile(p):
                self.depends_on.append(p)
                return p
        self.depends_on.append(first or config_path)
        return None

    def load(self, path: str, shown: str) -> tuple[Any, dict[str, str]] | None:
        try:
            loaded = load_cached(path, max_bytes=self.max_bytes)
        except LoadError as exc:
            self.warnings.append(f"defaults: {shown} cannot be used ({exc.detail})")
            return None
        self.warnings.extend(f"{shown}: {w}" for w in loaded.warnings)
        doc = loaded.documents[0] if loaded.documents else {}
        return doc, loaded.directives

    def expand(self, config_path: str, package: str, doc: Any, stack: tuple[str, ...]) -> list[tuple[str, Any]]:
        """The (package, content) pieces of one config, in merge order."""
        base_dir = config_path.rpartition("/")[0]
        if has_defaults_list(doc):
            content = {k: v for k, v in doc.items() if k != "defaults"}
            entries = []
            for item in doc["defaults"]:
                e = _parse(item)
                if e is None:
                    self.warnings.append(f"{config_path}: defaults entry {item!r} not understood; skipped")
                else:
                    entries.append(e)
        else:
            content, entries = doc, []
        if not any(e.kind == "self" for e in entries):
            entries.append(_Entry("self"))
        out: list[tuple[str, Any]] = []
        for e in entries:
            if e.kind == "self":
                out.append((package, content))
            elif e.kind == "group":
                out.extend(self.group(e, base_dir, package, config_path, stack))
            else:
                out.extend(self.config(e, base_dir, package, config_path, stack))
        return out

    def group(self, e: _Entry, base_dir: str, package: str, where: str,
              stack: tuple[str, ...]) -> list[tuple[str, Any]]:
        absolute = e.name.startswith("/")
        rel = e.name.lstrip("/")
        gpath = rel if absolute or not base_dir else f"{base_dir}/{rel}"
        if e.override:
            self.seen_overrides[gpath] = e.option
            if gpath not in self.add_unmatched:
                return []
            option = e.option
        else:
            self.group_keys.add(gpath)
            option = self.overrides.get(gpath, e.option)
        if option is None:
            return []
        options = option if isinstance(option, list) else [option]
        out: list[tuple[str, Any]] = []
        for opt in options:
            if not isinstance(opt, str) or "${" in opt or opt == "???":
                if not e.optional:
                    self.warnings.append(f"{where}: defaults entry {e.name}: {opt!r} has no option chosen "
                                         "(set at run time); skipped")
                continue
            cfg = f"{gpath}/{opt}"
            out.extend(self.include(cfg, e, gpath, rel, opt, package, where, stack, builtin=_is_hydra_builtin(gpath)))
        return out

    def config(self, e: _Entry, base_dir: str, package: str, where: str,
               stack: tuple[str, ...]) -> list[tuple[str, Any]]:
        absolute = e.name.startswith("/")
        rel = e.name.lstrip("/")
        cfg = rel if absolute or not base_dir else f"{base_dir}/{rel}"
        group_path = cfg.rpartition("/")[0]
        rel_group = rel.rpartition("/")[0]
        name = rel.rpartition("/")[2]
        return self.include(cfg, e, group_path, rel_group, name, package, where, stack,
                            builtin=_is_hydra_builtin(cfg))

    def include(self, cfg: str, e: _Entry, group_path: str, rel_group: str, name: str, package: str,
                where: str, stack: tuple[str, ...], builtin: bool) -> list[tuple[str, Any]]:
        if cfg in stack:
            self.warnings.append(f"defaults: {cfg} includes itself ({' -> '.join(stack + (cfg,))}); skipped")
            return []
        path = self.find(cfg)
        if path is None:
            if not (e.optional or builtin):
                self.warnings.append(f"defaults: {cfg}.yaml (named in {where}) not found under {self.root}")
            return []
        loaded = self.load(path, cfg)
        if loaded is None:
            return []
        doc, directives = loaded
        default_pkg = group_path.replace("/", ".")
        pkg = _entry_package(e, default_pkg)
        if pkg is None:
            pkg = _header_package(directives.get("package"), default_pkg)
        final = _final_package(package, pkg, rel_group, name)
        return self.expand(cfg, final, doc, stack + (cfg,))


def _referenced(doc: dict) -> list[tuple[str, bool]]:
    """(config path as written, is a group entry) of the first-level defaults entries."""
    out = []
    for item in doc.get("defaults", []):
        e = _parse(item)
        if e is None or e.kind == "self":
            continue
        if e.kind == "group":
            opts = e.option if isinstance(e.option, list) else [e.option]
            out.extend((f"{e.name}/{o}", True) for o in opts if isinstance(o, str))
        else:
            out.append((e.name, False))
    return out


def find_root(path: str, doc: dict, directives: dict[str, str]) -> Path | None:
    """The config root a Hydra file is composed from, or None if the file is not Hydra."""
    p = Path(os.path.abspath(path))
    named = next((a for a in p.parents if a.name in ROOT_NAMES), None)
    candidates = [named] if named is not None else [p.parent, *list(p.parents)[1:3]]
    refs = _referenced(doc)
    for root in candidates:
        rel_dir = p.parent.relative_to(root).as_posix() if p.parent != root else ""
        for ref, _ in refs:
            cfg = ref.lstrip("/") if ref.startswith("/") or not rel_dir else f"{rel_dir}/{ref}"
            if any(os.path.isfile(os.path.join(root, cfg + ext)) for ext in EXTENSIONS):
                return root
    has_self = any(isinstance(i, str) and i.strip() == "_self_" for i in doc.get("defaults", []))
    if named is not None or has_self or "package" in directives:
        return candidates[0]
    return None


def compose(doc: dict, path: str, directives: dict[str, str], *,
            max_bytes: int = DEFAULT_MAX_BYTES) -> Composition | None:
    """Compose the Hydra config ``doc`` (the content of ``path``); None if it is not Hydra."""
    root = find_root(path, doc, directives)
    if root is None:
        return None
    p = Path(os.path.abspath(path))
    rel = p.relative_to(root).with_suffix("").as_posix()
    group_dir = rel.rpartition("/")[0]
    header = _header_package(directives.get("package"), group_dir.replace("/", "."))
    own_package = _final_package("", header, group_dir, p.stem)
    c = _Composer(root, max_bytes)
    pieces: list[tuple[str, Any]] = []
    for _ in range(MAX_PASSES):
        c.reset()
        pieces = c.expand(rel, own_package, doc, (rel,))
        unmatched = set(c.seen_overrides) - c.group_keys
        if c.seen_overrides == c.overrides and unmatched == c.add_unmatched:
            break
        c.overrides = dict(c.seen_overrides)
        c.add_unmatched = unmatched
    tree: dict = {}
    for pkg, content in pieces:
        if pkg == "" and not isinstance(content, dict):
            if content not in (None, {}):
                c.warnings.append("defaults: a config that is not a mapping cannot go at the top level; skipped")
            continue
        tree = merge_at(tree, pkg, content)
    seen: set[str] = set()
    deps = [d for d in c.depends_on if not (d in seen or seen.add(d))]
    return Composition(tree=tree, package=own_package, root=str(root), warnings=c.warnings, depends_on=deps)
