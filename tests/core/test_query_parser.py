"""The query front end: docs/query.md's syntax -> AST, errors with carets, aliases, round trips."""
from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ednaquery.errors import QuerySyntaxError, UsageError
from ednaquery.keys import KeySpec, key_matches
from ednaquery.query import (
    BUILTIN_ALIASES,
    compile_query,
    expand_aliases,
    load_alias_groups,
    parse,
    parse_key,
    to_text,
)
from ednaquery.query.ast import And, Compare, Exists, MatchAll, Node, Not, Or, Range, Value, keys_of
from ednaquery.query.tokens import tokenize


def K(*segments: str, literal: tuple[bool, ...] = (), anchored: bool = False) -> KeySpec:
    return KeySpec(tuple(segments), literal, anchored)


def N(x: float) -> Value:
    return Value("num", float(x))


def S(x: str, *, quoted: bool = False, glob: bool = False) -> Value:
    return Value("str", x, quoted=quoted, glob=glob)


def C(key: str | KeySpec, op: str, *values: Value) -> Compare:
    return Compare(K(key) if isinstance(key, str) else key, op, values)  # type: ignore[arg-type]


def E(key: str | KeySpec) -> Exists:
    return Exists(K(key) if isinstance(key, str) else key)


TRUE, FALSE, NULL = Value("bool", True), Value("bool", False), Value("null", None)

# Every query docs/query.md shows, with the AST it must give.
QUERY_MD_EXAMPLES: list[tuple[str, Node]] = [
    ("lr<1e-3 model=vit", And((C("lr", "<", N(1e-3)), C("model", "=", S("vit"))))),
    ("optimizer!=sgd", C("optimizer", "!=", S("sgd"))),
    ("1e-4<=lr<1e-3", Range(K("lr"), N(1e-4), True, N(1e-3), False)),
    ("lr", E("lr")),
    ("!lr", Not(E("lr"))),
    ("model=vit,convnext", C("model", "=", S("vit"), S("convnext"))),
    ("model!=vit,convnext", C("model", "!=", S("vit"), S("convnext"))),
    ("lr:lt:1e-3", C("lr", "<", N(1e-3))),
    ('seed="42"', C("seed", "=", S("42", quoted=True))),
    ("seed='42'", C("seed", "=", S("42", quoted=True))),
    ("model=resnet18", C("model", "=", S("resnet18"))),
    ("optimizer.lr<1e-3", C(K("optimizer", "lr"), "<", N(1e-3))),
    (".model.name", E(K("model", "name", anchored=True))),
    ("`weird.key`", E(K("weird.key", literal=(True,)))),
    ("lr=0.001", C("lr", "=", N(0.001))),
    ("model=vit_base", C("model", "=", S("vit_base"))),
    ("model=vit_*_384", C("model", "=", S("vit_*_384", glob=True))),
    ("model~^conv", C("model", "~", S("^conv"))),
    ("weights~R-50", C("weights", "~", S("R-50"))),
    ("model!~^conv", C("model", "!~", S("^conv"))),
    ("i_shape=200", C("i_shape", "=", N(200))),
    ("key=null", C("key", "=", NULL)),
    ("lr<1e-3 val_acc>0.9", And((C("lr", "<", N(1e-3)), C("val_acc", ">", N(0.9))))),
    ("kind=config", C("kind", "=", S("config"))),
    ("kind=run", C("kind", "=", S("run"))),
    ("", MatchAll()),
]


@pytest.mark.parametrize(("query", "expected"), QUERY_MD_EXAMPLES, ids=[q or "<empty>" for q, _ in QUERY_MD_EXAMPLES])
def test_query_md_examples(query: str, expected: Node) -> None:
    assert parse(query) == expected


