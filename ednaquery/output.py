"""Turning found documents into what users read and scripts parse.

One *record* per document (``to_record``: full id, kind, absolute paths, the original
config, tags and note, ISO 8601 times, the matched value of every key the query named, and
for runs status, config id and summary metrics) feeds every format: ``json`` (one array),
``jsonl``, ``yaml``, ``csv``, ``ids`` (one full id a line) and ``table`` (rich; id prefix,
kind, path relative to the working directory, one column per named key, fitted to the
terminal width by :mod:`ednaquery.tablefit`; never wrapped, and unlimited in width when
the output is not a terminal).

Machine formats carry one value per column under a unique name (:func:`value_name`: the
dotted path the key matched, ``optimizer.lr``; ``val_acc.last`` and ``val_acc.best`` for a
run's summary metrics), numbers at full precision; ``values`` has the same names, in the
same order, in every record of one answer (null where a document lacks one); see
docs/output.md.

The "matched value" of a key is found in Python from the document's own leaves
(:func:`ednaquery.documents.document_pairs` and :mod:`ednaquery.query.match`, which resolves
keys per document like the stores), so it shows original spelling whatever backend
answered; where the query compares the key (``model=vit``), only leaves that satisfy the
comparison are shown (a display aid: the store already decided which documents match).

Rich is imported lazily so that ``import ednaquery.cli`` stays fast.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ednaquery.documents import doc_note, doc_tags, document_pairs, original_config
from ednaquery.keys import (
    RESERVED_FIELDS,
    RESERVED_PREFIX,
    KeySpec,
    group_leaf,
    is_reserved_path,
    key_matches,
    segment_tokens,
)
from ednaquery.query.ast import And, Compare, Exists, Node, Not, Or, Range
from ednaquery.query.match import resolved_pairs, value_satisfies
from ednaquery.terminal import printable

FORMATS = ("table", "json", "jsonl", "yaml", "csv", "ids")
MIN_PREFIX = 8
MAX_LIST_SHOWN = 4
MAX_CELL = 60
#: the columns every CSV row starts with (a named key with one of these names is not repeated)
CSV_FIXED = ("id", "kind", "path", "status")
#: leaf paths that hold seconds since the epoch, written as ISO 8601 in machine formats
TIME_PATHS = frozenset({(RESERVED_PREFIX + "indexed_at",), (RESERVED_PREFIX + "mtime",),
                        ("timing", "started_at"), ("timing", "ended_at")})
#: a console at least this wide is "unlimited": its output is not fitted to a width (pipes)
UNLIMITED_WIDTH = 1_000_000
_HEX_ID = re.compile(r"^(err-)?[0-9a-f]{40,64}$")


# ---------------------------------------------------------------- key columns


def key_label(key: KeySpec) -> str:
    """A key as the user typed it (``optimizer.lr``, ``.model.name``, ``*lr``)."""
    lits = key.literal or (False,) * len(key.segments)
    segs = [f"`{s}`" if lit else s for s, lit in zip(key.segments, lits)]
    return ("*" if key.every else "") + ("." if key.anchored else "") + ".".join(segs)


@dataclass
class Column:
    """One key the query named, with the positive terms that compare it (to pick matched leaves)."""

    key: KeySpec
    label: str
    terms: list[Compare | Range] = field(default_factory=list)
    group: bool = False  # a --by column: only the leaves that name a group (the value, or the section's name)


def query_columns(node: Node | None, extra: Sequence[KeySpec] = ()) -> list[Column]:
    """One column per distinct key label in the query (order of appearance), then ``extra`` keys."""
    cols: dict[str, Column] = {}

    def walk(n: Node, negated: bool) -> None:
        if isinstance(n, (Compare, Range, Exists)):
            label = key_label(n.key)
            col = cols.setdefault(label, Column(n.key, label))
            if not negated and isinstance(n, (Compare, Range)):
                col.terms.append(n)
        elif isinstance(n, (And, Or)):
            for i in n.items:
                walk(i, negated)
        elif isinstance(n, Not):
            walk(n.item, not negated)

    if node is not None:
        walk(node, False)
    for key in extra:
        cols.setdefault(key_label(key), Column(key, key_label(key)))
    return list(cols.values())


def chosen_columns(text: str, key_of: Callable[[str], KeySpec], named: Sequence[Column] = ()) -> list[Column]:
    """``--columns KEY,...`` as output columns; ``key_of`` parses one key (with the user's aliases).

    A key the query also names keeps that column (its comparisons pick the matched values).
    """
    from ednaquery.errors import EdnaError, UsageError

    by_label = {c.label: c for c in named}
    out: dict[str, Column] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            key = key_of(part.strip())
        except EdnaError as exc:
            msg = str(exc)
            raise UsageError(msg if msg.startswith("--columns") else f"--columns: {msg}") from None
        label = key_label(key)
        out.setdefault(label, by_label.get(label) or Column(key, label))
    if not out:
        raise UsageError("--columns takes keys separated by commas, like optimizer.lr,val_acc")
    return list(out.values())


# ---------------------------------------------------------------- matched values


def matched_pairs(doc: dict, column: Column,
                  pairs: list[tuple[tuple[str, ...], Any]] | None = None) -> list[tuple[tuple[str, ...], Any]]:
    """The ``(path, value)`` leaves of ``doc`` the column's key matches.

    Where the query compares the key, only the paths holding a value that satisfies a comparison
    are kept (all of them when none seems to: the store had the last word on matching).
    """
    pairs = document_pairs(doc) if pairs is None else pairs
    hits = resolved_pairs(column.key, pairs)
    if column.group:
        hits = [(p, v) for p, v in hits if group_leaf(column.key, p)]
    if column.terms and hits:
        good = {p for p, v in hits if any(value_satisfies(t, v) for t in column.terms)}
        narrowed = [(p, v) for p, v in hits if p in good]  # a list is shown whole when one item matched
        if narrowed:
            return narrowed
    return hits


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(s.removeprefix(RESERVED_PREFIX) for s in path)


def structure(pairs: list[tuple[tuple[str, ...], Any]]) -> Any:
    """Matched leaves as one value: a scalar (one leaf), a list (one path holding a list), or
    ``{dotted path: value}`` when several paths matched; None when nothing matched."""
    if not pairs:
        return None
    by_path: dict[tuple[str, ...], list[Any]] = {}
    for p, v in pairs:
        by_path.setdefault(p, []).append(v)
    if len(by_path) == 1:
        vals = next(iter(by_path.values()))
        return vals[0] if len(vals) == 1 else vals
    return {_dotted(p): (vs[0] if len(vs) == 1 else vs) for p, vs in by_path.items()}


def value_name(path: tuple[str, ...]) -> str:
    """The unique column name of a leaf path in machine formats: reserved fields by name
    (``status``, ``tags``), a run's summary metric as ``val_acc.last``, else the dotted path
    (``config.status`` for a config key that has a reserved field's name)."""
    if is_reserved_path(path):
        return path[0].removeprefix(RESERVED_PREFIX)
    if len(path) == 3 and path[0] == "metrics":
        return f"{path[1]}.{path[2]}"
    dotted = _dotted(path)
    return "config." + dotted if dotted in RESERVED_FIELDS or dotted in CSV_FIXED else dotted


def iso_time(value: Any) -> Any:
    """Seconds since the epoch as ISO 8601 with the local UTC offset; other values unchanged."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.datetime.fromtimestamp(value).astimezone().isoformat()
    return value


def flat_values(doc: dict, columns: Sequence[Column],
                pairs: list[tuple[tuple[str, ...], Any]] | None = None) -> dict[str, Any]:
    """``{unique name: value}`` of every leaf path the columns matched (one value per name).

    A path holding several values (a list, several tags) gives a list; ``tags`` is always a list;
    times are ISO 8601. When two paths would share a name, the later one keeps its full dotted path.
    """
    pairs = document_pairs(doc) if pairs is None else pairs
    out: dict[str, Any] = {}
    owner: dict[str, tuple[str, ...]] = {}
    for c in columns:
        by_path: dict[tuple[str, ...], list[Any]] = {}
        for p, v in matched_pairs(doc, c, pairs):
            by_path.setdefault(p, []).append(v)
        for p, vs in by_path.items():
            name = value_name(p)
            if owner.get(name, p) != p:
                name = ".".join(s.replace(RESERVED_PREFIX, "") for s in p)
                if owner.get(name, p) != p:
                    continue
            if name in out:
                continue
            owner[name] = p
            if p in TIME_PATHS:
                vs = [iso_time(v) for v in vs]
            out[name] = vs if (len(vs) > 1 or p == (RESERVED_PREFIX + "tags",)) else vs[0]
    return out


def value_names(flats: Iterable[dict[str, Any]]) -> list[str]:
    """The union of the names in ``flats`` (one answer's columns): a name new to the list goes right
    after the name that precedes it in its own document, so ``val_acc.last`` stays before ``.best``."""
    names: list[str] = []
    seen: set[str] = set()
    for f in flats:
        prev = -1
        for n in f:
            if n in seen:
                prev = names.index(n)
                continue
            prev += 1
            names.insert(prev, n)
            seen.add(n)
    return names


# ---------------------------------------------------------------- text forms


def scalar_text(value: Any) -> str:
    """A leaf value as shown in tables: ``true``, ``null``, numbers as Python writes them."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def _list_text(values: Sequence[Any]) -> str:
    shown = [value_text(v) for v in values[:MAX_LIST_SHOWN]]
    more = len(values) - MAX_LIST_SHOWN
    return "[" + ", ".join(shown) + (f", … +{more}" if more > 0 else "") + "]"


def _distinguishing(paths: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each path that tells it apart from the others."""
    parts = {p: p.split(".") for p in paths}
    out: dict[str, str] = {}
    for p, segs in parts.items():
        for n in range(1, len(segs) + 1):
            suffix = ".".join(segs[-n:])
            if sum(1 for q in parts.values() if ".".join(q[-n:]) == suffix) == 1:
                out[p] = suffix
                break
        else:
            out[p] = p
    return out


def value_text(value: Any) -> str:
    """A matched value as one short table cell (lists shortened, several paths labelled)."""
    if isinstance(value, list):
        return _list_text(value)
    if isinstance(value, dict):
        names = _distinguishing(list(value))
        text = " ".join(f"{names[k]}={value_text(v)}" for k, v in value.items())
    else:
        text = scalar_text(value)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def matched_segment(key: KeySpec, path: tuple[str, ...]) -> str | None:
    """The segment of ``path`` that ``key``'s last segment matched (``min_lr`` for ``lr``)."""
    for n in range(1, len(path) + 1):
        if key_matches(key, path[:n]):
            return path[n - 1]
    return None


def cell_text(column: Column, hits: list[tuple[tuple[str, ...], Any]]) -> str:
    """A table cell for one key: the matched value, labelled with the key it was found under
    when that is not simply the key typed (``min_lr=1e-6`` for ``lr``)."""
    if not hits:
        return ""
    value = structure(hits)
    if isinstance(value, dict):
        return value_text(value)
    path = hits[0][0]
    if len(path) > 2 and path[0] == "metrics" and path[-1] in ("last", "best", "mean", "std"):
        return f"{path[-1]}={value_text(value)}"  # a run's (or group's) summary: say which one matched
    seg = matched_segment(column.key, path)
    typed = column.key.segments[-1]
    if column.key.every and seg is not None and not seg.startswith(RESERVED_PREFIX):
        upto = path[:path.index(seg) + 1]  # *lr: always say which key matched (optimizer.lr=0.001)
        return f"{'.'.join(upto[-2:])}={value_text(value)}"
    if seg is not None and not seg.startswith(RESERVED_PREFIX) and segment_tokens(seg) != segment_tokens(typed):
        return f"{seg}={value_text(value)}"
    return value_text(value)


def display_path(path: str | None, cwd: str | None = None) -> str:
    """A path relative to the working directory when it lies under it, else absolute."""
    if not path:
        return ""
    here = os.path.abspath(cwd or os.getcwd())
    if path == here:
        return "."
    if path.startswith(here.rstrip(os.sep) + os.sep):
        return os.path.relpath(path, here)
    return path


def id_prefixes(ids: Iterable[str], min_len: int = MIN_PREFIX) -> dict[str, str]:
    """Short ids like git: content hashes cut to the shortest prefix (>= ``min_len``) that is unique
    among ``ids``; other ids (time-sortable run ids) are shown whole."""
    ids = list(dict.fromkeys(ids))
    hashes = sorted(i for i in ids if _HEX_ID.match(i))
    out = {i: i for i in ids}
    for pos, i in enumerate(hashes):
        start = len("err-") + min_len if i.startswith("err-") else min_len
        need = start
        for j in (pos - 1, pos + 1):
            if 0 <= j < len(hashes):
                other = hashes[j]
                common = 0
                for a, b in zip(i, other):
                    if a != b:
                        break
                    common += 1
                need = max(need, common + 1)
        out[i] = i[:min(need, len(i))]
    return out


# ---------------------------------------------------------------- records


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_record(doc: dict, columns: Sequence[Column] = (), *, as_written: bool = False) -> dict[str, Any]:
    """The machine-readable form of one document (what ``--format json`` prints for it).

    ``values`` maps the unique name of every leaf the columns matched to its value
    (:func:`flat_values`; :func:`records` gives every record of an answer the same names).
    Times are ISO 8601.
    """
    rec: dict[str, Any] = {
        "id": doc["_id"],
        "kind": doc.get("kind"),
        "paths": list(doc.get("paths") or []),
        "format": doc.get("format"),
        "current": doc.get("current", True),
        "deleted": doc.get("deleted", False),
        "mtime": iso_time(doc.get("mtime")),
        "indexed_at": iso_time(doc.get("indexed_at")),
        "tags": doc_tags(doc),
        "note": doc_note(doc),
    }
    if doc.get("kind") in ("run", "group"):
        for name in ("status", "config_id", "metrics"):
            rec[name] = doc.get(name)
        for name in ("started_at", "ended_at"):
            rec[name] = iso_time(doc.get(name))
        if doc.get("info"):
            rec["info"] = original_config({"config": doc["info"]})
        if doc.get("kind") == "group":
            rec["members"] = original_config({"config": doc.get("members") or []})
    if doc.get("kind") == "error":
        rec["error"] = doc.get("error")
    rec["config"] = original_config(doc, as_written=as_written)
    rec["values"] = flat_values(doc, columns) if columns else {}
    if doc.get("warnings"):
        rec["warnings"] = list(doc["warnings"])
    if doc.get("depends_on"):
        rec["depends_on"] = list(doc["depends_on"])
    if doc.get("past_paths"):
        rec["past_paths"] = list(doc["past_paths"])
    return _json_safe(rec)


def dumps_json(value: Any, *, indent: int | None = 2) -> str:
    """JSON text of plain data (non-finite floats as strings, so every JSON parser reads it)."""
    return json.dumps(_json_safe(value), indent=indent, ensure_ascii=False, default=str)


def dumps_yaml(value: Any) -> str:
    """YAML text of plain data, keys in their order, short lists inline."""
    import yaml

    return yaml.safe_dump(_json_safe(value), sort_keys=False, allow_unicode=True, default_flow_style=None,
                          width=100)


# ---------------------------------------------------------------- renderers


def _note_text(note: str) -> str:
    """A note as one table cell: its first line (a cell never wraps)."""
    first = note.strip().splitlines()[0] if note.strip() else ""
    return first + (" …" if "\n" in note.strip() else "")


def _table_rows(docs: Sequence[dict], columns: Sequence[Column], cwd: str | None) -> tuple[list[str], list[list[str]]]:
    shown = [c for c in columns if c.key.reserved_field() not in ("id", "kind", "path")]
    named = {c.key.reserved_field() for c in shown}
    with_tags = "tags" not in named and any(doc_tags(d) for d in docs)
    with_note = "note" not in named and any(doc_note(d) for d in docs)
    prefixes = id_prefixes(d["_id"] for d in docs)
    header = (["id", "kind", "path"] + [c.label for c in shown] + (["tags"] if with_tags else [])
              + (["note"] if with_note else []))
    rows = []
    for doc in docs:
        paths = doc.get("paths") or doc.get("past_paths") or []
        path = display_path(paths[0], cwd) if paths else ""
        if len(paths) > 1:
            path += f" (+{len(paths) - 1})"
        if not doc.get("current", True):
            path += " [deleted]" if doc.get("deleted") else " [old]"
        kind = doc.get("kind", "")
        if kind in ("run", "group") and doc.get("status"):
            kind = f"{kind}:{doc['status']}"
        pairs = document_pairs(doc) if shown else []
        cells = []
        for c in shown:
            cells.append(cell_text(c, matched_pairs(doc, c, pairs)))
        if with_tags:
            cells.append(" ".join(doc_tags(doc)))
        if with_note:
            cells.append(_note_text(doc_note(doc) or ""))
        rows.append([prefixes[doc["_id"]], kind, path] + cells)
    return header, rows


def fit_width(console: Any) -> int | None:
    """The width a table must fit on ``console``: None when unlimited (output to a pipe)."""
    width = getattr(console, "width", None)
    return None if width is None or width >= UNLIMITED_WIDTH else int(width)


def render_table(docs: Sequence[dict], columns: Sequence[Column], console: Any, *,
                 cwd: str | None = None, title: str | None = None) -> None:
    """A rich table: id prefix, kind, path, one column per named key (then tags and note when any
    document has them), one line per document, fitted to the console's width (:mod:`ednaquery.tablefit`)."""
    from rich.table import Table
    from rich.text import Text

    from ednaquery.tablefit import FitColumn, fit_table

    header, rows = _table_rows(docs, columns, cwd)
    header = [printable(h) for h in header]  # escaped before fitting: the widths count what is shown
    rows = [[printable(c) for c in r] for r in rows]
    id_floor = max([MIN_PREFIX] + [len(r[0]) for r in rows])
    specs = [FitColumn(floor=id_floor, soft=None), FitColumn(floor=4, soft=None),
             FitColumn(floor=10, soft=24, middle=True, first=True)]
    specs += [FitColumn(floor=6, soft=12)] * (len(header) - 3)
    # when even the narrowest columns do not fit: no path, then no kind (never an asked-about value)
    cut_header, cut_rows, widths, kept = fit_table(header, rows, specs, fit_width(console), droppable=(2, 1))
    styles = [{0: "yellow", 1: "cyan", 2: "green"}.get(i) for i in kept]
    table = Table(title=title, header_style="bold", box=None, pad_edge=False, show_edge=False)
    for i, name in enumerate(cut_header):
        style = styles[i]
        table.add_column(Text(name), style=style, no_wrap=True, overflow="ellipsis", min_width=widths[i],
                         max_width=widths[i])
    for row in cut_rows:
        table.add_row(*(Text(c) for c in row))
    console.print(table, crop=False)


def csv_cell(value: Any) -> str:
    """One CSV cell: numbers at full precision (``repr``), ``true``/``false``, empty for null,
    lists and objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                         ("inf" if value > 0 else "-inf"))
    if isinstance(value, (list, dict)):
        return dumps_json(value, indent=None)
    return str(value)


def write_csv(docs: Sequence[dict], columns: Sequence[Column], out: IO[str]) -> None:
    """CSV: id, kind, path, status, then one column per matched leaf path under its unique name
    (:func:`value_name`; a named key that is one of the first four is not repeated)."""
    writer = csv.writer(out, lineterminator="\n")
    flats = [flat_values(doc, columns) if columns else {} for doc in docs]
    names = [n for n in value_names(flats) if n not in CSV_FIXED]
    writer.writerow(list(CSV_FIXED) + names)
    for doc, flat in zip(docs, flats):
        paths = doc.get("paths") or doc.get("past_paths") or [""]
        writer.writerow([doc["_id"], doc.get("kind", ""), paths[0], doc.get("status") or ""]
                        + [csv_cell(flat.get(n)) for n in names])


def records(docs: Sequence[dict], columns: Sequence[Column], *, as_written: bool = False) -> list[dict[str, Any]]:
    """The records of one answer, every ``values`` with the same names in the same order."""
    flats = [flat_values(doc, columns) if columns else {} for doc in docs]
    names = value_names(flats)
    out = []
    for doc, flat in zip(docs, flats):
        rec = to_record(doc, as_written=as_written)  # values filled here: each document's leaves read once
        rec["values"] = _json_safe({n: flat.get(n) for n in names})
        out.append(rec)
    return out


def render(docs: Sequence[dict], columns: Sequence[Column], fmt: str, *, out: IO[str],
           console: Any = None, as_written: bool = False) -> None:
    """Print ``docs`` in ``fmt`` (one of :data:`FORMATS`) to ``out`` (``table`` uses ``console``)."""
    if fmt == "ids":
        out.write("".join(d["_id"] + "\n" for d in docs))
    elif fmt == "json":
        out.write(dumps_json(records(docs, columns, as_written=as_written)) + "\n")
    elif fmt == "jsonl":
        out.write("".join(dumps_json(r, indent=None) + "\n" for r in records(docs, columns, as_written=as_written)))
    elif fmt == "yaml":
        out.write(dumps_yaml(records(docs, columns, as_written=as_written)))
    elif fmt == "csv":
        buf = io.StringIO()
        write_csv(docs, columns, buf)
        out.write(buf.getvalue())
    elif fmt == "table":
        if console is None:
            console = make_console(out)
        render_table(docs, columns, console)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def make_console(file: IO[str] | None = None, *, stderr: bool = False) -> Any:
    """A rich console: colours on terminals only; the terminal's width (or ``COLUMNS``) on a terminal,
    unlimited width when not a terminal, so output to a pipe is never wrapped."""
    from rich.console import Console

    console = Console(file=file, stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(file=file, stderr=stderr, highlight=False, width=UNLIMITED_WIDTH)
    return console
