"""Config files -> plain Python data (dicts, lists, str, int, float, bool, None), safely.

The indexer, the CLI (``ednaquery index``) and the trainer all read config files; this is
the one place that does it, so that every reader agrees on what a file contains:

- YAML is parsed with a :class:`yaml.SafeLoader` subclass (the C parser when PyYAML has
  it) and its node graph turned into data by a small builder that is faster than PyYAML's
  generic constructor for the common tags. Anchors, aliases and merge keys (``<<``) work. A tag that would construct a Python
  object (``!!python/object/apply:eval``, ``!!python/name:``, ``!!python/tuple``...) or any
  unknown application tag (``!Ref``) is **never constructed**: the node under it is kept
  as plain data (its sequence, mapping or scalar) and a warning names the tag and line.
  YAML 1.1 scalar rules are kept as ``safe_load`` has them (``1e-3`` stays the string
  "1e-3"; the document layer coerces numeric strings, not this module). Mapping keys that
  are not strings become the key as written (``1: a`` -> ``"1"``, ``on: x`` -> ``"on"``);
  timestamps become ISO strings; ``!!set`` a list; ``!!binary`` its base64 text, so that
  the result is always JSON-able. Files in the plain subset most configs are written in
  are read by :mod:`ednaquery.simple_yaml` instead (the same result, about 10x faster).
- JSON via :mod:`json` (``NaN``/``Infinity`` are accepted and kept as floats), JSON Lines
  one value a line, TOML via :mod:`tomllib` (dates become ISO strings).
- A file with no document (empty, whitespace or comments only) gives no documents.

Everything that goes wrong raises :class:`ednaquery.errors.LoadError` with a one-line
message (with line and column when the parser knows them): syntax errors, binary files
(NUL bytes, not UTF-8), files over ``max_bytes``, unreadable files and files that vanish
before they can be read. Recursive aliases and alias "bombs" that expand past
:data:`MAX_VALUES` values are refused too, and so is a file that holds more values than its parser
loads in bounded memory (:func:`check_cost`; in JSON a flat list of numbers counts as one value).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from ednaquery.errors import LoadError
from ednaquery.fsutil import NotRegularFile, open_regular
from ednaquery.simple_yaml import load_simple

#: File name suffix -> format name understood by :func:`load_text`.
FORMATS: dict[str, str] = {
    ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl", ".toml": "toml",
}
#: Largest file ednaquery reads, in bytes (5 MiB): :func:`load_file`'s default and the default of the
#: ``max_file_bytes`` setting; larger files become error records.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
#: Most values (containers and scalars) one file may expand to, aliases counted every time used.
MAX_VALUES = 1_000_000
#: Most values a YAML or TOML file may hold, estimated from its text before it is parsed: their parsers
#: keep about 1 KB per value while loading (309k keys took 280 MB). A config never has this many; the
#: leaves indexed per document stop at 20,000 anyway, so a file this big is an error record, not a hog.
MAX_YAML_VALUES = 60_000
#: The same for JSON, whose parser keeps far less per value (a file at the limit peaks near 50 MB).
#: A flat list of numbers counts as one value: the parser keeps about 8-32 bytes per number, the file
#: size bounds how many (a 5 MiB file holds at most 2.6M), and it is indexed as one summary
#: (:func:`ednaquery.documents.is_number_list`).
MAX_JSON_VALUES = 100_000
_JSON_NUMBER_LIST = re.compile(r"\[[0-9\s,.eE+\-]*\]")  # a flat list of JSON numbers (or empty)


def check_cost(text: str, fmt: str) -> None:
    """Refuse, before parsing, a file that holds more values than its parser can load in bounded memory.

    The estimate is an upper bound for what ends up in the config: lines and commas (YAML, TOML;
    flow collections put several values on a line), commas outside flat lists of numbers (JSON).
    """
    if fmt == "json":
        estimate, limit = text.count(",") + 1, MAX_JSON_VALUES
        if estimate > limit:  # flat lists of numbers: one value each
            estimate -= sum(text.count(",", m.start(), m.end()) for m in _JSON_NUMBER_LIST.finditer(text))
    elif fmt in ("yaml", "toml"):
        estimate, limit = text.count("\n") + text.count(","), MAX_YAML_VALUES
    else:
        return
    if estimate > limit:
        raise LoadError(f"the file holds about {estimate:,} values, over the {limit:,} a config file may hold "
                        "(memory per file is bounded); it is not indexed")

_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_DIRECTIVE = re.compile(r"^#\s*@([A-Za-z_][\w-]*)\s*[:\s]\s*(\S.*?)\s*$")


@dataclass
class LoadResult:
    """What a file holds: its documents (several for a multi-document YAML file) and warnings."""

    documents: list[Any]
    warnings: list[str] = field(default_factory=list)
    format: str = "yaml"
    #: ``# @key value`` directives in the file's leading comment block (Hydra's ``# @package``)
    directives: dict[str, str] = field(default_factory=dict)
    #: size and mtime of the file as it was read (None for :func:`load_text`)
    size: int | None = None
    mtime: float | None = None
    #: False when the file's bytes hold neither ``${`` nor a backslash: then no string in it can
    #: hold ``${`` (an escape could spell it), and interpolation need not be looked for
    may_interpolate: bool = True


def format_for(path: str | os.PathLike[str]) -> str | None:
    """The format a file name implies (``yaml``, ``json``, ``jsonl``, ``toml``), or None."""
    return FORMATS.get(os.path.splitext(os.path.basename(os.fspath(path)))[1].lower())


# ---------------------------------------------------------------- YAML


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG_PREFIX):] if tag.startswith(_YAML_TAG_PREFIX) else tag


_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SafeDataLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe loader that never constructs Python objects and always returns JSON-able data.

    ``self.tag_warnings`` collects one line per unconstructed tag.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.tag_warnings: list[str] = []

    # -- mappings: merge keys, string keys -------------------------------------------
    def construct_mapping(self, node: Any, deep: bool = False) -> dict:  # type: ignore[override]
        if not isinstance(node, MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark)
        self.flatten_mapping(node)
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                if isinstance(key_node, ScalarNode):
                    key = key_node.value
                else:
                    key = json.dumps(_plain(key), sort_keys=True, default=str)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    # -- tags that would build Python objects, and unknown tags ----------------------
    def construct_unknown_tag(self, node: Any) -> Any:
        """Keep the node under an unconstructable tag as plain data, and warn."""
        shown = _show_tag(node.tag)
        self.tag_warnings.append(
            f"line {node.start_mark.line + 1}: tag {shown} was not constructed "
            "(never run); its value is kept as plain data")
        if isinstance(node, MappingNode):
            return self.construct_mapping(node, deep=True)
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        value = node.value
        # ``!!python/name:torch.nn.ReLU ''`` carries its data in the tag: keep the name
        for kind in ("python/name:", "python/module:"):
            if kind in node.tag and not value:
                return node.tag.split(kind, 1)[1]
        tag = self.resolve(ScalarNode, value, (True, False))
        return self.construct_object(ScalarNode(tag, value, node.start_mark, node.end_mark, node.style))

    # -- standard tags whose safe_load result is not JSON-able -----------------------
    def construct_yaml_timestamp(self, node: Any) -> str:  # type: ignore[override]
        return super().construct_yaml_timestamp(node).isoformat()

    def construct_yaml_binary(self, node: Any) -> str:  # type: ignore[override]
        return "".join(str(self.construct_scalar(node)).split())

    def construct_yaml_set(self, node: Any) -> list:  # type: ignore[override]
        return list(self.construct_mapping(node))

    def construct_yaml_omap(self, node: Any) -> dict:  # type: ignore[override]
        pairs = self.construct_yaml_pairs(node)
        return {k if isinstance(k, str) else json.dumps(_plain(k), default=str): v for k, v in pairs}

    def construct_yaml_pairs(self, node: Any) -> list:  # type: ignore[override]
        if not isinstance(node, SequenceNode):
            raise yaml.constructor.ConstructorError(
                "while constructing pairs", node.start_mark,
                f"expected a sequence, but found {node.id}", node.start_mark)
        out: list = []
        for sub in node.value:
            if not isinstance(sub, MappingNode) or len(sub.value) != 1:
                raise yaml.constructor.ConstructorError(
                    "while constructing pairs", node.start_mark,
                    "expected a single mapping item", sub.start_mark)
            key_node, value_node = sub.value[0]
            out.append([self.construct_object(key_node, deep=True),
                        self.construct_object(value_node, deep=True)])
        return out


SafeDataLoader.add_constructor(None, SafeDataLoader.construct_unknown_tag)
for _tag, _fn in (("timestamp", SafeDataLoader.construct_yaml_timestamp),
                  ("binary", SafeDataLoader.construct_yaml_binary),
                  ("set", SafeDataLoader.construct_yaml_set),
                  ("omap", SafeDataLoader.construct_yaml_omap),
                  ("pairs", SafeDataLoader.construct_yaml_pairs)):
    SafeDataLoader.add_constructor(_YAML_TAG_PREFIX + _tag, _fn)


def _mark_text(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _yaml_error(exc: yaml.YAMLError) -> LoadError:
    """One line from a PyYAML error: problem and where, then the context and where."""
    if isinstance(exc, yaml.MarkedYAMLError):
        pm, cm = exc.problem_mark, exc.context_mark
        problem = (exc.problem or "syntax error").strip()
        context = (exc.context or "").strip()
        if cm is not None and context.startswith("while scanning a simple key"):
            # the key that lacks its ':' is the culprit, not the line where that was noticed
            head = f"{_mark_text(cm)}: {problem} after this key"
            if pm is not None:
                head += f" (noticed at {_mark_text(pm)})"
            mark = cm
        else:
            head = f"{_mark_text(pm)}: {problem}" if pm is not None else problem
            if context:
                same = cm is None or (pm is not None and (cm.line, cm.column) == (pm.line, pm.column))
                head += f" ({context}" + ("" if same else f" at {_mark_text(cm)}") + ")"
            mark = pm or cm
        return LoadError(_one_line("YAML: " + head), line=mark.line + 1 if mark else None,
                         column=mark.column + 1 if mark else None)
    return LoadError(_one_line(f"YAML: {exc}"))


_T_STR, _T_MAP, _T_SEQ = (_YAML_TAG_PREFIX + t for t in ("str", "map", "seq"))
_SCALAR_BUILDERS: dict[str, Any] = {
    _YAML_TAG_PREFIX + "null": lambda loader, node: None,
    _YAML_TAG_PREFIX + "bool": SafeDataLoader.construct_yaml_bool,
    _YAML_TAG_PREFIX + "int": SafeDataLoader.construct_yaml_int,
    _YAML_TAG_PREFIX + "float": SafeDataLoader.construct_yaml_float,
    _YAML_TAG_PREFIX + "timestamp": SafeDataLoader.construct_yaml_timestamp,
    _YAML_TAG_PREFIX + "binary": SafeDataLoader.construct_yaml_binary,
}


class _Builder:
    """Node graph -> plain data, faster than PyYAML's generic constructor for the common tags.

    Aliases are expanded into independent copies (every value counted, so alias bombs
    stop at :data:`MAX_VALUES`); a node that contains itself is refused. Anything unusual
    goes through :class:`SafeDataLoader`'s own (safe) constructors.
    """

    def __init__(self, loader: SafeDataLoader) -> None:
        self.loader = loader
        self.count = 0
        self.active: set[int] = set()

    def build(self, node: Any) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise LoadError(f"the file expands to more than {MAX_VALUES:,} values "
                            "(an alias bomb?); it is not indexed")
        tag = node.tag
        if isinstance(node, ScalarNode):
            if tag == _T_STR:
                return node.value
            fn = _SCALAR_BUILDERS.get(tag)
            if fn is not None:
                try:
                    return fn(self.loader, node)
                except (ValueError, OverflowError) as exc:
                    line, col = node.start_mark.line + 1, node.start_mark.column + 1
                    raise LoadError(_one_line(f"YAML: line {line}, column {col}: {node.value!r} is not a valid "
                                              f"{_show_tag(tag)} ({exc})"), line=line, column=col) from None
            return _normalise(self.loader.construct_object(node, deep=True))
        key = id(node)
        if key in self.active:
            raise LoadError(f"line {node.start_mark.line + 1}: a recursive alias (a node that contains "
                            "itself) cannot be indexed", line=node.start_mark.line + 1)
        self.active.add(key)
        try:
            if isinstance(node, SequenceNode) and tag == _T_SEQ:
                return [self.build(child) for child in node.value]
            if isinstance(node, MappingNode) and tag == _T_MAP:
                self.loader.flatten_mapping(node)
                out: dict[str, Any] = {}
                for key_node, value_node in node.value:
                    if isinstance(key_node, ScalarNode) and key_node.tag == _T_STR:
                        k = key_node.value
                    else:
                        k = self.build(key_node)
                        if not isinstance(k, str):
                            k = key_node.value if isinstance(key_node, ScalarNode) else \
                                json.dumps(k, sort_keys=True, default=str)
                    out[k] = self.build(value_node)
                return out
            if tag not in (_YAML_TAG_PREFIX + "set", _YAML_TAG_PREFIX + "omap", _YAML_TAG_PREFIX + "pairs"):
                # an unknown or python tag on a collection: warn, then keep it as plain data
                self.loader.tag_warnings.append(
                    f"line {node.start_mark.line + 1}: tag {_show_tag(tag)} was not constructed "
                    "(never run); its value is kept as plain data")
                node.tag = _T_SEQ if isinstance(node, SequenceNode) else _T_MAP
                self.active.discard(key)
                return self.build(node)
            return _normalise(self.loader.construct_object(node, deep=True))
        finally:
            self.active.discard(key)


def _load_yaml(text: str, shared: bool = False) -> tuple[list[Any], list[str]]:
    simple = load_simple(text, SafeDataLoader, shared=shared)  # most configs: ~10x faster, same result
    if simple is not None:
        return simple, []
    return _load_yaml_full(text)


def _load_yaml_full(text: str) -> tuple[list[Any], list[str]]:
    """PyYAML's parser and our builder: every YAML file, with warnings and error positions."""
    loader = SafeDataLoader(text)
    docs: list[Any] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                docs.append(_Builder(loader).build(node))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    finally:
        loader.dispose()
    # ``---`` with nothing under it is an empty document, not a config
    return [d for d in docs if d is not None], loader.tag_warnings