def test_numeric_equality_does_not_depend_on_spelling() -> None:
    assert parse("lr=0.001") == parse("lr=1e-3") == parse("lr=1E-3") == parse("lr=.001")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", N(1e-3)), (".5", N(0.5)), ("-2", N(-2)), ("+1", N(1)), ("inf", N(math.inf)),
        ("-inf", N(-math.inf)), ("Infinity", N(math.inf)), ("1_000", N(1000)), ("007", N(7)),
        ("true", TRUE), ("False", FALSE), ("NULL", NULL), ("nan", S("nan")), ("lr-x", S("lr-x")),
        ("2026-11-22", S("2026-11-22")), ("ViT-B/16", S("ViT-B/16")), ("R-50", S("R-50")),
        ("0x10", S("0x10")), ("configs/COCO", S("configs/COCO")), ("vit?", S("vit?", glob=True)),
        ("12:30:00", S("12:30:00")), ("s3://bucket/x", S("s3://bucket/x")), ("$gt", S("$gt")),
    ],
)
def test_unquoted_values_are_typed(text: str, value: Value) -> None:
    assert parse(f"x={text}") == C("x", "=", value)


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ('x="42"', S("42", quoted=True)),
        ('x="true"', S("true", quoted=True)),
        ('x="null"', S("null", quoted=True)),
        ('x="vit_*"', S("vit_*", quoted=True)),  # quoted strings are never globs
        ('x="a b"', S("a b", quoted=True)),
        ('x="say \\"hi\\""', S('say "hi"', quoted=True)),
        ("x='it\\'s'", S("it's", quoted=True)),
        ('x="back\\\\slash"', S("back\\slash", quoted=True)),
        ('x="a\\d"', S("a\\d", quoted=True)),  # other backslashes are kept (handy for regexes)
        ('x=""', S("", quoted=True)),
        ('x="and"', S("and", quoted=True)),
        ('x="a=b<c"', S("a=b<c", quoted=True)),
    ],
)
def test_quoted_values_stay_strings(query: str, value: Value) -> None:
    assert parse(query) == C("x", "=", value)


def test_glob_only_with_equality() -> None:
    assert parse("x<vit*") == C("x", "<", S("vit*"))
    assert parse("x!=vit*") == C("x", "!=", S("vit*", glob=True))
    assert parse("x~vit*") == C("x", "~", S("vit*"))


# -- precedence and structure ---------------------------------------------------------------
a, b, c, d = E("a"), E("b"), E("c"), E("d")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a b", And((a, b))),
        ("a and b", And((a, b))),
        ("a AND b && c", And((a, b, c))),
        ("a or b", Or((a, b))),
        ("a OR b || c", Or((a, b, c))),
        ("a b or c", Or((And((a, b)), c))),
        ("a or b c", Or((a, And((b, c))))),
        ("a or b and c or d", Or((a, And((b, c)), d))),
        ("not a b", And((Not(a), b))),
        ("NOT a or b", Or((Not(a), b))),
        ("!a b", And((Not(a), b))),
        ("not (a or b)", Not(Or((a, b)))),
        ("!(a b)", Not(And((a, b)))),
        ("not not a", Not(Not(a))),
        ("(a or b) c", And((Or((a, b)), c))),
        ("a (b c) d", And((a, b, c, d))),  # nested AND is flattened
        ("(a or b) or (c or d)", Or((a, b, c, d))),
        ("((a))", a),
        ("a(b)", And((a, b))),
        ("!a=1", Not(C("a", "=", N(1)))),
        ("a !b", And((a, Not(b)))),
        ("nota andb", And((E("nota"), E("andb")))),  # keywords are whole words only
    ],
)
def test_precedence(query: str, expected: Node) -> None:
    assert parse(query) == expected


def test_spaces_around_operators() -> None:
    assert parse("lr < 1e-3 model = vit") == parse("lr<1e-3 model=vit")
    assert parse("model ~ ^conv") == parse("model~^conv")
    assert parse("1e-4 <= lr < 1e-3") == parse("1e-4<=lr<1e-3")
    assert parse("model=vit , convnext") == parse("model=vit,convnext")


@pytest.mark.parametrize(
    ("spelled", "op"),
    [("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="), ("eq", "="), ("ne", "!="), ("LT", "<"), ("Ge", ">=")],
)
def test_spelled_out_operators(spelled: str, op: str) -> None:
    assert parse(f"lr:{spelled}:1e-3") == C("lr", op, N(1e-3))
    assert parse(["lr", f":{spelled}:", "1e-3"]) == C("lr", op, N(1e-3))


