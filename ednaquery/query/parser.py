"""Parser for the query language (docs/query.md): tokens -> AST (:mod:`ednaquery.query.ast`).

Recursive descent over the tokens of :mod:`ednaquery.query.tokens`, with precedence
``not`` > ``and`` (or juxtaposition) > ``or``. Keys and values are always data: a word
becomes a :class:`KeySpec` or a :class:`Value`, never an operator, so nothing a user types
can reach a backend as anything but a bound value. Every error is a
:class:`QuerySyntaxError` that points at the offending token.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence

from ednaquery.errors import QuerySyntaxError, UsageError
from ednaquery.keys import KeySpec
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range, Value
from ednaquery.query.tokens import REGEX_OPS, Token, tokenize
from ednaquery.regex import RegexError, compile_regex

ORDER_OPS = ("<", "<=", ">", ">=")
LIST_OPS = ("=", "!=")
_VALUE_KINDS = ("WORD", "STRING", "REGEX")
_TERM_START = ("WORD", "STRING", "LPAREN", "NOT")
_INDEX = re.compile(r"\[\d+\]")
_LITERALS = {"true": ("bool", True), "false": ("bool", False), "null": ("null", None)}
#: how deeply parentheses and ``not`` may nest: deeper queries are refused, not a RecursionError
MAX_NESTING = 64
#: how many keys and values (words, strings, regexes) a query may hold: each is a term or a list item
MAX_VALUES = 4000


def parse(query: str | Sequence[str]) -> Node:
    """Parse a query: one string, or CLI arguments (each a term, an operator or a whole query).

    Arguments are tokenized one by one (an argument boundary always separates tokens) and
    error positions refer to ``" ".join(args)``. The empty query is :class:`MatchAll`.
    """
    if isinstance(query, str):
        text, tokens = query, tokenize(query)
    else:
        args = list(query)
        text = " ".join(args)
        tokens: list[Token] = []
        offset = 0
        for arg in args:
            tokens += tokenize(arg, offset, query=text, after=tokens[-1] if tokens else None)
            offset += len(arg) + 1
    _check_size(tokens)
    return _Parser(tokens, text).parse()


def _check_size(tokens: list[Token]) -> None:
    """Refuse a query with more terms or values than a store answers in reasonable time (one line, exit 2)."""
    values = sum(1 for t in tokens if t.kind in _VALUE_KINDS)
    if values > MAX_VALUES:
        raise UsageError(f"query too large: {values} keys and values (at most {MAX_VALUES}); "
                         "split it into smaller queries")


def parse_number(text: str) -> float | None:
    """The float an unquoted word stands for (Python float syntax, ``inf``), or None.

    ``nan`` is not a number here: it equals nothing, so it is kept as a string.
    """
    try:
        number = float(text)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def word_value(text: str, *, glob_allowed: bool = True) -> Value:
    """The value an unquoted word stands for: number, true/false/null, glob or plain string."""
    literal = _LITERALS.get(text.lower())
    if literal is not None:
        return Value(literal[0], literal[1])  # type: ignore[arg-type]
    number = parse_number(text)
    if number is not None:
        return Value("num", number)
    return Value("str", text, glob=glob_allowed and ("*" in text or "?" in text))


class _BadKey(Exception):
    def __init__(self, message: str, offset: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset  # where in the key; None: the whole key


def parse_key(text: str) -> KeySpec:
    """A key alone (``--sort``, ``--by``, ``keys``) -> :class:`KeySpec`; raises QuerySyntaxError."""
    toks = tokenize(text)
    if len(toks) != 1 or toks[0].kind != "WORD":
        raise QuerySyntaxError("expected a key, like lr, optimizer.lr or .model.name", text, 0, len(text))
    return _Parser(toks, text).key(toks[0])


def _split_key(typed: str) -> KeySpec:
    """A key as typed -> :class:`KeySpec`: split on ``.`` outside backquotes; a leading ``.`` anchors,
    a leading ``*`` asks for every suffix match (``*lr``)."""
    every = typed.startswith("*")
    raw = typed[1:] if every else typed
    if every and (not raw or raw[0] in ".*"):
        raise _BadKey("'*' goes right before a key, as in *lr (every key that ends with lr)", 0)
    try:
        return _split_segments(raw, every)
    except _BadKey as exc:
        if every and exc.offset is not None:
            exc.offset += 1
        raise


def _split_segments(raw: str, every: bool) -> KeySpec:
    anchored = raw.startswith(".")
    segments: list[str] = []
    literal: list[bool] = []
    i = 1 if anchored else 0
    while True:
        start = i
        if i < len(raw) and raw[i] == "`":
            buf: list[str] = []
            i += 1
            while i < len(raw) and raw[i] != "`":
                if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in "`\\":
                    i += 1
                buf.append(raw[i])
                i += 1
            if i >= len(raw):
                raise _BadKey("unterminated backquoted key: add the closing `", start)
            i += 1
            seg, lit = "".join(buf), True
            if i < len(raw) and raw[i] != ".":
                raise _BadKey("a backquoted key segment must end at a '.' or at the end of the key", i)
        else:
            while i < len(raw) and raw[i] not in ".`":
                i += 1
            seg, lit = raw[start:i], False
            if i < len(raw) and raw[i] == "`":
                raise _BadKey("quote a whole key segment in backquotes, not part of it", start)
        if not seg:
            raise _BadKey("empty key segment: a key looks like lr, optimizer.lr or .model.name", start)
        if any(ord(c) < 32 or ord(c) == 127 for c in seg):
            raise _BadKey("control characters are not allowed in keys", start)
        if not lit and _INDEX.search(seg):
            fixed = _INDEX.sub("", raw).replace("..", ".")
            raise _BadKey(f"list indices are not part of keys: write '{fixed}' (any element)", None)
        segments.append(seg)
        literal.append(lit)
        if i >= len(raw):
            break
        i += 1  # the '.'
    return KeySpec(tuple(segments), tuple(literal) if any(literal) else (), anchored, every=every)


def _show(tok: Token) -> str:
    return tok.text if len(tok.text) <= 20 else tok.text[:17] + "..."


class _Parser:
    def __init__(self, tokens: list[Token], query: str) -> None:
        self.tokens = tokens
        self.query = query
        self.i = 0
        self.depth = 0
        self.nesting = 0
        self.last: Token | None = None

    # -- helpers -----------------------------------------------------------------------------
    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        self.last = tok
        return tok

    def error(self, message: str, tok: Token | None) -> QuerySyntaxError:
        if tok is None:  # at the end of the query
            return QuerySyntaxError(message, self.query, len(self.query), 1)
        return QuerySyntaxError(message, self.query, tok.pos, len(tok.text))

    def unexpected(self, tok: Token) -> QuerySyntaxError:
        """An error for a token that cannot start or continue a term where it stands."""
        if tok.kind == "RPAREN":
            if self.depth == 0:
                return self.error("unbalanced parenthesis: this ')' has no matching '('", tok)
            return self.error("expected a term before ')'", tok)
        if tok.kind == "OP":
            return self.error(f"expected a key before '{_show(tok)}'", tok)
        if tok.kind == "COMMA":
            return self.error("unexpected ',': a list of values goes after '=' or '!=' (a=x,y)", tok)
        if tok.kind in ("AND", "OR"):
            if self.last is None:
                return self.error(f"expected a term before '{_show(tok)}'", tok)
            return self.error(f"expected a term after '{_show(self.last)}', found '{_show(tok)}'", tok)
        return self.error(f"unexpected '{_show(tok)}'", tok)

    # -- grammar -----------------------------------------------------------------------------
    def parse(self) -> Node:
        if not self.tokens:
            return MatchAll()
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise self.unexpected(tok)
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.next()
            items.append(self.and_expr())
        return _flat(Or, items)

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while (tok := self.peek()) is not None:
            if tok.kind == "AND":
                self.next()
            elif tok.kind not in _TERM_START:
                break
            items.append(self.not_expr())
        return _flat(And, items)

    def not_expr(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "NOT":
            self.next()
            self.nest(tok, +1)
            node = Not(self.not_expr())
            self.nest(tok, -1)
            return node
        return self.primary()

    def nest(self, tok: Token, step: int) -> None:
        self.nesting += step
        if self.nesting > MAX_NESTING:
            raise self.error(f"the query nests too deeply: at most {MAX_NESTING} levels of parentheses and 'not'",
                             tok)

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            last = self.last
            where = f" after '{_show(last)}'" if last is not None else ""
            raise self.error(f"expected a term{where}", None)
        if tok.kind == "LPAREN":
            self.next()
            closing = self.peek()
            if closing is not None and closing.kind == "RPAREN":
                raise self.error("empty parentheses: put a term inside", closing)
            self.depth += 1
            self.nest(tok, +1)
            node = self.or_expr()
            self.nest(tok, -1)
            self.depth -= 1
            closing = self.peek()
            if closing is None:
                raise self.error("unbalanced parenthesis: this '(' is never closed", tok)
            if closing.kind != "RPAREN":
                raise self.unexpected(closing)
            self.next()
            return node
        if tok.kind in ("WORD", "STRING"):
            return self.term()
        raise self.unexpected(tok)

    def term(self) -> Node:
        first = self.next()
        op_tok = self.peek()
        if op_tok is None or op_tok.kind != "OP":
            return Exists(self.key(first))
        self.next()
        second = self.expect_value(op_tok)
        nxt = self.peek()
        if nxt is not None and nxt.kind == "OP":
            return self.range(first, op_tok, second)
        key = self.key(first)
        op = op_tok.value
        value_toks = [second]
        commas: list[Token] = []
        while (tok := self.peek()) is not None and tok.kind == "COMMA":
            commas.append(self.next())
            value_toks.append(self.expect_value(tok))
        if commas and op not in LIST_OPS:
            raise self.error(f"a list of values needs '=' or '!=', not '{_show(op_tok)}'", commas[0])
        values = tuple(self.value(t, op_tok) for t in value_toks)
        return Compare(key, op, values)  # type: ignore[arg-type]

    def expect_value(self, after: Token) -> Token:
        tok = self.peek()
        if tok is None or tok.kind not in _VALUE_KINDS:
            hint = ""
            if tok is not None and tok.kind in ("AND", "OR", "NOT"):
                hint = f" (quote '{tok.text}' to use it as a value)"
            raise self.error(f"expected a value after '{_show(after)}'{hint}", tok)
        return self.next()

    def range(self, low_tok: Token, op1: Token, key_tok: Token) -> Node:
        op2 = self.next()
        ops = (op1.value, op2.value)
        if op1.value not in ORDER_OPS:
            raise self.error(f"unexpected '{_show(op2)}' after a value: quote a value that contains it", op2)
        if not (set(ops) <= {"<", "<="} or set(ops) <= {">", ">="}):
            raise self.error("a range needs '<'/'<=' on both sides (1e-4<=lr<1e-3) or '>'/'>=' on both", op2)
        if key_tok.kind != "WORD":
            raise self.error("expected a key between the two operators of a range", key_tok)
        high_tok = self.expect_value(op2)
        key = self.key(key_tok)
        a = self.value(low_tok, op1)
        b = self.value(high_tok, op2)
        if a.kind != b.kind:
            raise self.error("the bounds of a range must both be numbers or both be strings", high_tok)
        tok = self.peek()
        if tok is not None and tok.kind in ("OP", "COMMA"):
            raise self.error(f"unexpected '{_show(tok)}' after a range", tok)
        if ops[0] in ("<", "<="):
            return Range(key, a, ops[0] == "<=", b, ops[1] == "<=")
        return Range(key, b, ops[1] == ">=", a, ops[0] == ">=")

    # -- keys and values ---------------------------------------------------------------------
    def key(self, tok: Token) -> KeySpec:
        if tok.kind != "WORD":
            raise self.error("a quoted string cannot be a key: write a literal key in backquotes", tok)
        try:
            return _split_key(tok.text)
        except _BadKey as exc:
            if exc.offset is None:
                raise self.error(exc.message, tok) from None
            pos = tok.pos + min(exc.offset, len(tok.text))
            raise QuerySyntaxError(exc.message, self.query, pos, 1) from None

    def value(self, tok: Token, op_tok: Token) -> Value:
        op = op_tok.value
        if op in REGEX_OPS:
            return self.regex(tok)
        if tok.kind == "STRING":
            return Value("str", tok.value, quoted=True)
        if "`" in tok.text:
            raise self.error('backquotes are for keys: quote a value with "..." or \'...\'', tok)
        val = word_value(tok.text, glob_allowed=op in LIST_OPS)
        if op in ORDER_OPS and val.kind in ("bool", "null"):
            raise self.error(
                f"'{_show(op_tok)}' compares numbers or strings, not {tok.text}: use '=' or '!=' for it", tok
            )
        return val

    def regex(self, tok: Token) -> Value:
        pattern = tok.value
        try:
            with warnings.catch_warnings():  # FutureWarning for "[[" and the like is not the user's concern
                warnings.simplefilter("ignore")
                re.compile(pattern)
            compile_regex(pattern)  # what every backend runs: RE2's syntax (linear time, see ednaquery.regex)
        except RegexError as exc:
            message = f"invalid regular expression: {exc}"
            raise QuerySyntaxError(message, self.query, tok.pos, len(tok.text)) from None
        except re.error as exc:
            pos, length = tok.pos, len(tok.text)
            if tok.kind == "REGEX" and exc.pos is not None:
                pos, length = tok.pos + min(exc.pos, max(0, len(tok.text) - 1)), 1
            message = f"invalid regular expression: {exc.msg}"
            raise QuerySyntaxError(message, self.query, pos, length) from None
        return Value("str", pattern, quoted=tok.kind == "STRING")


def _flat(cls: type[And | Or], items: list[Node]) -> Node:
    if len(items) == 1:
        return items[0]
    out: list[Node] = []
    for item in items:
        out.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(out))
