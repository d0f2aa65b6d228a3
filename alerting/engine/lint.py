"""Warnings for rules that load but are probably not what the author meant.

A rule can be valid and still never fire: a field path DI does not send (``sucess``,
``initated_by.email``), an ``event_type`` no event has, a summary that reads a group key
the rule does not produce (it renders empty), a test case whose events match none of the
selections (it fails, or passes for the wrong reason). The loader cannot refuse these
(DI adds fields; a test may be a deliberate near miss), so ``alerting validate`` reports
them as warnings at the ``file:line:col`` of the key or value at fault.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jinja2
from jinja2 import nodes

from alerting.engine.rule import AGGREGATION_KEYS, CompiledRule, TestEventError
from alerting.engine.schema import DiSchema, di_schema
from alerting.engine.testing import case_events
from alerting.errors import Problem
from alerting.jinja_env import make_environment
from alerting.yamlfile import PathKey, YamlDocument, suggest

_ENV = make_environment()
_EXACT_MODIFIERS = frozenset({"", "cased", "all"})
_PATTERN_MODIFIERS = frozenset({"contains", "startswith", "endswith"})


def rule_warnings(
    rule: CompiledRule, doc: YamlDocument, schema: DiSchema | None = None
) -> list[Problem]:
    """Every warning for one loaded rule, located in ``doc`` (its file, parsed again)."""
    schema = schema or di_schema()
    data = doc.data if isinstance(doc.data, dict) else {}
    out: list[Problem] = []
    logsource = data.get("logsource")
    product = logsource.get("product") if isinstance(logsource, dict) else None
    if isinstance(product, str) and product.lower() != "jumpcloud":
        # Another product's field names: one warning for the rule, not one per field.
        out.append(
            doc.problem(
                ("logsource", "product"),
                f"logsource product {product!r}: this service reads JumpCloud Directory "
                "Insights events only, so the rule's fields (theirs, not DI's) never match; "
                "rewrite it for DI's fields (logsource product: jumpcloud)",
            )
        )
    else:
        out.extend(_detection_warnings(data.get("detection"), doc, schema))
        out.extend(_path_warnings(data, doc, schema))
    out.extend(_summary_warnings(rule, doc, schema))
    out.extend(_test_warnings(rule, doc, schema))
    return sorted(out, key=lambda p: (p.location.line or 0, p.location.col or 0))


def rule_document(rule: CompiledRule, docs: list[YamlDocument]) -> YamlDocument | None:
    """The document of a (possibly multi-document) file that defines ``rule``."""
    for doc in docs:
        data = doc.data if isinstance(doc.data, dict) else {}
        if rule.id in (data.get("name"), str(data.get("id", "")).lower()):
            return doc
    return docs[0] if len(docs) == 1 else None


# --------------------------------------------------------------------------- detection


def _selection_items(body: Any, where: PathKey) -> Iterator[tuple[str, Any, PathKey]]:
    """(``field|modifiers`` key, value, path of the key) of a selection's mappings."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield str(key), value, (*where, key)
    elif isinstance(body, list):
        for i, item in enumerate(body):
            if isinstance(item, dict):
                yield from _selection_items(item, (*where, i))


def _detection_warnings(detection: Any, doc: YamlDocument, schema: DiSchema) -> list[Problem]:
    if not isinstance(detection, dict):
        return []
    out: list[Problem] = []
    for name, body in detection.items():
        if name == "condition":
            continue
        for key, value, where in _selection_items(body, ("detection", name)):
            field, *modifiers = key.split("|")
            if not field:
                continue  # a keyword selection has no field to check
            if not schema.knows_field(field):
                out.append(
                    doc.problem(
                        where,
                        f"field {field!r} is not a DI event field{schema.field_hint(field)}: "
                        "this selection never matches (check the spelling, or ignore this "
                        "if DI sends it now)",
                        key=True,
                    )
                )
            elif field == "event_type":
                out.extend(_event_type_warnings(value, set(modifiers), where, doc, schema))
    return out


def _event_type_warnings(
    value: Any, modifiers: set[str], where: PathKey, doc: YamlDocument, schema: DiSchema
) -> list[Problem]:
    if modifiers - _EXACT_MODIFIERS - _PATTERN_MODIFIERS:
        return []  # a regex, a comparison, exists: nothing to compare by name
    values = value if isinstance(value, list) else [value]
    out: list[Problem] = []
    for i, item in enumerate(values):
        if not isinstance(item, str):
            continue
        pattern = item
        if "contains" in modifiers:
            pattern = f"*{item}*"
        elif "startswith" in modifiers:
            pattern = f"{item}*"
        elif "endswith" in modifiers:
            pattern = f"*{item}"
        wild = "*" in pattern or "?" in pattern
        known = schema.matches_some_event_type(pattern) if wild else schema.knows_event_type(item)
        if not known:
            at = (*where, i) if isinstance(value, list) else where
            hint = "" if wild else schema.event_type_hint(item)
            out.append(
                doc.problem(
                    at,
                    f"event_type {item!r} is not a known DI event type{hint}: no event "
                    "matches it (check the spelling against the DI event list)",
                )
            )
    return out