def test_spelled_out_regex_operators_and_ranges() -> None:
    assert parse("model:re:^conv") == C("model", "~", S("^conv"))
    assert parse("model:nre:(a|b)") == C("model", "!~", S("(a|b)"))
    assert parse("1e-4:le:lr:lt:1e-3") == parse("1e-4<=lr<1e-3")
    assert parse("model:eq:vit,convnext") == parse("model=vit,convnext")
    assert parse("x==3") == parse("x=3")
    assert parse("a:b=1") == C("a:b", "=", N(1))  # a colon alone is part of the key


# -- argv --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["lr<1e-3", "model=vit"],
        ["lr<1e-3 model=vit"],
        ["lr", "<", "1e-3", "model", "=", "vit"],
        ["lr<", "1e-3", "model=", "vit"],
        ["lr:lt:1e-3", "and", "model=vit"],
        ["", "lr<1e-3", "", "model=vit"],
    ],
)
def test_argv_equals_one_string(args: list[str]) -> None:
    assert parse(args) == parse("lr<1e-3 model=vit")


def test_argv_more_shapes() -> None:
    assert parse(["(", "a", "or", "b", ")", "c"]) == parse("(a or b) c")
    assert parse(["not", "a"]) == Not(a)
    assert parse(["model~", "(vit|conv)"]) == C("model", "~", S("(vit|conv)"))
    assert parse(["name=", '"my model"']) == C("name", "=", S("my model", quoted=True))
    assert parse([]) == MatchAll()
    assert parse(["", " "]) == MatchAll()


def test_argv_error_positions_point_into_the_joined_query() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(["model=vit", "lr<"])
    assert info.value.render() == "model=vit lr<\n             ^\nquery error at position 14: expected a value after '<'"
    with pytest.raises(QuerySyntaxError) as info:
        parse(["a", "b)"])
    assert info.value.render().splitlines()[:2] == ["a b)", "   ^"]


# -- ranges and lists ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1e-4<=lr<1e-3", Range(K("lr"), N(1e-4), True, N(1e-3), False)),
        ("1e-4<lr<=1e-3", Range(K("lr"), N(1e-4), False, N(1e-3), True)),
        ("0<epochs<100", Range(K("epochs"), N(0), False, N(100), False)),
        ("1e-3>lr>=1e-4", Range(K("lr"), N(1e-4), True, N(1e-3), False)),
        ("100>=epochs>0", Range(K("epochs"), N(0), False, N(100), True)),
        ("-inf<x<=.5", Range(K("x"), N(-math.inf), False, N(0.5), True)),
        ('"a"<=name<"b"', Range(K("name"), S("a", quoted=True), True, S("b", quoted=True), False)),
        ("a<=name<b", Range(K("name"), S("a"), True, S("b"), False)),
        ("1<=opt.lr<2", Range(K("opt", "lr"), N(1), True, N(2), False)),
    ],
)
def test_ranges(query: str, expected: Node) -> None:
    assert parse(query) == expected


def test_lists() -> None:
    assert parse("model=vit,convnext,eva02") == C("model", "=", S("vit"), S("convnext"), S("eva02"))
    assert parse('seed=1,"2",null,true') == C("seed", "=", N(1), S("2", quoted=True), NULL, TRUE)
    assert parse("model!=vit_*,resnet") == C("model", "!=", S("vit_*", glob=True), S("resnet"))


# -- keys ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("optimizer.lr", K("optimizer", "lr")),
        ("OPTIMIZER.BASE_LR", K("OPTIMIZER", "BASE_LR")),
        (".model", K("model", anchored=True)),
        (".model.name", K("model", "name", anchored=True)),
        ("`weird.key`", K("weird.key", literal=(True,))),
        (".`weird.key`", K("weird.key", literal=(True,), anchored=True)),
        ("a.`b.c`.d", K("a", "b.c", "d", literal=(False, True, False))),
        ("`a b=c`", K("a b=c", literal=(True,))),
        ("`and`", K("and", literal=(True,))),
        ("`back\\`tick`", K("back`tick", literal=(True,))),
        ("lr-x", K("lr-x")),
        ("lr0", K("lr0")),
        ("a/b:c", K("a/b:c")),
        ("$where", K("$where")),
        ("model.0", K("model", "0")),  # an all-digit segment is a mapping key, kept
        ("true", K("true")),  # in key position true/false/null are just keys
    ],
)
def test_keys(query: str, key: KeySpec) -> None:
    assert parse(query) == Exists(key)
    assert parse(query + "=1") == Compare(key, "=", (N(1),))


