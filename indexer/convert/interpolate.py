"""OmegaConf-style ``${...}`` interpolation, resolved where the config itself has the answer.

Hydra and OmegaConf configs refer to other values of the same config: ``${paths.data_dir}``,
``${model.optimizer.lr}``, relative ``${.lr}`` / ``${..lr}`` and list items ``${a.0}`` /
``${a[0]}``. Those are resolved here, recursively, so that the *effective* value is
indexed (``data_dir: ${paths.root_dir}/data/`` becomes ``/abs/data/`` when ``root_dir``
is known). A whole-string interpolation takes the referenced value with its type (a
number stays a number, a mapping a mapping); one inside a longer string is pasted in as
text, as OmegaConf does.

Never resolved, kept exactly as written, with one warning each:
- resolvers (``${oc.env:HOME}``, ``${hydra:runtime.cwd}``, ``${now:%Y-%m-%d}``, any
  ``${name:args}``): they need the environment or the moment the job runs;
- references to keys that do not exist, to ``???`` (mandatory values left unset), and
  cycles (``a: ${b}``, ``b: ${a}``).
Escaped ``\\${...}`` is text, not an interpolation. Nothing is ever evaluated.
"""
from __future__ import annotations

import re
from typing import Any

#: The most unresolved-interpolation warnings one config gets (the rest are counted).
MAX_WARNINGS = 20

_RESOLVER = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*:")
_KEY_PART = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")
_MISSING = object()


class _Unresolved(Exception):
    """An interpolation that cannot be resolved from the config (the reason is the message)."""

    def __init__(self, reason: str, cycle: bool = False) -> None:
        super().__init__(reason)
        self.cycle = cycle


