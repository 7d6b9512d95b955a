"""A fast reader for the plain subset of YAML that most config files are written in.

PyYAML builds a node graph (with marks) for every scalar before our builder turns it into
data; for a typical 60-line sweep config that costs about 1 ms, most of the indexer's time.
This module reads the common subset directly, line by line:

- block mappings and block sequences (``- item``, ``- key: value``, a sequence at its
  key's indentation), comments, a leading ``---``;
- plain scalars, single- and double-quoted scalars (double-quoted without escapes) on one
  line, and one-line flow collections (``[0.9, 0.999]``, ``{a: 1}``, nested).

Plain scalars are resolved with PyYAML's own YAML 1.1 implicit resolvers (the regexes of
:class:`yaml.resolver.Resolver`, taken from the loader class at import time) and built with
its own safe constructors, so ``1e-3`` stays a string and ``1.0e-3``, ``yes`` and ``~``
become a float, True and None exactly as with the full loader.

It is deliberately conservative: anything else (anchors, aliases, tags, block scalars,
multi-line scalars or flow collections, several documents, directives, complex keys, merge
keys, timestamps, tabs, odd indentation, syntax errors...) makes :func:`load_simple` return
None and the caller uses the full loader, which also gives the error messages with line and
column. ``tests/core/test_simple_yaml.py`` checks that whenever this returns a result it
equals the full loader's.
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import ScalarNode

#: texts longer than this always go to the full loader (bounds values and recursion)
MAX_CHARS = 1_000_000

_P = "tag:yaml.org,2002:"
_T_INT, _T_FLOAT, _T_BOOL, _T_NULL = _P + "int", _P + "float", _P + "bool", _P + "null"

# characters that make the whole text go to the full loader: tabs, other line breaks, BOMs,
# and anything libyaml refuses as non-printable
_UNUSUAL = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
# a plain scalar may not start with these (``-`` is checked on its own)
_NOT_PLAIN_START = frozenset("?:,[]{}#&*!|>'\"%@`")
_SINGLE = re.compile(r"'((?:[^']|'')*)'(?: +#.*)?$")
_DOUBLE = re.compile(r'"([^"\\]*)"(?: +#.*)?$')
_QKEY_SINGLE = re.compile(r"'((?:[^']|'')*)' *:(?: |$)")
_QKEY_DOUBLE = re.compile(r'"([^"\\]*)" *:(?: |$)')
_FLOW_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_FLOW_DOUBLE = re.compile(r'"([^"\\]*)"')
_FLOW_PLAIN = re.compile(r"[^,\[\]{}'\"#:]*")
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z")


class _Fallback(Exception):
    """The text is outside the subset: use the full loader."""


class _Scalars:
    """Plain scalar text -> value, exactly as the loader's resolver and safe constructors do."""

    def __init__(self, loader: type) -> None:
        table = loader.yaml_implicit_resolvers
        self.resolvers = {k: list(v) for k, v in table.items()}
        self.usable = None not in table  # resolvers for any first character: never fast
        self.constructor = yaml.constructor.SafeConstructor()
        self.cache: dict[str, Any] = {}
        self.key_cache: dict[str, str] = {}

    def tag(self, text: str) -> str | None:
        for tag, rx in self.resolvers.get(text[:1], ()):
            if rx.match(text):
                return tag
        return None

    def value(self, text: str) -> Any:
        try:
            return self.cache[text]
        except KeyError:
            pass
        tag = self.tag(text)
        if tag is None:
            v: Any = text
        elif tag in (_T_INT, _T_FLOAT, _T_BOOL):
            c = self.constructor
            try:
                if tag == _T_INT and _DECIMAL.match(text):
                    v = int(text)
                else:
                    fn = {_T_INT: c.construct_yaml_int, _T_FLOAT: c.construct_yaml_float,
                          _T_BOOL: c.construct_yaml_bool}[tag]
                    v = fn(ScalarNode(tag, text))
            except (ValueError, OverflowError, KeyError):  # the full loader says what is wrong, and where
                raise _Fallback from None
        elif tag == _T_NULL:
            v = None
        else:  # timestamps, merge keys, ``=``, ...
            raise _Fallback
        if len(self.cache) > 20000:
            self.cache.clear()
        self.cache[text] = v
        return v

    def key(self, text: str) -> str:
        """A plain mapping key: the loader keeps the key as written unless it is a string anyway."""
        k = self.key_cache.get(text)
        if k is None:
            if len(text) > 1000:
                raise _Fallback  # libyaml limits simple keys to 1024 characters
            tag = self.tag(text)
            if tag is not None:
                if tag not in (_T_INT, _T_FLOAT, _T_BOOL, _T_NULL):
                    raise _Fallback
                self.value(text)  # must construct (``0b_: x`` is an error)
            if len(self.key_cache) > 20000:
                self.key_cache.clear()
            k = self.key_cache[text] = text
        return k