def test_parse_key_alone() -> None:
    """For --sort/--by KEY: one key, same syntax as in queries."""
    assert parse_key("optimizer.lr") == K("optimizer", "lr")
    assert parse_key(".a.`b c`") == K("a", "b c", literal=(False, True), anchored=True)
    for bad in ["", "a b", "lr<1", "and", '"x"', "a[0]"]:
        with pytest.raises(QuerySyntaxError):
            parse_key(bad)


def test_key_matching_through_the_parser() -> None:
    """The parsed key finds the leaves docs/query.md says it finds."""
    lr = parse("lr<1e-3").key  # type: ignore[union-attr]
    assert key_matches(lr, ("OPTIMIZER", "BASE_LR"))
    assert not key_matches(lr, ("lr_scheduler", "gamma"))
    weird = parse("`weird.key`=1").key  # type: ignore[union-attr]
    assert key_matches(weird, ("weird.key",)) and not key_matches(weird, ("weird", "key"))
    anchored = parse(".model.name").key  # type: ignore[union-attr]
    assert key_matches(anchored, ("model", "name")) and not key_matches(anchored, ("teacher", "model", "name"))


# -- errors --------------------------------------------------------------------------------------
ERRORS = [
    ("lr<", "   ^", "expected a value after '<'"),
    ("(a", "^", "unbalanced parenthesis: this '(' is never closed"),
    ("a)", " ^", "unbalanced parenthesis: this ')' has no matching '('"),
    ("=3", "^", "expected a key before '='"),
    ("lr<<3", "   ^", "expected a value after '<'"),
    ("model=vit,", "          ^", "expected a value after ','"),
    ("lr<true", "   ^^^^", "'<' compares numbers or strings, not true"),
    ("lr>=null", "    ^^^^", "'>=' compares numbers or strings, not null"),
    ("a~(", "  ^", "invalid regular expression"),
    ("a~[a-", "  ^", "invalid regular expression"),
    ("name='vit", "     ^^^^", "unterminated string: add the closing '"),
    ('name="vit', "     ^^^^", 'unterminated string: add the closing "'),
    ("and", "^^^", "expected a term before 'and'"),
    ("a and", "     ^", "expected a term after 'and'"),
    ("a or or b", "     ^^", "expected a term after 'or', found 'or'"),
    ("not", "   ^", "expected a term after 'not'"),
    ("()", " ^", "empty parentheses"),
    ("x<1,2", "   ^", "a list of values needs '=' or '!='"),
    ("x~a,b c", None, None),  # a comma is part of a bare regex: a{1,2} must work, so this one parses
    ("1<x>2", "   ^", "a range needs"),
    ("1=x<2", "   ^", "unexpected '<' after a value"),
    ("1<x<true", "    ^^^^", "compares numbers or strings"),
    ("1<x<b", "    ^", "both be numbers or both be strings"),
    ("1<x<2<3", "     ^", "unexpected '<' after a range"),
    ('"a"<x', "^^^", "a quoted string cannot be a key"),
    ('"a"', "^^^", "a quoted string cannot be a key"),
    (",a", "^", "unexpected ','"),
    ("a=b=c", "   ^", "unexpected '=' after a value: quote a value that contains it"),
    ("x=and", "  ^^^", "expected a value after '=' (quote 'and'"),
    ("a & b", "  ^", "a single '&' is not an operator: use '&&' or 'and'"),
    ("a | b", "  ^", "a single '|' is not an operator"),
    ("`open", "^^^^^", "unterminated backquoted key"),
    ("a..b", "  ^", "empty key segment"),
    ("a.", "  ^", "empty key segment"),
    (".", " ^", "empty key segment"),
    ("a.`b`c", "     ^", "a backquoted key segment must end"),
    ("a`b`", "^", "quote a whole key segment in backquotes"),
    ("x=`v`", "  ^^^", "backquotes are for keys"),
    ('model="vit"b', "           ^", "unexpected text right after a closing quote"),
    ('model=vit"b"', "         ^", "a quote inside a word"),
    ("OPTIMIZER[0].BASE_LR<1", "^^^^^^^^^^^^^^^^^^^^", "write 'OPTIMIZER.BASE_LR'"),
    ("a\x00b", "^", "control characters are not allowed in keys"),
]


