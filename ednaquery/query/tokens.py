"""Tokenizer for the query language (docs/query.md): query text -> tokens with positions.

The tokenizer only splits text; the parser decides what words mean. A bare word is a run
of characters up to whitespace, a parenthesis, a comma, a quote, an operator character
(``= ! < > ~``) or ``&&``/``||``; backquoted parts inside a word (`` `weird.key` ``) may hold
any character. ``:lt:``-style spelled-out operators split words wherever they appear, so
``lr:lt:1e-3`` needs no shell quoting. After ``~``/``!~`` the value is scanned as a regular
expression (everything up to whitespace or an unbalanced ``)``) so ``model~(vit|conv)``
works. Every token keeps its position in the whole query so errors can point at it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ednaquery.errors import QuerySyntaxError

TokenKind = Literal["WORD", "STRING", "REGEX", "OP", "AND", "OR", "NOT", "LPAREN", "RPAREN", "COMMA"]

#: ``:xx:`` spelled-out operators (no shell quoting needed) and the symbol each stands for.
SPELLED_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=", "ne": "!=", "re": "~", "nre": "!~"}
KEYWORDS = {"and": "AND", "or": "OR", "not": "NOT"}
REGEX_OPS = ("~", "!~")

_STOP = frozenset("()=!<>~,'\"&|")
_SPELLED = re.compile(r":(lt|le|gt|ge|eq|ne|re|nre):", re.IGNORECASE)
_TWO_CHAR_OPS = {"!=": "!=", "!~": "!~", "<=": "<=", ">=": ">=", "==": "="}


@dataclass(frozen=True)
class Token:
    """One token: ``text`` is the source slice, ``value`` its meaning.

    ``value`` is the operator symbol for OP (``:lt:`` -> ``<``), the unescaped content for
    STRING, and the source text otherwise. ``pos`` is an offset into the whole query.
    """

    kind: TokenKind
    text: str
    pos: int
    value: str

    @property
    def end(self) -> int:
        return self.pos + len(self.text)


def is_word_char(ch: str) -> bool:
    """True for characters a bare word (key or value) may contain."""
    return not ch.isspace() and ch not in _STOP and ch != "`"


def tokenize(
    text: str, offset: int = 0, *, query: str | None = None, after: Token | None = None
) -> list[Token]:
    """Split ``text`` into tokens.

    ``offset`` is where ``text`` starts inside ``query`` (the whole query shown in errors;
    defaults to ``text``); ``after`` is the last token of the preceding text, so that a value
    argument that follows an operator argument (``model~`` ``(a|b)``) is scanned correctly.
    """
    return _Lexer(text, offset, text if query is None else query, after).run()


class _Lexer:
    def __init__(self, text: str, offset: int, query: str, after: Token | None) -> None:
        self.text = text
        self.offset = offset
        self.query = query
        self.tokens: list[Token] = []
        self.prev = after

    def error(self, message: str, i: int, length: int = 1) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.query, self.offset + i, length)

    def emit(self, kind: TokenKind, i: int, j: int, value: str | None = None) -> None:
        src = self.text[i:j]
        tok = Token(kind, src, self.offset + i, src if value is None else value)
        self.tokens.append(tok)
        self.prev = tok

    def run(self) -> list[Token]:
        text, n, i = self.text, len(self.text), 0
        while i < n:
            c = text[i]
            if c.isspace():
                i += 1
            elif c in "'\"":
                i = self.string(i)
            elif self.prev is not None and self.prev.kind == "OP" and self.prev.value in REGEX_OPS:
                i = self.regex(i)
            elif c == "(":
                self.emit("LPAREN", i, i + 1)
                i += 1
            elif c == ")":
                self.emit("RPAREN", i, i + 1)
                i += 1
            elif c == ",":
                self.emit("COMMA", i, i + 1)
                i += 1
            elif c in "=!<>~":
                i = self.operator(i)
            elif c in "&|":
                if text[i:i + 2] != c * 2:
                    word = "and" if c == "&" else "or"
                    raise self.error(f"a single '{c}' is not an operator: use '{c * 2}' or '{word}'", i)
                self.emit("AND" if c == "&" else "OR", i, i + 2)
                i += 2
            else:
                i = self.word(i)
        return self.tokens

    def operator(self, i: int) -> int:
        two = self.text[i:i + 2]
        if two in _TWO_CHAR_OPS:
            self.emit("OP", i, i + 2, _TWO_CHAR_OPS[two])
            return i + 2
        c = self.text[i]
        if c == "!":
            self.emit("NOT", i, i + 1)
        else:
            self.emit("OP", i, i + 1, c)
        return i + 1

    def string(self, i: int) -> int:
        text, q = self.text, self.text[i]
        prev = self.prev
        if prev is not None and prev.kind in ("WORD", "STRING", "REGEX") and prev.end == self.offset + i:
            raise self.error("a quote inside a word: quote the whole value instead", i)
        buf: list[str] = []
        j = i + 1
        while j < len(text):
            ch = text[j]
            if ch == "\\" and j + 1 < len(text) and text[j + 1] in (q, "\\"):
                buf.append(text[j + 1])
                j += 2
            elif ch == q:
                self.emit("STRING", i, j + 1, "".join(buf))
                if j + 1 < len(text) and (is_word_char(text[j + 1]) or text[j + 1] == "`"):
                    raise self.error("unexpected text right after a closing quote: add a space", j + 1)
                return j + 1
            else:
                buf.append(ch)
                j += 1
        raise self.error(f"unterminated string: add the closing {q}", i, len(text) - i)

    def regex(self, i: int) -> int:
        """A bare regular expression: up to whitespace or a ``)`` that closes nothing in it."""
        text, n, j, depth = self.text, len(self.text), i, 0
        while j < n:
            ch = text[j]
            if ch.isspace():
                break
            if ch == "\\":  # an escape; whitespace still ends the regex, as it does in argv
                j += 2 if j + 1 < n and not text[j + 1].isspace() else 1
                continue
            if ch == "[":  # a character class: parentheses inside it are literal
                j += 1
                if j < n and text[j] == "^":
                    j += 1
                if j < n and text[j] == "]":
                    j += 1
                while j < n and text[j] != "]" and not text[j].isspace():
                    j += 2 if text[j] == "\\" and j + 1 < n and not text[j + 1].isspace() else 1
                if j < n and text[j] == "]":
                    j += 1
                continue
            if ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    break
                depth -= 1
            j += 1
        if j == i:  # a ')' right after the operator: let the parser say that a value is missing
            self.emit("RPAREN", i, i + 1)
            return i + 1
        self.emit("REGEX", i, j)
        return j

    def word(self, i: int) -> int:
        text, n, j = self.text, len(self.text), i
        while j < n:
            ch = text[j]
            if ch == "`":
                k = j + 1
                while k < n and text[k] != "`":
                    k += 2 if text[k] == "\\" else 1
                if k >= n:
                    raise self.error("unterminated backquoted key: add the closing `", j, n - j)
                j = k + 1
            elif ch.isspace() or ch in _STOP:
                break
            elif ch == ":" and (m := _SPELLED.match(text, j)):
                if j > i:
                    self.emit_word(i, j)
                self.emit("OP", j, m.end(), SPELLED_OPS[m.group(1).lower()])
                return m.end()
            else:
                j += 1
        self.emit_word(i, j)
        return j

    def emit_word(self, i: int, j: int) -> None:
        kind = KEYWORDS.get(self.text[i:j].lower())
        self.emit(kind if kind else "WORD", i, j)  # type: ignore[arg-type]
