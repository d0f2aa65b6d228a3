"""The ``condition:`` language: parsed once by recursive descent, compiled into a closure.

Grammar (precedence from loosest to tightest: ``or``, ``and``, ``not``)::

    expr    := and_expr ("or" and_expr)*
    and_expr:= not_expr ("and" not_expr)*
    not_expr:= "not" not_expr | primary
    primary := "(" expr ")" | ("1" | "any" | "all") "of" (PATTERN | "them") | NAME

``PATTERN`` may hold ``*`` and ``?`` wildcards; ``them`` means every selection whose name
does not start with ``_``. Keywords are case-insensitive. Nothing is ``eval``-ed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerting.yamlfile import suggest

Predicate = Callable[[dict[str, Any]], bool]

KEYWORDS = frozenset({"and", "or", "not", "of", "them", "1", "any", "all"})


class ConditionError(ValueError):
    """A condition that cannot be parsed; ``offset`` is the 0-based column of the token."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Ref:
    name: str


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Ref | Not | And | Or

_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<word>[A-Za-z0-9_\-*?.]+)|(?P<bad>\S))")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "(", ")", "word", "end"
    text: str
    offset: int

    @property
    def lower(self) -> str:
        return self.text.lower()


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while True:
        m = _TOKEN.match(text, pos)
        if m is None:
            break
        pos = m.end()
        if m.group("paren"):
            toks.append(_Tok(m.group("paren"), m.group("paren"), m.start("paren")))
        elif m.group("word"):
            toks.append(_Tok("word", m.group("word"), m.start("word")))
        else:
            ch = m.group("bad")
            if ch == "|":
                raise ConditionError(
                    "'|' starts a Sigma 1 aggregation (count(), near), which Sigma 2 "
                    "replaced: write a correlation rule (event_count, value_count) instead",
                    m.start("bad"),
                )
            raise ConditionError(
                f"unexpected character {ch!r}: use selection names, and, or, not, "
                "parentheses, '1 of x*' or 'all of x*'",
                m.start("bad"),
            )
    toks.append(_Tok("end", "", len(text.rstrip())))
    return toks


class _Parser:
    def __init__(self, text: str, names: Sequence[str]) -> None:
        self.text = text
        self.names = list(names)
        self.toks = _tokenize(text)
        self.i = 0
        self.used: set[str] = set()

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise ConditionError("the condition is empty: name at least one selection", 0)
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            if tok.kind == ")":
                raise ConditionError("unbalanced ')': no '(' before it", tok.offset)
            raise ConditionError(
                f"unexpected {tok.text!r}: expected 'and' or 'or' before it", tok.offset
            )
        return node

    def expr(self) -> Node:
        children = [self.and_expr()]
        while self.peek().kind == "word" and self.peek().lower == "or":
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.not_expr()]
        while self.peek().kind == "word" and self.peek().lower == "and":
            self.take()
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else And(tuple(children))

    def not_expr(self) -> Node:
        tok = self.peek()
        if tok.kind == "word" and tok.lower == "not":
            self.take()
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "(":
            node = self.expr()
            close = self.peek()
            if close.kind != ")":
                if close.kind == "end":
                    raise ConditionError("missing ')' to close this '('", tok.offset)
                raise ConditionError(
                    f"unexpected {close.text!r}: expected ')' or 'and'/'or'", close.offset
                )
            self.take()
            return node
        if tok.kind == "end":
            raise ConditionError(
                "the condition ends too early: expected a selection name, 'not' or '('",
                tok.offset,
            )
        if tok.kind == ")":
            raise ConditionError(
                "unexpected ')': expected a selection name, 'not' or '('", tok.offset
            )
        word = tok.lower
        nxt = self.peek()
        if word in ("1", "any", "all") and nxt.kind == "word" and nxt.lower == "of":
            self.take()
            return self.quantified(word, tok)
        if word in ("and", "or", "of", "them"):
            raise ConditionError(
                f"unexpected {tok.text!r}: expected a selection name, 'not' or '('", tok.offset
            )
        if any(c in tok.text for c in "*?"):
            raise ConditionError(
                f"wildcard {tok.text!r} needs a quantifier: write '1 of {tok.text}' or "
                f"'all of {tok.text}'",
                tok.offset,
            )
        if tok.text not in self.names:
            hint = suggest(tok.text, self.names)
            if not hint and self.names:
                hint = f" (selections: {', '.join(self.names)})"
            raise ConditionError(f"unknown selection {tok.text!r}{hint}", tok.offset)
        self.used.add(tok.text)
        return Ref(tok.text)

    def quantified(self, quantifier: str, start: _Tok) -> Node:
        target = self.take()
        if target.kind != "word":
            raise ConditionError(
                f"expected a selection pattern or 'them' after '{start.text} of'",
                target.offset,
            )
        if target.lower == "them":
            matched = [n for n in self.names if not n.startswith("_")]
            if not matched:
                raise ConditionError("'them' matches no selection", target.offset)
        else:
            matched = [n for n in self.names if fnmatch.fnmatchcase(n, target.text)]
            if not matched:
                hint = suggest(target.text, self.names)
                raise ConditionError(
                    f"pattern {target.text!r} matches no selection{hint}", target.offset
                )
        self.used.update(matched)
        refs = tuple(Ref(n) for n in matched)
        if len(refs) == 1:
            return refs[0]
        return Or(refs) if quantifier in ("1", "any") else And(refs)