@pytest.mark.parametrize(("query", "caret", "message"), ERRORS, ids=[repr(q) for q, _, _ in ERRORS])
def test_syntax_errors_point_at_the_bad_token(query: str, caret: str | None, message: str | None) -> None:
    if caret is None:
        parse(query)
        return
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    err = info.value
    assert isinstance(err, UsageError) and err.exit_code == 2
    lines = err.render().split("\n")
    assert lines[0] == query
    assert lines[1] == caret
    assert lines[2].startswith(f"query error at position {len(caret) - len(caret.lstrip()) + 1}: ")
    assert message in lines[2]
    assert "\n" not in str(err)


# -- injection: keys and values are data --------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("$where=1", C("$where", "=", N(1))),
        ("$where", E("$where")),
        ("a.$gt=1", C(K("a", "$gt"), "=", N(1))),
        ("x=$function", C("x", "=", S("$function"))),
        ('x="{\\"$gt\\": \\"\\"}"', C("x", "=", S('{"$gt": ""}', quoted=True))),
        ("name=\"'; DROP TABLE x; --\"", C("name", "=", S("'; DROP TABLE x; --", quoted=True))),
        ("x=1;DROP", C("x", "=", S("1;DROP"))),
        ("`$where`=this.a", C(K("$where", literal=(True,)), "=", S("this.a"))),
        ("x~.*'OR'1'='1", C("x", "~", S(".*'OR'1'='1"))),
    ],
)
def test_injection_attempts_are_plain_data(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize("query", ['{"$gt": ""}', "'; DROP TABLE x; --", "x=1' OR '1'='1", "a=1 OR 1=1 --'"])
def test_injection_attempts_that_do_not_parse_are_syntax_errors(query: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse(query)


# -- aliases -------------------------------------------------------------------------------------
def test_builtin_alias_groups_are_exactly_query_md() -> None:
    assert [list(g) for g in BUILTIN_ALIASES] == [
        ["lr", "learning_rate", "lr0"], ["bs", "batch_size"], ["wd", "weight_decay"],
        ["model", "arch", "architecture", "backbone"],
    ]


@pytest.mark.parametrize(
    ("query", "alternatives"),
    [
        ("lr<1", ("learning_rate", "lr0")),
        ("LR<1", ("learning_rate", "lr0")),
        ("learningRate<1", ("lr", "lr0")),
        ("learning-rate<1", ("lr", "lr0")),
        ("optimizer.lr<1", ("learning_rate", "lr0")),
        (".lr<1", ("learning_rate", "lr0")),
        ("backbone=vit", ("model", "arch", "architecture")),
        ("bs", ("batch_size",)),
        ("1<weight_decay<2", ("wd",)),
        ("`lr`<1", ()),  # literal segments are not widened
        ("lr.momentum<1", ()),  # only the last segment
        ("base_lr<1", ()),  # a key is an alias only when it is a member itself
        ("kind=run", ()),
    ],
)
def test_expand_aliases(query: str, alternatives: tuple[str, ...]) -> None:
    node = expand_aliases(parse(query))
    assert [k.last_alternatives for k in keys_of(node)] == [alternatives]
    assert compile_query(query) == node
    assert keys_of(compile_query(query, use_aliases=False))[0].last_alternatives == ()


def test_aliases_widen_matching() -> None:
    plain = parse("lr<1e-3").key  # type: ignore[union-attr]
    wide = compile_query("lr<1e-3").key  # type: ignore[union-attr]
    assert not key_matches(plain, ("optimizer", "learning_rate"))
    assert key_matches(wide, ("optimizer", "learning_rate")) and key_matches(wide, ("hyp", "lr0"))


def test_expand_aliases_walks_every_node_and_is_idempotent() -> None:
    node = compile_query("(lr<1 or !bs) not model=vit")
    assert [k.last_alternatives for k in keys_of(node)] == [
        ("learning_rate", "lr0"), ("batch_size",), ("arch", "architecture", "backbone"),
    ]
    assert expand_aliases(node) == node
    assert expand_aliases(node, enabled=False) == parse("(lr<1 or !bs) not model=vit")


def test_user_alias_groups_merge_with_builtins() -> None:
    groups = load_alias_groups([["lr", "base_lr"], ["epochs", "max_epochs", "MaxEpochs"], ["imgsz", "img_size"]])
    assert ["lr", "learning_rate", "lr0", "base_lr"] in groups
    assert ["epochs", "max_epochs"] in groups  # MaxEpochs is the same name as max_epochs
    assert compile_query("BASE_LR<1", groups).key.last_alternatives == (  # type: ignore[union-attr]
        "lr", "learning_rate", "lr0",
    )
    assert compile_query("imgsz=224", groups).key.last_alternatives == ("img_size",)  # type: ignore[union-attr]
    assert load_alias_groups(None) == [list(g) for g in BUILTIN_ALIASES]
    assert load_alias_groups([["bs", "wd"]]) == [["lr", "learning_rate", "lr0"], ["model", "arch", "architecture",
                                                  "backbone"], ["bs", "batch_size", "wd", "weight_decay"]]


def test_reserved_fields_are_never_widened() -> None:
    groups = load_alias_groups([["path", "dir"]])
    assert compile_query("path~x", groups).key.last_alternatives == ()  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["lr", [["lr", 3]], ["lr"], [["a.b", "c"]], [["", "c"]], {"lr": ["x"]}])
def test_bad_alias_settings_are_usage_errors(bad: object) -> None:
    with pytest.raises(UsageError):
        load_alias_groups(bad)


# -- to_text -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("lr < 1e-3  and model=vit", "lr<0.001 model=vit"),
        ("a && b || !c", "a b or !c"),
        ("not (a or b) c", "not (a or b) c"),
        ("(a or b) (c or d)", "(a or b) (c or d)"),
        ("1e-3>lr>=1e-4", "0.0001<=lr<0.001"),
        ("seed='42'", 'seed="42"'),
        ("x='a\"b'", 'x="a\\"b"'),
        ("x=1.0,2.5e10", "x=1,25000000000"),
        ("lr:ge:1e-20", "lr>=1e-20"),
        ("`a.b`.c", "`a.b`.c"),
        ("", ""),
    ],
)
def test_to_text_is_canonical(query: str, text: str) -> None:
    assert to_text(parse(query)) == text
    assert parse(text) == parse(query)