# line tokens: (indent, kind, key, value)
K_VAL, K_FLOW, K_NONE, S_VAL, S_FLOW, S_NONE, S_MAP = range(7)
_SKIP = (-1, -1, None, None)  # blank or comment line
_DOC = (-2, -2, None, None)  # ``---``


def _is_entry(s: str) -> bool:
    return s[0] == "-" and (len(s) == 1 or s[1] == " ")


class _Lines:
    """One line -> its token; a pure function of the line's text, so it is cached."""

    def __init__(self, scalars: _Scalars) -> None:
        self.sc = scalars
        self.cache: dict[str, tuple] = {}

    def token(self, raw: str) -> tuple:
        s = raw.lstrip(" ")
        if not s or s[0] == "#":
            return _SKIP
        ind = len(raw) - len(s)
        s = s.rstrip(" ")
        if ind == 0 and s[0] in "-.%" and (s.startswith(("---", "...")) or s[0] == "%"):
            if s != "---":
                raise _Fallback  # directives, ``--- value``, ``...``
            return _DOC
        if _is_entry(s):
            rest = s[1:].lstrip(" ")
            if not rest or rest[0] == "#":
                return (ind, S_NONE, None, None)
            if _is_entry(rest):
                raise _Fallback  # ``- - x``
            if self.is_key_line(rest):
                return (ind, S_MAP, None, self.key_token(ind + len(s) - len(rest), rest))
            kind, value = self.inline(rest)
            return (ind, S_VAL if kind else S_FLOW, None, value)
        return self.key_token(ind, s)

    def key_token(self, ind: int, s: str) -> tuple:
        key, rest = self.split_key(s)
        if not rest or rest[0] == "#":
            return (ind, K_NONE, key, None)
        kind, value = self.inline(rest)
        return (ind, K_VAL if kind else K_FLOW, key, value)

    @staticmethod
    def is_key_line(s: str) -> bool:
        c = s[0]
        if c == "'":
            return _QKEY_SINGLE.match(s) is not None
        if c == '"':
            return _QKEY_DOUBLE.match(s) is not None
        if c in "[{":
            return False
        return ": " in s or s.endswith(":")

    def split_key(self, s: str) -> tuple[str, str]:
        """``key: rest`` -> (key, rest without leading spaces)."""
        c = s[0]
        if c == "'" or c == '"':
            m = (_QKEY_SINGLE if c == "'" else _QKEY_DOUBLE).match(s)
            if m is None:
                raise _Fallback
            key = m.group(1).replace("''", "'") if c == "'" else m.group(1)
            return key, s[m.end():].lstrip(" ")
        if c in _NOT_PLAIN_START or c == "-":
            raise _Fallback
        j = s.find(": ")
        if j < 0:
            if s[-1] != ":":
                raise _Fallback
            j = len(s) - 1
        key = s[:j].rstrip(" ")
        if " #" in key:
            raise _Fallback
        return self.sc.key(key), s[j + 1:].lstrip(" ")

    def inline(self, s: str) -> tuple[bool, Any]:
        """A value on one line: (True, scalar) or (False, flow collection text, checked)."""
        c = s[0]
        if c == "'":
            m = _SINGLE.match(s)
            if m is None:
                raise _Fallback
            return True, m.group(1).replace("''", "'")
        if c == '"':
            m = _DOUBLE.match(s)
            if m is None:
                raise _Fallback
            return True, m.group(1)
        if c == "[" or c == "{":
            _, j = _flow(self.sc, s, 0)
            rest = s[j:]
            if rest and not (rest[0] == " " and rest.lstrip(" ")[:1] == "#"):
                raise _Fallback
            return False, s
        if c in _NOT_PLAIN_START or (c == "-" and (len(s) == 1 or s[1] == " ")):
            raise _Fallback
        k = s.find(" #")
        if k >= 0:
            s = s[:k].rstrip(" ")
        if ": " in s or s[-1] == ":":
            raise _Fallback
        return True, self.sc.value(s)