def _directives(text: str) -> dict[str, str]:
    """``# @key value`` lines of the leading comment block (before any data)."""
    out: dict[str, str] = {}
    if text.lstrip()[:1] != "#":  # most files: no leading comments
        return out
    for line in text.splitlines()[:200]:
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            break
        m = _DIRECTIVE.match(s)
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out


# ---------------------------------------------------------------- JSON, JSON Lines, TOML


def _load_json(text: str) -> list[Any]:
    if not text.strip():
        return []
    try:
        return [json.loads(text)]
    except json.JSONDecodeError as exc:
        raise LoadError(f"JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}",
                        line=exc.lineno, column=exc.colno) from None


def _load_jsonl(text: str) -> tuple[list[Any], list[str]]:
    docs: list[Any] = []
    warnings: list[str] = []
    lines = text.split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) and not text.endswith("\n"):
                warnings.append(f"line {i}: incomplete last line ignored (file still being written?)")
                break
            raise LoadError(f"JSON Lines: line {i}, column {exc.colno}: {exc.msg}",
                            line=i, column=exc.colno) from None
    return docs, warnings


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def _load_toml(text: str) -> list[Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            reason = _TOML_POS.sub("", msg).strip()
            raise LoadError(f"TOML: line {line}, column {col}: {reason}", line=line, column=col) from None
        raise LoadError(_one_line(f"TOML: {msg}")) from None
    return [data] if data else []


# ---------------------------------------------------------------- normalising


def _plain(value: Any) -> Any:
    """Best-effort JSON-able form of a value (for keys made of containers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    return value


def _normalise(doc: Any) -> Any:
    """Copy a loaded document into plain, acyclic, JSON-able data of bounded size.

    Aliases share objects in the loaded data; the copy unshares them (so later merging
    never aliases), counts every value (alias bombs are refused) and rejects recursion.
    """
    count = 0
    active: set[int] = set()

    def walk(v: Any) -> Any:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            raise LoadError(f"the file expands to more than {MAX_VALUES:,} values "
                            "(an alias bomb?); it is not indexed")
        if isinstance(v, dict):
            if id(v) in active:
                raise LoadError("a recursive alias (a node that contains itself) cannot be indexed")
            active.add(id(v))
            out = {(k if isinstance(k, str) else str(k)): walk(x) for k, x in v.items()}
            active.discard(id(v))
            return out
        if isinstance(v, (list, tuple)):
            if id(v) in active:
                raise LoadError("a recursive alias (a node that contains itself) cannot be indexed")
            active.add(id(v))
            out_l = [walk(x) for x in v]
            active.discard(id(v))
            return out_l
        if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
            return v.isoformat()
        if isinstance(v, (set, frozenset)):
            return [walk(x) for x in v]
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        return v

    return walk(doc)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------- public API


def decode(data: bytes) -> str:
    """UTF-8 text of a config file's bytes; binary data raises :class:`LoadError`."""
    if b"\x00" in data:
        raise LoadError("binary file (it contains NUL bytes), not a text config; exclude it from indexing")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        "a binary file? exclude it or save it as UTF-8") from None