# hypothesis: generated ASTs print to text that parses back to the same AST
_BARE = "abcxyzABCZ019_-$/+@"
_KEYWORDS = {"and", "or", "not"}


def _not_number(w: str) -> bool:
    try:
        float(w)
    except ValueError:
        return w.lower() not in ("true", "false", "null")
    return False


bare_segment = st.text(_BARE, min_size=1, max_size=6).filter(lambda w: w.lower() not in _KEYWORDS)
literal_segment = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), min_size=1, max_size=6
)


@st.composite
def keys(draw: st.DrawFn) -> KeySpec:
    n = draw(st.integers(1, 3))
    lits = tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    segs = tuple(draw(literal_segment if lit else bare_segment) for lit in lits)
    return KeySpec(segs, lits if any(lits) else (), draw(st.booleans()))


numbers = st.floats(allow_nan=False).map(lambda x: Value("num", x))
quoted = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=8).map(
    lambda s: Value("str", s, quoted=True)
)
_SPELLED = re.compile(r":(lt|le|gt|ge|eq|ne|re|nre):", re.IGNORECASE)
bare_word = st.text(_BARE + ".:*?", min_size=1, max_size=8).filter(
    lambda w: _not_number(w) and w.lower() not in _KEYWORDS and not _SPELLED.search(w)
)
eq_values = st.one_of(
    numbers, quoted, st.sampled_from([TRUE, FALSE, NULL]),
    bare_word.map(lambda w: Value("str", w, glob="*" in w or "?" in w)),
)
order_values = st.one_of(numbers, quoted, bare_word.map(lambda w: Value("str", w)))
regexes = st.sampled_from(["^conv", "R-50", "(vit|conv)next", "a{1,3}", "[)(]x", "\\d+$", "a b", "'x'", "é.*"])
regex_values = st.one_of(
    regexes.filter(lambda r: " " not in r and not r.startswith("'")).map(lambda r: Value("str", r)),
    regexes.map(lambda r: Value("str", r, quoted=True)),
)