def _path_warnings(data: dict[str, Any], doc: YamlDocument, schema: DiSchema) -> list[Problem]:
    """``by``, the aggregation's field / latitude / longitude, ``fields``, and a Sigma
    correlation's ``group-by`` and ``condition.field``."""
    checks: list[tuple[str, PathKey]] = []
    for key in AGGREGATION_KEYS:
        spec = data.get(key)
        if not isinstance(spec, dict):
            continue
        checks.extend(_listed(spec.get("by"), (key, "by")))
        for attr in ("field", "latitude", "longitude"):
            if isinstance(spec.get(attr), str):
                checks.append((spec[attr], (key, attr)))
    checks.extend(_listed(data.get("by"), ("by",)))
    checks.extend(_listed(data.get("fields"), ("fields",)))
    correlation = data.get("correlation")
    if isinstance(correlation, dict):  # a Sigma correlation document
        checks.extend(_listed(correlation.get("group-by"), ("correlation", "group-by")))
        condition = correlation.get("condition")
        if isinstance(condition, dict) and isinstance(condition.get("field"), str):
            checks.append((condition["field"], ("correlation", "condition", "field")))
    return [
        doc.problem(
            where,
            f"field {path!r} is not a DI event field{schema.field_hint(path)}: it is always empty",
        )
        for path, where in checks
        if not schema.knows_field(path)
    ]


def _listed(value: Any, where: PathKey) -> list[tuple[str, PathKey]]:
    if isinstance(value, str):
        return [(value, where)]
    if isinstance(value, list):
        return [(v, (*where, i)) for i, v in enumerate(value) if isinstance(v, str)]
    return []


# --------------------------------------------------------------------------- summary


def _summary_warnings(rule: CompiledRule, doc: YamlDocument, schema: DiSchema) -> list[Problem]:
    text = rule.model.summary
    if text is None:
        return []
    try:
        ast = _ENV.parse(text)
    except jinja2.TemplateSyntaxError:
        return []  # the loader reported it
    produced = [p for p, _ in rule.group_by]
    out: list[Problem] = []
    for key in sorted(set(_group_reads(ast))):
        if key in produced:
            continue
        if produced:
            why = f"the rule groups by {', '.join(produced)}{suggest(key, produced)}"
        else:
            why = "the rule has no group key (add 'by' to the rule or its aggregation)"
        out.append(
            doc.problem(("summary",), f"summary reads group[{key!r}], which is always empty: {why}")
        )
    for path in sorted(set(_values_reads(ast))):
        if not schema.knows_field(path):
            out.append(
                doc.problem(
                    ("summary",),
                    f"summary reads values({path!r}), but {path!r} is not a DI event field"
                    f"{schema.field_hint(path)}",
                )
            )
    return out


def _group_reads(ast: nodes.Template) -> Iterator[str]:
    """The constant keys read of ``group``: ``group['a.b']``, ``group.x``, ``group.get('y')``."""
    for item in ast.find_all(nodes.Getitem):
        arg = item.arg
        if _is_group(item.node) and isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            yield arg.value
    for attr in ast.find_all(nodes.Getattr):
        if _is_group(attr.node) and attr.attr not in ("get", "items", "keys", "values"):
            yield attr.attr
    for call in ast.find_all(nodes.Call):
        callee = call.node
        if (
            isinstance(callee, nodes.Getattr)
            and callee.attr == "get"
            and isinstance(callee.node, nodes.Name)
            and callee.node.name == "group"
            and call.args
            and isinstance(call.args[0], nodes.Const)
            and isinstance(call.args[0].value, str)
        ):
            yield call.args[0].value


def _is_group(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "group"


def _values_reads(ast: nodes.Template) -> Iterator[str]:
    for call in ast.find_all(nodes.Call):
        callee = call.node
        if isinstance(callee, nodes.Name) and callee.name == "values" and call.args:
            arg = call.args[0]
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value:
                yield arg.value


# --------------------------------------------------------------------------- tests


def _test_warnings(rule: CompiledRule, doc: YamlDocument, schema: DiSchema) -> list[Problem]:
    """A case whose events match no selection at all.

    Expecting alerts, it cannot pass: say why before ``alerting test`` fails. Expecting
    none, it passes whatever the detection says, which is fine for a deliberate near
    miss; it is flagged only when an event also names a field DI does not send, the
    usual reason a quiet test is quiet by accident (``sucess: false``).
    """
    out: list[Problem] = []
    selections = rule.selections
    if not selections:
        return out  # nothing of its own to match (a correlation over other rules)
    for i, case in enumerate(rule.tests):
        try:
            events = case_events(rule, case)
        except TestEventError:
            continue  # the loader reported it
        if not events or any(
            predicate(event.raw) for event in events for predicate in selections.values()
        ):
            continue
        expected, _ = case.expect.expectations()
        names = ", ".join(selections)
        if expected > 0:
            out.append(
                doc.problem(
                    ("tests", i, "events"),
                    f"test {case.name!r} expects {expected} alert(s) but none of its "
                    f"{len(events)} events matches a selection ({names}): check their "
                    "field names and values against the detection",
                )
            )
            continue
        unknown = sorted(
            {p for e in events for p in _event_paths(e.raw) if not schema.knows_field(p)}
        )
        if unknown:
            out.append(
                doc.problem(
                    ("tests", i, "events"),
                    f"test {case.name!r} passes only because none of its events matches a "
                    f"selection ({names}), and they name fields DI does not send: "
                    f"{', '.join(repr(u) + schema.field_hint(u) for u in unknown[:3])}",
                )
            )
    return out


def _event_paths(raw: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in raw.items():
        if not prefix and key in ("id", "timestamp"):
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _event_paths(value, path)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                yield from _event_paths(item, path)
        else:
            yield path