def load_text(data: bytes | str, format: str, *, shared: bool = False) -> LoadResult:
    """Parse a file's content in the given format (``yaml``, ``json``, ``jsonl``, ``toml``).

    ``shared=True``: parts of the result may be objects shared with other results (see
    :func:`ednaquery.simple_yaml.load_simple`); for callers that never change what they load.

    >>> load_text("lr: 1e-3\\nbs: 32\\n", "yaml").documents
    [{'lr': '1e-3', 'bs': 32}]
    """
    text = decode(data) if isinstance(data, (bytes, bytearray)) else data
    fmt = format.lower().lstrip(".")
    fmt = FORMATS.get("." + fmt, fmt)
    warnings: list[str] = []
    directives: dict[str, str] = {}
    try:
        check_cost(text, fmt)
        if fmt == "yaml":
            docs, warnings = _load_yaml(text, shared)
            directives = _directives(text)
        elif fmt == "json":
            docs = _load_json(text)
        elif fmt == "jsonl":
            docs, warnings = _load_jsonl(text)
        elif fmt == "toml":
            docs = _load_toml(text)
        else:
            raise LoadError(f"unsupported format {format!r}; use one of yaml, json, jsonl, toml")
        if fmt == "toml":  # dates and times -> ISO strings
            docs = [_normalise(d) for d in docs]
    except LoadError:
        raise
    except RecursionError:
        raise LoadError(f"{fmt.upper()}: nested too deeply to load") from None
    except (ValueError, TypeError, OverflowError, yaml.YAMLError) as exc:
        # e.g. ``!!int abc`` or a timestamp out of range: the parser found no mark
        raise LoadError(_one_line(f"{fmt.upper()}: {type(exc).__name__}: {exc}")) from None
    return LoadResult(documents=docs, warnings=warnings, format=fmt, directives=directives)


