"""The condition language: precedence, quantifiers, and errors that point at the token."""

from __future__ import annotations

import itertools
import operator

import pytest

from alerting.engine.conditions import (
    ConditionError,
    compile_tree,
    evaluate,
    parse_condition,
    required_event_types,
)

NAMES = ["a", "b", "c", "sel_x", "sel_y", "filter", "_helper"]


def truth_tables(names):
    for values in itertools.product([False, True], repeat=len(names)):
        yield dict(zip(names, values, strict=True))


# (condition, the same condition as a Python boolean over the names)
CASES = [
    ("a", lambda t: t["a"]),
    ("not a", lambda t: not t["a"]),
    ("a and b", lambda t: t["a"] and t["b"]),
    ("a or b and c", lambda t: t["a"] or (t["b"] and t["c"])),  # and binds tighter
    ("a and b or c", lambda t: (t["a"] and t["b"]) or t["c"]),
    ("not a and b", lambda t: (not t["a"]) and t["b"]),  # not binds tighter than and
    ("not a or b", lambda t: (not t["a"]) or t["b"]),
    ("not (a or b)", lambda t: not (t["a"] or t["b"])),
    ("(a or b) and c", lambda t: (t["a"] or t["b"]) and t["c"]),
    ("a and (b or not c)", lambda t: t["a"] and (t["b"] or not t["c"])),
    ("not not a", lambda t: t["a"]),
    ("((a))", lambda t: t["a"]),
    ("1 of sel_*", lambda t: t["sel_x"] or t["sel_y"]),
    ("any of sel_*", lambda t: t["sel_x"] or t["sel_y"]),
    ("all of sel_*", lambda t: t["sel_x"] and t["sel_y"]),
    ("all of sel_* and not filter", lambda t: t["sel_x"] and t["sel_y"] and not t["filter"]),
    ("1 of sel_? or a", lambda t: t["sel_x"] or t["sel_y"] or t["a"]),
    # `them` skips names starting with "_"
    (
        "1 of them",
        lambda t: any(t[n] for n in ("a", "b", "c", "sel_x", "sel_y", "filter")),
    ),
    (
        "all of them",
        lambda t: all(t[n] for n in ("a", "b", "c", "sel_x", "sel_y", "filter")),
    ),
    ("a AND NOT b", lambda t: t["a"] and not t["b"]),  # keywords in any case
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_condition_semantics_match_python_boolean_logic(text, expected):
    parsed = parse_condition(text, NAMES)
    for truth in truth_tables(NAMES):
        assert evaluate(parsed.tree, truth) == expected(truth), truth


def test_compiled_closure_agrees_with_tree_evaluation():
    parsed = parse_condition("(a or sel_x) and not (b and c)", NAMES)
    preds = {n: operator.itemgetter(n) for n in NAMES}
    fn = compile_tree(parsed.tree, preds)
    for truth in truth_tables(NAMES):
        assert fn(truth) == evaluate(parsed.tree, truth)


def test_used_names_are_reported():
    parsed = parse_condition("a and 1 of sel_*", NAMES)
    assert parsed.used == {"a", "sel_x", "sel_y"}


# (condition, message fragment, 0-based column of the bad token)
ERRORS = [
    ("", "empty", 0),
    ("a and", "ends too early", 5),
    ("a b", "unexpected 'b'", 2),
    ("a and or b", "unexpected 'or'", 6),
    ("(a and b", "missing ')'", 0),
    ("a and b)", "unbalanced ')'", 7),
    ("a and bb", "unknown selection 'bb' (did you mean 'b'?)", 6),
    ("a and filtre", "(did you mean 'filter'?)", 6),
    ("1 of nope_*", "pattern 'nope_*' matches no selection", 5),
    ("sel_*", "needs a quantifier", 0),
    ("a & b", "unexpected character '&'", 2),
    ("not", "ends too early", 3),
    ("1 of (a)", "expected a selection pattern", 5),
]


@pytest.mark.parametrize(
    ("text", "fragment", "offset"), ERRORS, ids=[e[0] or "empty" for e in ERRORS]
)
def test_condition_errors_name_the_problem_and_column(text, fragment, offset):
    with pytest.raises(ConditionError) as info:
        parse_condition(text, NAMES)
    assert fragment in info.value.message
    assert info.value.offset == offset


def test_index_types_are_positive_constraints_only():
    types = {"a": frozenset({"x", "y"}), "b": frozenset({"y", "z"}), "c": None}
    names = list(types)

    def req(text):
        return required_event_types(parse_condition(text, names).tree, types)

    assert req("a") == {"x", "y"}
    assert req("a and b") == {"y"}  # intersection
    assert req("a and c") == {"x", "y"}  # one constrained branch suffices
    assert req("a or b") == {"x", "y", "z"}
    assert req("a or c") is None  # c accepts anything
    assert req("not a") is None  # negation constrains nothing
    assert req("c and not a") is None