def _flow(sc: _Scalars, s: str, j: int) -> tuple[Any, int]:
    """A one-line flow collection starting at ``s[j]``; returns it and the index after it."""
    close = "]" if s[j] == "[" else "}"
    items: Any = [] if close == "]" else {}
    j += 1
    first = True
    while True:
        while j < len(s) and s[j] == " ":
            j += 1
        if j >= len(s):
            raise _Fallback  # continues on the next line
        if s[j] == close and first:
            return items, j + 1
        if close == "]":
            value, j = _flow_item(sc, s, j)
            items.append(value)
        else:
            key, j = _flow_item(sc, s, j, key=True)
            if s[j:j + 2] != ": ":
                raise _Fallback
            j += 2
            while j < len(s) and s[j] == " ":
                j += 1
            value, j = _flow_item(sc, s, j)
            items[key] = value
        while j < len(s) and s[j] == " ":
            j += 1
        if j >= len(s):
            raise _Fallback
        if s[j] == close:
            return items, j + 1
        if s[j] != ",":
            raise _Fallback
        j += 1
        first = False


def _flow_item(sc: _Scalars, s: str, j: int, key: bool = False) -> tuple[Any, int]:
    c = s[j:j + 1]
    if c == "[" or c == "{":
        if key:
            raise _Fallback
        return _flow(sc, s, j)
    if c == "'":
        m = _FLOW_SINGLE.match(s, j)
        if m is None:
            raise _Fallback
        return m.group(1).replace("''", "'"), m.end()
    if c == '"':
        m = _FLOW_DOUBLE.match(s, j)
        if m is None:
            raise _Fallback
        return m.group(1), m.end()
    m = _FLOW_PLAIN.match(s, j)
    end = m.end()  # type: ignore[union-attr]
    text = s[j:end].rstrip(" ")
    if not text or text[0] in _NOT_PLAIN_START or (text[0] == "-" and (len(text) == 1 or text[1] == " ")):
        raise _Fallback
    if end < len(s) and s[end] not in ",]}:":
        raise _Fallback  # a quote or ``#`` inside a plain scalar
    if s[end:end + 1] == ":" and not (key and s[end:end + 2] == ": "):
        raise _Fallback
    return (sc.key(text) if key else sc.value(text)), end