def read_upto(fh: Any, expected: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of an unbuffered file, asking for ``expected`` first: a buffer the
    size of the limit (megabytes) for every small config costs more than reading it."""
    chunks: list[bytes] = []
    total = 0
    want = min(expected, limit)
    while total < limit:
        chunk = fh.read(want - total if total < want else min(1 << 20, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def load_file(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
              format: str | None = None, shared: bool = False) -> LoadResult:
    """Read and parse a config file; the format comes from its extension unless given
    (``shared``: see :func:`load_text`).

    Raises :class:`LoadError` (naming the path) for files that cannot be read or parsed.
    """
    p = os.fspath(path)
    fmt = format or format_for(p)
    if fmt is None:
        raise LoadError(f"unsupported file type {Path(p).suffix or '(no extension)'!r}; "
                        f"known: {', '.join(sorted(FORMATS))}", path=p)
    try:
        # a named pipe called x.yaml must not hang the reader, nor a device be opened
        with open_regular(p, "rb", buffering=0) as fh:
            st = os.fstat(fh.fileno())
            if st.st_size > max_bytes:
                raise LoadError(f"file is {st.st_size:,} bytes, over the {max_bytes:,}-byte limit; "
                                "raise the size limit to index it", path=p)
            data = read_upto(fh, st.st_size + 1, max_bytes + 1)
    except LoadError:
        raise
    except NotRegularFile as exc:
        raise LoadError(f"{exc.strerror}; it is not indexed", path=p) from None
    except FileNotFoundError:
        raise LoadError("file vanished before it could be read", path=p) from None
    except PermissionError:
        raise LoadError("permission denied: cannot read the file; fix its permissions "
                        "or exclude it", path=p) from None
    except IsADirectoryError:
        raise LoadError("is a folder, not a file", path=p) from None
    except OSError as exc:
        raise LoadError(_one_line(f"cannot read the file: {exc.strerror or exc}"), path=p) from None
    if len(data) > max_bytes:
        raise LoadError(f"file grew past the {max_bytes:,}-byte limit while being read; "
                        "raise the size limit to index it", path=p)
    try:
        result = load_text(data, fmt, shared=shared)
    except LoadError as exc:
        raise LoadError(exc.detail, path=p, line=exc.line, column=exc.column) from None
    result.size = st.st_size
    result.mtime = st.st_mtime
    result.may_interpolate = b"${" in data or b"\\" in data
    return result