@dataclass(frozen=True, slots=True)
class ParsedCondition:
    """A parsed condition and the selection names it refers to."""

    text: str
    tree: Node
    used: frozenset[str]


def parse_condition(text: str, names: Sequence[str]) -> ParsedCondition:
    """Parse ``text`` against the defined selection ``names``; raises ``ConditionError``."""
    if not isinstance(text, str):
        raise ConditionError(
            f"the condition must be text such as 'selection and not filter', got {text!r}", 0
        )
    parser = _Parser(text, names)
    tree = parser.parse()
    return ParsedCondition(text, tree, frozenset(parser.used))


def compile_tree(node: Node, selections: Mapping[str, Predicate]) -> Predicate:
    """Turn a tree into nested closures over the compiled selection predicates."""
    if isinstance(node, Ref):
        return selections[node.name]
    if isinstance(node, Not):
        inner = compile_tree(node.child, selections)

        def not_(raw: dict[str, Any]) -> bool:
            return not inner(raw)

        return not_
    preds = tuple(compile_tree(c, selections) for c in node.children)
    if isinstance(node, And):
        if len(preds) == 2:
            a, b = preds

            def and2(raw: dict[str, Any]) -> bool:
                return a(raw) and b(raw)

            return and2

        def and_n(raw: dict[str, Any]) -> bool:
            for p in preds:  # noqa: SIM110 - hot path: no generator per event
                if not p(raw):
                    return False
            return True

        return and_n
    if len(preds) == 2:
        a, b = preds

        def or2(raw: dict[str, Any]) -> bool:
            return a(raw) or b(raw)

        return or2

    def or_n(raw: dict[str, Any]) -> bool:
        for p in preds:  # noqa: SIM110 - hot path: no generator per event
            if p(raw):
                return True
        return False

    return or_n


def specialize_tree(node: Node, residual: Callable[[str], Predicate | bool]) -> Predicate | bool:
    """``compile_tree`` over selections partly evaluated (``residual(name)``): folds the
    selections already decided to ``True``/``False``; returns a constant when the whole
    condition is decided, else a closure over what is left. Same truth table, less work.
    """
    if isinstance(node, Ref):
        return residual(node.name)
    if isinstance(node, Not):
        inner = specialize_tree(node.child, residual)
        if isinstance(inner, bool):
            return not inner
        return compile_tree(Not(Ref("_")), {"_": inner})
    decisive = isinstance(node, Or)  # the constant that decides the whole node
    left: list[Predicate] = []
    for child in node.children:
        part = specialize_tree(child, residual)
        if part is True or part is False:
            if part is decisive:
                return decisive
            continue  # the neutral constant: drop it
        left.append(part)
    if not left:
        return not decisive
    if len(left) == 1:
        return left[0]
    names = {f"_{i}": pred for i, pred in enumerate(left)}
    refs = tuple(Ref(name) for name in names)
    return compile_tree(Or(refs) if decisive else And(refs), names)


def required_event_types(
    node: Node, selection_types: Mapping[str, frozenset[str] | None]
) -> frozenset[str] | None:
    """The finite set of event types an event must have to satisfy ``node``, if any.

    Only positive constraints count: a ``not`` constrains nothing, an ``or`` constrains
    only when every branch does, an ``and`` when any branch does. ``None`` = unconstrained.
    """
    if isinstance(node, Ref):
        return selection_types.get(node.name)
    if isinstance(node, Not):
        return None
    sets = [required_event_types(c, selection_types) for c in node.children]
    if isinstance(node, And):
        known = [s for s in sets if s is not None]
        if not known:
            return None
        result = known[0]
        for s in known[1:]:
            result = result & s
        return result
    if any(s is None for s in sets):
        return None
    union: set[str] = set()
    for branch in sets:
        union |= branch or frozenset()
    return frozenset(union)


def evaluate(node: Node, truth: Mapping[str, bool]) -> bool:
    """Evaluate a tree over known selection results (for tests and explanations)."""
    if isinstance(node, Ref):
        return truth[node.name]
    if isinstance(node, Not):
        return not evaluate(node.child, truth)
    if isinstance(node, And):
        return all(evaluate(c, truth) for c in node.children)
    return any(evaluate(c, truth) for c in node.children)
