"""Sigma's rules over rules: filters and correlations, resolved across every file.

A filter ANDs its condition into the rules it names; a correlation runs on the engine's
windows over the rules it names (docs/sigma.md: event_count = threshold, value_count =
distinct, value_sum = sum, temporal = distinct over the rules matched,
temporal_ordered = sequence). Both find rules by ``name``, ``id`` or rule id.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alerting.durations import format_duration_ns, td_ns
from alerting.engine.builder import RuleBuilder, detection_specializer
from alerting.engine.conditions import (
    compile_tree,
)
from alerting.engine.fields import MISSING, Getter
from alerting.engine.matchers import (
    NO_CONTEXT,
    Predicate,
    Residual,
    SelectionContext,
    Specializer,
    any_of,
    or_specializer,
)
from alerting.engine.rule import (
    CompiledRule,
    CorrelationModel,
    FilterModel,
)
from alerting.engine.types import (
    AggregationSpec,
    DistinctSpec,
    SequenceSpec,
    SequenceStep,
    SumSpec,
    TemporalSpec,
    ThresholdSpec,
)
from alerting.errors import Problem, ValidationFailed
from alerting.yamlfile import PathKey, YamlDocument, suggest, validate


class RuleIndex:
    """Detection rules by every name a correlation or filter may use for them."""

    def __init__(self, rules: list[CompiledRule]) -> None:
        self.rules = list(rules)  # detection rules (filters apply to these)
        self.by_ref: dict[str, CompiledRule] = {}
        for rule in rules:
            self.add(rule)

    def add(self, rule: CompiledRule) -> None:
        for ref in (rule.id, rule.meta.name, rule.meta.id):
            if ref:
                self.by_ref.setdefault(ref.lower(), rule)

    def get(self, ref: Any) -> CompiledRule | None:
        return self.by_ref.get(str(ref).lower())

    def hint(self, ref: Any) -> str:
        return suggest(str(ref), [r.id for r in self.rules])


def apply_filter(
    path: Path,
    doc: YamlDocument,
    index: RuleIndex,
    ctx: SelectionContext,
    problems: list[Problem],
) -> None:
    """A Sigma filter: ``(rule condition) and (filter condition)`` for each rule it names
    (or every rule its logsource covers, for ``rules: any``), as pySigma applies them."""
    try:
        model = validate(FilterModel, doc)
    except ValidationFailed as exc:
        problems.extend(exc.problems)
        return
    body = dict(model.filter)
    refs = body.pop("rules", None)
    builder = RuleBuilder(path, doc, problems, ctx)
    before = len(problems)
    if refs is None:
        builder.error(("filter",), "filter needs rules: the rules it tunes (names or ids, or any)")
    if "condition" not in body:
        builder.error(("filter",), "filter needs a condition, e.g. condition: not selection")
    compiled = builder.detection(body, {}, root="filter")
    if len(problems) > before or compiled.tree is None:
        return
    targets: list[CompiledRule] = []
    if isinstance(refs, str) and refs.lower() in ("any", "all"):
        targets = [r for r in index.rules if model.logsource.covers(r.logsource)]
    else:
        items = refs if isinstance(refs, list) else [refs]
        for i, ref in enumerate(items):
            where: PathKey = (
                ("filter", "rules", i) if isinstance(refs, list) else ("filter", "rules")
            )
            rule = index.get(ref)
            if rule is None:
                builder.error(where, f"filter names unknown rule {ref!r}{index.hint(ref)}")
                continue
            if not model.logsource.covers(rule.logsource):
                builder.error(
                    where,
                    f"filter's logsource does not cover rule {rule.id!r} "
                    f"({rule.logsource.model_dump(exclude_none=True)}): widen the filter's "
                    "logsource or drop the rule from it",
                )
                continue
            targets.append(rule)
    fpred = compile_tree(compiled.tree, compiled.selections)
    fspec = detection_specializer(compiled.tree, compiled.selections, compiled.specializers)
    for rule in targets:
        rule.condition = _and_predicates(rule.condition, fpred)
        rule.specialize = _and_specializers(rule.specialize, rule.condition, fspec)
        rule.condition_text = f"({rule.condition_text}) and ({compiled.condition_text})"
        rule.detections = (*rule.detections, body)
        rule.filters.append(model.title)


def _and_predicates(a: Predicate, b: Predicate) -> Predicate:
    def both(raw: dict[str, Any]) -> bool:
        return a(raw) and b(raw)

    return both


def _and_specializers(
    first: Specializer | None, whole: Predicate, second: Specializer
) -> Specializer | None:
    if first is None:
        return None

    def specialize(known: Mapping[str, Any]) -> Residual:
        a = first(known)
        if a is False:
            return False
        b = second(known)
        if b is False:
            return False
        if a is True:
            return b
        if b is True:
            return a
        return _and_predicates(a, b)

    return specialize


# An average or a percentile over a window is not reached for good the way a count or a
# sum is: judging it needs the window to close, which event-driven firing does not do.
_SUPPORTED_LATER = ("value_avg", "value_percentile")


def build_correlation(
    path: Path,
    doc: YamlDocument,
    model: CorrelationModel,
    index: RuleIndex,
    problems: list[Problem],
) -> CompiledRule | None:
    """A Sigma correlation rule as one of the engine's aggregations over the rules it
    names: event_count = threshold, value_count = distinct, temporal = distinct over
    the rules matched, temporal_ordered = sequence (one step per rule)."""
    builder = RuleBuilder(path, doc, problems, NO_CONTEXT)
    before = len(problems)
    spec = model.correlation
    if spec.type in _SUPPORTED_LATER:
        builder.error(
            ("correlation", "type"),
            f"correlation type {spec.type!r} is not supported yet (event_count, value_count, "
            "value_sum, temporal and temporal_ordered are): rewrite it with one of those, or "
            "move the file out of the rules directories",
        )
        return None
    refs: list[CompiledRule] = []
    for i, ref in enumerate(spec.rules):
        where: PathKey = ("correlation", "rules", i)
        rule = index.get(ref)
        if rule is None:
            builder.error(where, f"correlation names unknown rule {ref!r}{index.hint(ref)}")
            continue
        if isinstance(rule.model, CorrelationModel):
            _check_chain(builder, where, model, rule)
        refs.append(rule)
    if len(problems) > before:
        return None

    group_by: list[tuple[str, Getter]] = []
    for i, name in enumerate(spec.group_by):
        where = ("correlation", "group-by", i)
        if name in spec.aliases:
            getter = _alias_getter(builder, spec.aliases[name], refs, index, name)
            if getter is not None:
                group_by.append((name, getter))
            continue
        found = builder.field_path(name, where)
        if found is not None:
            group_by.append((name, found))
    for alias in spec.aliases:
        if alias not in spec.group_by:
            builder.error(
                ("correlation", "aliases", alias),
                f"alias {alias!r} is not used in group-by: add it there or remove it",
                key=True,
            )

    by = [name for name, _getter in group_by]
    count = _count(builder, spec.condition, spec.type, len(refs))
    aggregation: AggregationSpec | None = None
    steps: tuple[Predicate, ...] = ()
    ids = [r.id for r in refs]
    if count is not None:
        if spec.type == "event_count":
            aggregation = ThresholdSpec(count=count, within=spec.timespan, by=by)
        elif spec.type == "value_count":
            field = (spec.condition or {}).get("field")
            if not isinstance(field, str):
                builder.error(
                    ("correlation", "condition"),
                    "value_count needs the field whose distinct values it counts: "
                    "condition: {field: initiated_by.username, gte: 10}",
                )
            elif count < 2:
                builder.error(
                    ("correlation", "condition"),
                    "value_count counts two or more distinct values: use event_count for one",
                )
            elif builder.field_path(field, ("correlation", "condition", "field")) is not None:
                aggregation = DistinctSpec(field=field, count=count, within=spec.timespan, by=by)
        elif spec.type == "value_sum":
            field = (spec.condition or {}).get("field")
            if not isinstance(field, str):
                builder.error(
                    ("correlation", "condition"),
                    "value_sum needs the numeric field it adds up: "
                    "condition: {field: bytes_out, gt: 1000000}",
                )
            elif builder.field_path(field, ("correlation", "condition", "field")) is not None:
                op = "gt" if "gt" in (spec.condition or {}) else "gte"
                aggregation = SumSpec(
                    field=field,
                    total=float((spec.condition or {})[op]),
                    strict=op == "gt",
                    within=spec.timespan,
                    by=by,
                )
        elif spec.type == "temporal":
            aggregation = TemporalSpec(rules=ids, count=count, within=spec.timespan, by=by)
            steps = tuple(r.condition for r in refs)
        else:
            aggregation = SequenceSpec(
                within=spec.timespan,
                by=by,
                steps=[
                    SequenceStep(
                        selection=r.id,
                        count=r.aggregation.count
                        if isinstance(r.aggregation, ThresholdSpec)
                        else 1,
                    )
                    for r in refs
                ],
            )
            steps = tuple(r.condition for r in refs)
    for i, p in enumerate(model.fields):
        builder.field_path(p, ("fields", i))
    summary, needs = builder.summary(model.summary)
    builder.check_tests(model)
    if len(problems) > before or aggregation is None:
        return None

    notes: list[Problem] = []
    for i, rule in enumerate(refs):
        rule.correlated_by.append(model.rule_id)
        if not model.generate and rule.enabled:
            rule.enabled = False  # Sigma: only the correlation alerts unless generate: true
            if not isinstance(rule.model, CorrelationModel):
                notes.append(
                    doc.problem(
                        ("correlation", "rules", i),
                        f"rule {rule.id!r} alerts only through this correlation; "
                        "add generate: true to keep its own alerts",
                    )
                )
    conditions = list({id(r): r.condition for r in refs}.values())
    types: set[str] = set()
    constrained = all(r.event_types is not None for r in refs)
    for r in refs:
        types |= r.event_types or frozenset()
    specializers = [r.specialize for r in refs]
    return CompiledRule(
        id=model.rule_id,
        title=model.title,
        severity=model.alert_severity,
        description=model.description,
        tags=list(model.tags),
        enabled=model.enabled,
        path=path,
        model=model,
        condition=any_of(conditions),
        condition_text=" or ".join(dict.fromkeys(ids)),
        event_types=frozenset(types) if constrained else None,
        selections={r.id: r.condition for r in refs},
        group_by=group_by,
        aggregation=aggregation,
        realert_ns=td_ns(model.realert),
        summary=summary,
        held_paths=needs.paths,
        hold_full=needs.hold_full,
        step_predicates=steps,
        step_specializers=tuple(r.specialize for r in refs) if steps else (),
        specialize=(
            or_specializer([s for s in specializers if s is not None])
            if all(s is not None for s in specializers)
            else None
        ),
        fields=list(model.fields),
        tests=list(model.tests),
        references=list(model.references),
        runbook=model.runbook.strip(),
        notes=notes,
        detections=tuple(d for r in refs for d in r.detections),
        logsource=refs[0].logsource,
    )


def _check_chain(
    builder: RuleBuilder, where: PathKey, outer: CorrelationModel, inner: CompiledRule
) -> None:
    """A correlation over a correlation runs in one case: an event_count as a step of a
    temporal_ordered (the spec's "failed logins followed by a success"), which is a
    sequence step with a count when the inner rule groups the same way and looks back
    at least as far (then the outer window implies the inner one)."""
    spec = outer.correlation
    inner_model = inner.model
    assert isinstance(inner_model, CorrelationModel)
    inner_spec = inner_model.correlation
    if spec.type != "temporal_ordered" or inner_spec.type != "event_count":
        builder.error(
            where,
            f"{spec.type} over the {inner_spec.type} correlation {inner.id!r} is not supported "
            "yet: only an event_count inside a temporal_ordered runs (as a step with a count)",
        )
    elif list(inner_spec.group_by) != list(spec.group_by):
        builder.error(
            where,
            f"correlation {inner.id!r} groups by {inner_spec.group_by}, this one by "
            f"{spec.group_by}: chained correlations must group by the same fields",
        )
    elif inner_spec.timespan < spec.timespan:
        builder.error(
            where,
            f"correlation {inner.id!r} looks back {format_duration_ns(td_ns(inner_spec.timespan))}, less than this one's "
            f"timespan {format_duration_ns(td_ns(spec.timespan))}: make the inner timespan at least as long",
        )


def _alias_getter(
    builder: RuleBuilder,
    mapping: dict[str, str],
    refs: list[CompiledRule],
    index: RuleIndex,
    alias: str,
) -> Getter | None:
    """An alias's field per rule: the field of the first named rule the event matches."""
    pairs: list[tuple[Predicate, Getter]] = []
    ok = True
    for ref, path in mapping.items():
        where: PathKey = ("correlation", "aliases", alias, ref)
        rule = index.get(ref)
        if rule is None or all(rule is not r for r in refs):
            builder.error(
                where,
                f"alias {alias!r} names rule {ref!r}, which the correlation does not use"
                f"{suggest(ref, [r.id for r in refs])}",
                key=True,
            )
            ok = False
            continue
        getter = builder.field_path(path, where)
        if getter is None:
            ok = False
            continue
        pairs.append((rule.condition, getter))
    if not ok:
        return None
    pairs_t = tuple(pairs)

    def alias_value(raw: dict[str, Any]) -> Any:
        for match, getter in pairs_t:
            if match(raw):
                return getter(raw)
        return MISSING

    return alias_value


def _count(builder: RuleBuilder, condition: Any, kind: str, rules: int) -> int | None:
    """The count a correlation fires at: ``gte: N`` is N, ``gt: N`` is N + 1 (for
    value_sum: 1 when its bound is a number); None after reporting why not."""
    where: PathKey = ("correlation", "condition")
    if condition is None:
        if kind in ("temporal", "temporal_ordered"):
            return rules
        builder.error(("correlation",), f"{kind} needs a condition, e.g. condition: {{gte: 10}}")
        return None
    ops = {k: v for k, v in condition.items() if k != "field"}
    unknown = [k for k in ops if k not in ("gt", "gte", "lt", "lte", "eq", "neq")]
    if unknown:
        builder.error(
            (*where, unknown[0]),
            f"unknown condition {unknown[0]!r}{suggest(str(unknown[0]), ['gt', 'gte'])}",
            key=True,
        )
        return None
    if len(ops) != 1 or next(iter(ops)) not in ("gt", "gte"):
        builder.error(
            where,
            f"condition {condition!r} is not supported yet: the engine fires when a count "
            "(or sum) is reached, so only gte or gt (alone) can be run; lt, lte, eq, neq "
            "and ranges need a window to close first",
        )
        return None
    op, value = next(iter(ops.items()))
    if kind == "value_sum":
        if isinstance(value, bool) or not isinstance(value, int | float):
            builder.error((*where, op), f"{op} needs a number, got {value!r}")
            return None
        return 1  # the bound itself is read by the caller
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        builder.error((*where, op), f"{op} needs a whole number, got {value!r}")
        return None
    count = value if op == "gte" else value + 1
    if count < 1:
        builder.error((*where, op), f"{op}: {value} always holds: count at least 1")
        return None
    if kind in ("temporal", "temporal_ordered") and count > rules:
        builder.error(
            (*where, op),
            f"{kind} over {rules} rules cannot see {count} of them: count at most {rules}",
        )
        return None
    if kind == "temporal_ordered" and count != rules:
        builder.error(
            (*where, op),
            f"temporal_ordered needs all {rules} rules in order: drop the condition "
            "(or use temporal for some of them in any order)",
        )
        return None
    return count