class _Builder:
    """Tokens -> data: block mappings and sequences by indentation.

    With ``blocks`` (``raws``: each token's line), the value of each top-level key that is a
    nested block comes from that cache when the same lines were built before: one shared object.
    """

    def __init__(self, toks: list[tuple], sc: _Scalars, blocks: dict | None = None,
                 raws: list[str] | None = None) -> None:
        self.toks = toks
        self.n = len(toks)
        self.sc = sc
        self.blocks = blocks
        self.raws = raws
        self.top = toks[0][0] if toks else 0

    def cached_block(self, i: int, indent: int) -> tuple[Any, int]:
        """:meth:`block` of the lines from ``i`` until the next top-level key, from the cache."""
        toks, n, blocks = self.toks, self.n, self.blocks
        assert blocks is not None and self.raws is not None
        j = i + 1
        while j < n and toks[j][0] > self.top:
            j += 1
        lines = tuple(self.raws[i:j])  # the block's value is a function of its lines' text alone
        value = blocks.get(lines)
        if value is not None:
            return value, j
        value, end = self.block(i, indent)
        if end == j:
            # kept from its second sighting on: a block unique to one file (a run name) never is
            h = hash(lines)
            if h not in _SEEN_ONCE:
                if len(_SEEN_ONCE) >= 100_000:
                    _SEEN_ONCE.clear()
                _SEEN_ONCE.add(h)
            else:
                if len(blocks) >= MAX_BLOCKS:
                    blocks.clear()
                    SHARED.clear()
                blocks[lines] = value
                SHARED[id(value)] = value
        return value, end

    def block(self, i: int, indent: int) -> tuple[Any, int]:
        if self.toks[i][1] >= S_VAL:
            return self.sequence(i, indent)
        return self.mapping(i, indent)

    def mapping(self, i: int, indent: int) -> tuple[dict, int]:
        toks, n = self.toks, self.n
        out: dict[str, Any] = {}
        while i < n:
            ind, kind, key, value = toks[i]
            if ind != indent:
                if ind < indent:
                    break
                raise _Fallback
            i += 1
            if kind == K_VAL:
                if i < n and toks[i][0] > indent:
                    raise _Fallback  # a multi-line scalar
                out[key] = value
            elif kind == K_NONE:
                if i < n:
                    ind2, kind2 = toks[i][0], toks[i][1]
                    if ind2 > indent:
                        if self.blocks is not None and indent == self.top:
                            value, i = self.cached_block(i, ind2)
                        else:
                            value, i = self.block(i, ind2)
                    elif ind2 == indent and kind2 >= S_VAL:
                        value, i = self.sequence(i, indent)
                out[key] = value
            elif kind == K_FLOW:
                if i < n and toks[i][0] > indent:
                    raise _Fallback
                out[key] = _flow(self.sc, value, 0)[0]
            else:
                raise _Fallback  # a sequence entry among mapping keys
        return out, i

    def sequence(self, i: int, indent: int) -> tuple[list, int]:
        toks, n = self.toks, self.n
        out: list[Any] = []
        while i < n:
            ind, kind, _, value = toks[i]
            if ind != indent:
                if ind < indent:
                    break
                raise _Fallback
            if kind == S_VAL:
                i += 1
                if i < n and toks[i][0] > indent:
                    raise _Fallback
            elif kind == S_MAP:
                toks[i] = value
                value, i = self.mapping(i, value[0])
            elif kind == S_NONE:
                i += 1
                if i < n and toks[i][0] > indent:
                    value, i = self.block(i, toks[i][0])
            elif kind == S_FLOW:
                i += 1
                if i < n and toks[i][0] > indent:
                    raise _Fallback
                value = _flow(self.sc, value, 0)[0]
            else:
                break  # the next key of the mapping this sequence is the value of
            out.append(value)
        return out, i


_lines: dict[type, _Lines] = {}
_blocks: dict[type, dict[tuple[str, ...], Any]] = {}
MAX_BLOCKS = 2000
_SEEN_ONCE: set[int] = set()  # hashes of the lines of blocks built once (see _Builder.cached_block)
#: id -> object, for every block value load_simple(shared=True) has handed out and still caches
SHARED: dict[int, Any] = {}


def load_simple(text: str, loader: type = yaml.SafeLoader, *, shared: bool = False) -> list[Any] | None:
    """The documents of ``text`` (at most one) if it is in the simple subset, else None.

    ``loader`` is the loader class whose implicit resolvers decide what plain scalars are.
    The result is what the full loader gives for the same text (an empty file gives ``[]``).

    ``shared=True``: the value of a top-level key that is a nested block may be one object
    shared with earlier results whose block had the same lines (the configs of a sweep repeat
    most of their sections), listed in :data:`SHARED`. The caller must never change it.
    """
    if len(text) > MAX_CHARS or _UNUSUAL.search(text) is not None:
        return None
    lx = _lines.get(loader)
    if lx is None:
        lx = _lines[loader] = _Lines(_Scalars(loader))
    if not lx.sc.usable:
        return None
    cache = lx.cache
    toks: list[tuple] = []
    raws: list[str] | None = [] if shared else None
    try:
        for raw in text.split("\n"):
            tok = cache.get(raw)
            if tok is None:
                tok = lx.token(raw)
                if len(cache) > 20000:
                    cache.clear()
                cache[raw] = tok
            if tok[0] >= 0:
                toks.append(tok)
                if raws is not None:
                    raws.append(raw)
            elif tok is _DOC and toks:
                return None  # a second document
        if not toks:
            return []
        blocks = _blocks.setdefault(loader, {}) if shared else None
        value, i = _Builder(toks, lx.sc, blocks, raws).block(0, toks[0][0])
    except (_Fallback, RecursionError):
        return None
    if i != len(toks):
        return None
    return [value]