@st.composite
def terms(draw: st.DrawFn) -> Node:
    key = draw(keys())
    shape = draw(st.sampled_from(["exists", "absent", "eq", "order", "regex", "range"]))
    if shape == "exists":
        return Exists(key)
    if shape == "absent":
        return Not(Exists(key))
    if shape == "eq":
        return Compare(key, draw(st.sampled_from(["=", "!="])), tuple(draw(st.lists(eq_values, min_size=1, max_size=3))))
    if shape == "order":
        return Compare(key, draw(st.sampled_from(["<", "<=", ">", ">="])), (draw(order_values),))
    if shape == "regex":
        return Compare(key, draw(st.sampled_from(["~", "!~"])), (draw(regex_values),))
    low, high = draw(st.one_of(st.tuples(numbers, numbers), st.tuples(quoted, quoted)))
    return Range(key, low, draw(st.booleans()), high, draw(st.booleans()))


def _flatten(node: Node) -> Node:
    if isinstance(node, (And, Or)):
        out: list[Node] = []
        for item in map(_flatten, node.items):
            out.extend(item.items if type(item) is type(node) else (item,))  # type: ignore[union-attr]
        return type(node)(tuple(out))
    if isinstance(node, Not):
        return Not(_flatten(node.item))
    return node


queries = st.recursive(
    terms(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=6,
).map(_flatten)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries)
def test_to_text_round_trips_generated_asts(node: Node) -> None:
    text = to_text(node)
    assert parse(text) == node, text
    if not any(q in text for q in "'\"`"):  # as CLI arguments split at the spaces
        assert parse(text.split(" ")) == node


_PIECES = list("ab.x1e-3 ()=!<>~,'\"`&|*:lt\\") + ["and", "or", "not", ":lt:", "inf", "true"]
fuzz_text = st.lists(st.sampled_from(_PIECES), max_size=14).map("".join)


@settings(max_examples=400, deadline=None)
@given(fuzz_text)
def test_any_text_parses_or_raises_a_pointed_syntax_error(query: str) -> None:
    try:
        node = parse(query)
    except QuerySyntaxError as err:
        assert 0 <= err.pos <= len(query) and err.query == query
        assert err.render().split("\n")[0] == query
        return
    assert parse(to_text(node)) == node


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(list("ab1 =<~(),'\"!") + ["or"]), max_size=5).map("".join), max_size=5))
def test_any_argv_parses_or_raises_a_syntax_error(args: list[str]) -> None:
    try:
        parse(args)
    except QuerySyntaxError as err:
        assert 0 <= err.pos <= len(" ".join(args))


def test_tokens_carry_positions() -> None:
    toks = tokenize("lr:lt:1e-3 (a)")
    assert [(t.kind, t.pos, t.value) for t in toks] == [
        ("WORD", 0, "lr"), ("OP", 2, "<"), ("WORD", 6, "1e-3"), ("LPAREN", 11, "("), ("WORD", 12, "a"),
        ("RPAREN", 13, ")"),
    ]


def test_star_key_asks_for_every_suffix_match():
    from ednaquery.query import to_text
    from ednaquery.query.ast import Compare, Not

    node = parse("*lr<1e-4")
    assert isinstance(node, Compare) and node.key.every and node.key.segments == ("lr",)
    assert not parse("lr<1e-4").key.every
    assert isinstance(parse("!*optimizer.lr"), Not)
    for text in ("*lr<0.0001", "!*lr", "*optimizer.lr=0.001", "1e-05<*lr<0.001"):
        assert to_text(parse(text)) == text and parse(to_text(parse(text))) == parse(text)
    for bad in ("*.lr", "**lr", "*"):
        with pytest.raises(QuerySyntaxError, match="'\\*' goes right before a key"):
            parse(bad + "<1")


def test_nesting_is_limited_with_a_one_line_error():
    with pytest.raises(QuerySyntaxError, match="nests too deeply"):
        parse("(" * 3000 + "lr" + ")" * 3000)