def has_interpolation(value: Any) -> bool:
    """True if any string in a nested value contains ``${``."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "${" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _split(text: str) -> list[tuple[bool, str]]:
    """Split a string into ``(is_interpolation, text)`` parts; ``${...}`` may nest."""
    parts: list[tuple[bool, str]] = []
    i, start, n = 0, 0, len(text)
    while i < n:
        if text.startswith("\\${", i):
            i += 3
            continue
        if text.startswith("${", i):
            depth, j = 0, i
            quote = ""
            while j < n:
                c = text[j]
                if quote:
                    if c == "\\":
                        j += 1
                    elif c == quote:
                        quote = ""
                elif c in "'\"" and depth > 0:
                    quote = c
                elif text.startswith("${", j):
                    depth += 1
                    j += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= n:  # unbalanced: plain text
                break
            if i > start:
                parts.append((False, text[start:i]))
            parts.append((True, text[i:j + 1]))
            i = start = j + 1
            continue
        i += 1
    if start < n:
        parts.append((False, text[start:]))
    return parts


def _parse_key(expr: str) -> tuple[int, list[str]]:
    """``..a.b[0]`` -> (2 leading dots, ['a', 'b', '0'])."""
    dots = len(expr) - len(expr.lstrip("."))
    rest = expr[dots:]
    keys = [m.group(1) if m.group(1) is not None else m.group(2) for m in _KEY_PART.finditer(rest)]
    return dots, [k.strip() for k in keys]


class _Resolver:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.memo: dict[tuple, Any] = {}
        self.active: set[tuple] = set()
        self.unresolved: dict[str, str] = {}  # expression -> reason
        self.depth = 0  # interpolations being evaluated (a cycle unwinds to the outermost)
        self.cyclic: set[tuple] = set()  # values left as written because they are in a cycle

    # -- tree access -----------------------------------------------------------------
    def raw(self, path: tuple) -> Any:
        node = self.root
        for k in path:
            if isinstance(node, dict):
                if k not in node:
                    return _MISSING
                node = node[k]
            elif isinstance(node, list):
                try:
                    node = node[int(k)]
                except (ValueError, IndexError):
                    return _MISSING
            else:
                return _MISSING
        return node

    def canonical(self, path: tuple) -> tuple | None:
        """The path with list indices as ints, or None if it does not exist."""
        node, out = self.root, []
        for k in path:
            if isinstance(node, dict) and k in node:
                node = node[k]
                out.append(k)
            elif isinstance(node, list):
                try:
                    idx = int(k)
                    node = node[idx]
                except (ValueError, IndexError):
                    return None
                out.append(idx)
            else:
                return None
        return tuple(out)

    # -- resolution ------------------------------------------------------------------
    def node(self, path: tuple) -> Any:
        """The fully resolved value at ``path`` (memoised; cycles raise ``_Unresolved``)."""
        if path in self.memo:
            return self.memo[path]
        if path in self.active:
            raise _Unresolved("it is part of an interpolation cycle", cycle=True)
        value = self.raw(path)
        self.active.add(path)
        try:
            if isinstance(value, str):
                out = self.string(value, path)
            elif isinstance(value, dict):
                out = {k: self.node(path + (k,)) for k in value}
            elif isinstance(value, list):
                out = [self.node(path + (i,)) for i in range(len(value))]
            else:
                out = value
        finally:
            self.active.discard(path)
        self.memo[path] = out
        return out

    def give_up(self, exc: _Unresolved, piece: str, path: tuple) -> None:
        """Record an unresolvable piece, or unwind a cycle to its outermost interpolation."""
        if exc.cycle:
            if self.depth > 0:
                raise exc
            self.cyclic.add(path)
        self.unresolved.setdefault(piece, str(exc))

    def string(self, text: str, path: tuple) -> Any:
        if "${" not in text:
            return text
        parts = _split(text)
        if len(parts) == 1 and parts[0][0]:
            try:
                return self.expression(parts[0][1], path)
            except _Unresolved as exc:
                self.give_up(exc, parts[0][1], path)
                return text
        out = []
        for is_interp, piece in parts:
            if not is_interp:
                out.append(piece)
                continue
            try:
                value = self.expression(piece, path)
            except _Unresolved as exc:
                self.give_up(exc, piece, path)
                out.append(piece)
                continue
            if isinstance(value, (dict, list)):
                self.unresolved.setdefault(piece, "it refers to a mapping or list inside a longer string")
                out.append(piece)
            else:
                out.append(str(value))
        return "".join(out)

    def expression(self, expr: str, path: tuple) -> Any:
        inner = expr[2:-1]
        m = _RESOLVER.match(inner)
        if m:
            raise _Unresolved(f"resolver '{m.group(1)}' needs runtime values")
        if "${" in inner:  # a nested key: ${a.${b}}
            resolved = self.string(inner, path)
            if not isinstance(resolved, str) or "${" in resolved:
                raise _Unresolved("its key could not be resolved")
            inner = resolved
        dots, keys = _parse_key(inner.strip())
        if not keys and dots == 0:
            raise _Unresolved("it is empty")
        if dots:
            container = path[:-1]
            up = dots - 1
            if up > len(container):
                raise _Unresolved("it goes above the root of the config")
            base = container[:len(container) - up]
        else:
            base = ()
        target = self.canonical(tuple(base) + tuple(keys))
        if target is None:
            raise _Unresolved("the key it refers to does not exist here")
        if target in self.cyclic:
            raise _Unresolved("it refers to a value in an interpolation cycle")
        self.depth += 1
        try:
            value = self.node(target)
        finally:
            self.depth -= 1
        if value == "???":
            raise _Unresolved("it refers to a mandatory value (???) that is not set")
        return value


def resolve_interpolations(config: Any) -> tuple[Any, list[str]]:
    """Resolve the ``${...}`` a config can answer itself; returns (new config, warnings).

    The input is not modified. Unresolvable interpolations stay as written.
    """
    if not has_interpolation(config):
        return config, []
    r = _Resolver(config)
    try:
        out = r.node(())
    except _Unresolved:  # only reachable for a cycle through the root itself
        return config, ["interpolation cycle through the root; left as written"]
    warnings = [f"interpolation {expr} left as written: {reason}"
                for expr, reason in list(r.unresolved.items())[:MAX_WARNINGS]]
    if len(r.unresolved) > MAX_WARNINGS:
        warnings.append(f"... and {len(r.unresolved) - MAX_WARNINGS} more interpolations left as written")
    return out, warnings
