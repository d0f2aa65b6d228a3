"""Load rule files: YAML with positions -> model -> semantic checks -> ``CompiledRule``.

Every problem of every file is collected and raised together as one ``RuleError`` with
``file:line:col: message`` lines, so an author fixes a whole directory in one pass; a
file with any problem never yields a rule (nothing is half-loaded). Directories are read
non-recursively: ``*.yml`` and ``*.yaml`` directly inside, in name order, so test data
and drafts can live in sub-directories.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from alerting.durations import format_duration_ns, td_ns
from alerting.engine.conditions import (
    KEYWORDS,
    ConditionError,
    Node,
    Or,
    Ref,
    compile_tree,
    parse_condition,
    required_event_types,
    specialize_tree,
)
from alerting.engine.fields import MISSING, FieldPathError, Getter, compile_path
from alerting.engine.held import SummaryNeeds, summary_needs
from alerting.engine.matchers import (
    NO_CONTEXT,
    Predicate,
    Residual,
    SelectionContext,
    SelectionError,
    Specializer,
    compile_selection,
    or_specializer,
)
from alerting.engine.rule import (
    AGGREGATION_KEYS,
    CompiledRule,
    CorrelationModel,
    FilterModel,
    PlaceholdersModel,
    RuleModel,
    TestEventError,
    build_test_events,
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
from alerting.errors import AlertingError, Location, Problem, RuleError, ValidationFailed
from alerting.jinja_env import make_environment
from alerting.yamlfile import PathKey, YamlDocument, load_yaml, load_yaml_all, suggest, validate

RULE_SUFFIXES = (".yml", ".yaml")
SELECTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SUMMARY_VARIABLES = (
    "count",
    "group",
    "events",
    "first",
    "last",
    "values",
    "details",
    "rule",
    "title",
    "severity",
)

_ENV = make_environment()


def rule_files(paths: Sequence[Path]) -> list[Path]:
    """The rule files named by ``paths`` (directories non-recursively, or files)."""
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file())
            if not found:
                raise AlertingError(
                    f"no rule files (*.yml, *.yaml) in {path}: add rules or pass --rules DIR"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise AlertingError(
                f"rules directory {str(path)!r} does not exist: create it or pass --rules DIR"
            )
    return files


def load_rules(
    paths: Sequence[Path], *, placeholders: Mapping[str, Sequence[str]] | None = None
) -> list[CompiledRule]:
    """Load and compile every rule under ``paths``; raise ``RuleError`` with all problems.

    A file holds one or more YAML documents: Sigma detection rules, correlation rules
    (``correlation:``), filters (``filter:``) and ``placeholders:`` documents.
    Correlations and filters may name rules of any file (by ``name``, ``id`` or rule
    id). ``placeholders`` (the config's) are merged under the rules-side ones.
    """
    problems: list[Problem] = []
    docs: list[tuple[Path, YamlDocument, str]] = []
    for path in rule_files(paths):
        try:
            found = load_yaml_all(path)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        docs.extend((path, doc, document_kind(doc)) for doc in found)

    merged: dict[str, list[str]] = {
        k: [str(v) for v in vs] for k, vs in (placeholders or {}).items()
    }
    for _path, doc, kind in docs:
        if kind != "placeholders":
            continue
        try:
            merged.update(validate(PlaceholdersModel, doc).placeholders)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
    ctx = SelectionContext(merged)

    rules: list[CompiledRule] = []
    locations: dict[int, Location] = {}
    correlations: list[tuple[Path, YamlDocument, CorrelationModel]] = []
    filters: list[tuple[Path, YamlDocument]] = []
    for path, doc, kind in docs:
        if kind == "rule":
            try:
                rule, where = compile_rule_document(path, doc, ctx)
            except ValidationFailed as exc:
                problems.extend(exc.problems)
                continue
            rules.append(rule)
            locations[id(rule)] = where
        elif kind == "correlation":
            try:
                correlations.append((path, doc, validate(CorrelationModel, doc)))
            except ValidationFailed as exc:
                problems.extend(exc.problems)
        elif kind == "filter":
            filters.append((path, doc))

    index = _RuleIndex(rules)
    for path, doc in filters:
        _apply_filter(path, doc, index, ctx, problems)
    # Correlations over correlations (the spec's chains) wait for the ones they name.
    pending = list(correlations)
    names = {
        str(ref).lower()
        for _p, _d, m in correlations
        for ref in (m.rule_id, m.name, m.id)
        if ref is not None
    }
    while pending:
        ready = [
            c
            for c in pending
            if not any(index.get(r) is None and r.lower() in names for r in c[2].correlation.rules)
        ] or pending  # a cycle or an unknown name: build them to report it
        for item in ready:
            pending.remove(item)
            path, doc, model = item
            built = _correlation(path, doc, model, index, problems)
            if built is not None:
                rules.append(built)
                index.add(built)
                locations[id(built)] = _id_location(doc)

    first_seen: dict[str, Location] = {}
    unique: list[CompiledRule] = []
    for rule in rules:
        where = locations[id(rule)]
        if rule.id in first_seen:
            problems.append(
                Problem(
                    where,
                    f"duplicate rule id {rule.id!r}: also defined in {first_seen[rule.id]}; "
                    "rule ids must be unique, rename one",
                )
            )
            continue
        first_seen[rule.id] = where
        unique.append(rule)
    if problems:
        raise RuleError(problems)
    return unique


def document_kind(doc: YamlDocument) -> str:
    """``rule``, ``correlation``, ``filter`` or ``placeholders`` (by its keys)."""
    data = doc.data
    if not isinstance(data, dict):
        return "rule"  # the model reports the shape
    if "correlation" in data:
        return "correlation"
    if "filter" in data and "detection" not in data:
        return "filter"
    if set(data) == {"placeholders"}:
        return "placeholders"
    return "rule"


def _id_location(doc: YamlDocument) -> Location:
    data = doc.data if isinstance(doc.data, dict) else {}
    return doc.locate(("name",) if "name" in data else ("id",))


def load_rule_file(path: Path) -> tuple[CompiledRule, Location]:
    """Load a file holding one detection rule; raise ``ValidationFailed`` with every
    problem in it (``load_rules`` reads whole directories, correlations included)."""
    doc = load_yaml(path)
    return compile_rule_document(path, doc, NO_CONTEXT)


def compile_rule_document(
    path: Path, doc: YamlDocument, ctx: SelectionContext
) -> tuple[CompiledRule, Location]:
    """One detection rule document; raise ``ValidationFailed`` with every problem in it."""
    problems: list[Problem] = []
    model: RuleModel | None = None
    try:
        model = validate(RuleModel, doc)
    except ValidationFailed as exc:
        problems.extend(exc.problems)
    builder = _Builder(path, doc, problems, ctx)
    if isinstance(doc.data, dict):
        aggs = [k for k in AGGREGATION_KEYS if doc.data.get(k) is not None]
        if len(aggs) > 1:
            builder.error(
                (aggs[1],),
                f"a rule may have only one aggregation, found {' and '.join(aggs)}: "
                "split it into two rules",
                key=True,
            )
    detection = doc.data.get("detection") if isinstance(doc.data, dict) else None
    compiled = builder.detection(detection, doc.data if isinstance(doc.data, dict) else {})
    if model is None:
        raise ValidationFailed(problems)
    rule = builder.finish(model, compiled)
    if problems or rule is None:
        raise ValidationFailed(problems)
    return rule, _id_location(doc)


class _RuleIndex:
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


def _apply_filter(
    path: Path,
    doc: YamlDocument,
    index: _RuleIndex,
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
    builder = _Builder(path, doc, problems, ctx)
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
    fspec = _specializer(compiled.tree, compiled.selections, compiled.specializers)
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


def _correlation(
    path: Path,
    doc: YamlDocument,
    model: CorrelationModel,
    index: _RuleIndex,
    problems: list[Problem],
) -> CompiledRule | None:
    """A Sigma correlation rule as one of the engine's aggregations over the rules it
    names: event_count = threshold, value_count = distinct, temporal = distinct over
    the rules matched, temporal_ordered = sequence (one step per rule)."""
    builder = _Builder(path, doc, problems, NO_CONTEXT)
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
        found = builder._path(name, where)
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
            elif builder._path(field, ("correlation", "condition", "field")) is not None:
                aggregation = DistinctSpec(field=field, count=count, within=spec.timespan, by=by)
        elif spec.type == "value_sum":
            field = (spec.condition or {}).get("field")
            if not isinstance(field, str):
                builder.error(
                    ("correlation", "condition"),
                    "value_sum needs the numeric field it adds up: "
                    "condition: {field: bytes_out, gt: 1000000}",
                )
            elif builder._path(field, ("correlation", "condition", "field")) is not None:
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
        builder._path(p, ("fields", i))
    summary, needs = builder._summary(model.summary)
    builder._tests(model)
    if len(problems) > before or aggregation is None:
        return None

    for rule in refs:
        rule.correlated_by.append(model.rule_id)
        if not model.generate:
            rule.enabled = False  # Sigma: only the correlation alerts unless generate: true
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
        condition=_any_predicate(conditions),
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
        specialize=(
            or_specializer([s for s in specializers if s is not None])
            if all(s is not None for s in specializers)
            else None
        ),
        fields=list(model.fields),
        tests=list(model.tests),
        detections=tuple(d for r in refs for d in r.detections),
        logsource=refs[0].logsource,
    )


def _check_chain(
    builder: _Builder, where: PathKey, outer: CorrelationModel, inner: CompiledRule
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


def _any_predicate(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    preds_t = tuple(preds)

    def any_rule(raw: dict[str, Any]) -> bool:
        for p in preds_t:  # noqa: SIM110 - hot path: no generator per event
            if p(raw):
                return True
        return False

    return any_rule


def _alias_getter(
    builder: _Builder,
    mapping: dict[str, str],
    refs: list[CompiledRule],
    index: _RuleIndex,
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
        getter = builder._path(path, where)
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


def _count(builder: _Builder, condition: Any, kind: str, rules: int) -> int | None:
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


class _Compiled:
    def __init__(self) -> None:
        self.selections: dict[str, Predicate] = {}
        self.selection_types: dict[str, frozenset[str] | None] = {}
        self.specializers: dict[str, Specializer] = {}
        self.tree: Node | None = None
        self.condition_text = ""
        self.used: set[str] = set()


class _Builder:
    """Semantic checks and compilation for one file, appending located problems."""

    def __init__(
        self,
        path: Path,
        doc: YamlDocument,
        problems: list[Problem],
        ctx: SelectionContext = NO_CONTEXT,
    ) -> None:
        self.path = path
        self.doc = doc
        self.problems = problems
        self.ctx = ctx
        self._lines: list[str] | None = None

    def error(self, where: PathKey, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.problem(where, message, key=key))

    # ----------------------------------------------------------------- detection

    def detection(
        self, detection: Any, data: dict[str, Any], *, root: str = "detection"
    ) -> _Compiled:
        out = _Compiled()
        if not isinstance(detection, dict):
            return out  # the model reports the missing key or wrong type
        names: list[str] = []
        for name, body in detection.items():
            if name == "condition":
                continue
            where: PathKey = (root, name)
            if name == "timeframe":
                self.error(
                    where,
                    "timeframe inside detection is Sigma 1's aggregation: write a correlation "
                    "rule (event_count, value_count) with timespan instead",
                    key=True,
                )
                continue
            if not isinstance(name, str) or not SELECTION_NAME.fullmatch(name):
                self.error(
                    where,
                    f"selection name {name!r} may hold only letters, digits, '_', '-' and '.'",
                    key=True,
                )
                continue
            if name.lower() in KEYWORDS:
                self.error(
                    where, f"selection name {name!r} is a condition keyword: rename it", key=True
                )
                continue
            names.append(name)
            try:
                selection = compile_selection(name, body, self.ctx)
            except SelectionError as exc:
                for err in exc.all():
                    self.error((*where, *err.path), err.message, key=err.key)
                continue
            out.selections[name] = selection.predicate
            out.selection_types[name] = selection.event_types
            if selection.specialize is not None:
                out.specializers[name] = selection.specialize
        if not names:
            self.error((root,), f"{root} has no selections: add at least one")
            return out

        condition = detection.get("condition")
        steps = _sequence_steps(data)
        if condition is None:
            if steps:
                known = list(dict.fromkeys(s for s in steps if s in names))
                if len(known) > 1:
                    out.tree = Or(tuple(Ref(s) for s in known))
                elif known:
                    out.tree = Ref(known[0])
                out.condition_text = " or ".join(known)
                out.used = set(known)
            elif len(names) == 1:
                out.tree = Ref(names[0])
                out.condition_text = names[0]
                out.used = {names[0]}
            else:
                self.error(
                    (root,),
                    f"{root} needs a condition when it has several selections, "
                    f"e.g. condition: {names[0]} and not {names[-1]}",
                )
            return out
        texts = condition if isinstance(condition, list) else [condition]
        trees: list[Node] = []
        for i, text in enumerate(texts):
            where = (root, "condition", i) if isinstance(condition, list) else (root, "condition")
            try:
                parsed = parse_condition(text, names)
            except ConditionError as exc:
                self.problems.append(
                    Problem(self._condition_location(where, text, exc), exc.message)
                )
                continue
            trees.append(parsed.tree)
            out.used |= parsed.used
        if len(trees) == len(texts) and trees:
            out.tree = trees[0] if len(trees) == 1 else Or(tuple(trees))
            out.condition_text = (
                " or ".join(f"({t})" for t in texts) if len(texts) > 1 else texts[0]
            )
        return out

    def _condition_location(self, where: PathKey, text: Any, exc: ConditionError) -> Location:
        base = self.doc.locate(where)
        if not isinstance(text, str) or base.line is None or base.col is None:
            return base
        first = text.split("\n", 1)[0]
        if exc.offset > len(first):
            return base
        lines = self._source_lines()
        if base.line > len(lines):
            return base
        line = lines[base.line - 1]
        start = line.find(first, base.col - 1) if first else -1
        if start < 0:
            return base
        return Location(base.path, base.line, start + 1 + exc.offset)

    # ----------------------------------------------------------------- the rest

    def finish(self, model: RuleModel, compiled: _Compiled) -> CompiledRule | None:
        aggs = model.aggregation_keys()  # more than one was reported by load_rule_file
        spec = model.aggregation()
        if model.by and spec is not None:
            self.error(
                ("by",),
                f"top-level 'by' is for rules without an aggregation: move it into {aggs[0]}.by",
                key=True,
            )
        by_paths = list(spec.by) if spec is not None else list(model.by)
        by_where: PathKey = (aggs[0], "by") if spec is not None else ("by",)
        group_by: list[tuple[str, Getter]] = []
        for i, p in enumerate(by_paths):
            getter = self._path(p, (*by_where, i) if self._is_list(by_where) else by_where)
            if getter is not None:
                group_by.append((p, getter))
        for key in AGGREGATION_KEYS:
            sub = getattr(model, key)
            for attr in ("field", "latitude", "longitude"):
                value = getattr(sub, attr, None) if sub is not None else None
                if isinstance(value, str):
                    self._path(value, (key, attr))
        for i, p in enumerate(model.fields):
            self._path(p, ("fields", i))

        steps: tuple[Predicate, ...] = ()
        if isinstance(spec, SequenceSpec):
            preds = []
            for i, step in enumerate(spec.steps):
                if step.selection not in compiled.selections:
                    if step.selection not in model.detection:
                        hint = suggest(
                            step.selection, [k for k in model.detection if k != "condition"]
                        )
                        self.error(
                            ("sequence", "steps", i, "selection"),
                            f"unknown selection {step.selection!r}{hint}",
                        )
                    continue
                preds.append(compiled.selections[step.selection])
                compiled.used.add(step.selection)
            steps = tuple(preds)

        summary, needs = self._summary(model.summary)
        self._tests(model)
        if compiled.tree is None or self.problems:
            return None
        notes = [
            self.doc.problem(
                ("detection", name),
                f"selection {name!r} is not used by the condition",
                key=True,
            )
            for name in compiled.selections
            if name not in compiled.used
        ]
        return CompiledRule(
            id=model.rule_id,
            title=model.title,
            severity=model.alert_severity,
            description=model.description,
            tags=list(model.tags),
            enabled=model.enabled,
            path=self.path,
            model=model,
            condition=compile_tree(compiled.tree, compiled.selections),
            specialize=_specializer(compiled.tree, compiled.selections, compiled.specializers),
            condition_text=compiled.condition_text,
            event_types=required_event_types(compiled.tree, compiled.selection_types),
            selections=dict(compiled.selections),
            group_by=group_by,
            aggregation=spec,
            realert_ns=td_ns(model.realert),
            summary=summary,
            held_paths=needs.paths,
            hold_full=needs.hold_full,
            step_predicates=steps,
            fields=list(model.fields),
            tests=list(model.tests),
            notes=notes,
            detections=(model.detection,),
            logsource=model.logsource,
        )

    def _is_list(self, where: PathKey) -> bool:
        node: Any = self.doc.data
        for part in where:
            node = node.get(part) if isinstance(node, dict) else None
        return isinstance(node, list)

    def _path(self, path: str, where: PathKey) -> Getter | None:
        try:
            return compile_path(path)
        except FieldPathError as exc:
            self.error(where, str(exc))
            return None

    def _summary(self, text: str | None) -> tuple[jinja2.Template | None, SummaryNeeds]:
        """The compiled summary and what it reads of held events (fields or all)."""
        none = SummaryNeeds()
        if text is None:
            return None, none
        base = self.doc.locate(("summary",))
        try:
            ast = _ENV.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            line = (base.line or 1) + (exc.lineno or 1) - 1
            if text.count("\n") and (base.line or 0) and self._block_scalar(base):
                line += 1
            self.problems.append(
                Problem(Location(base.path, line, None), f"summary template: {exc.message}")
            )
            return None, none
        unknown = sorted(meta.find_undeclared_variables(ast) - set(SUMMARY_VARIABLES))
        for name in unknown:
            hint = suggest(name, SUMMARY_VARIABLES) or (
                f" (available: {', '.join(SUMMARY_VARIABLES)})"
            )
            self.error(("summary",), f"summary template uses unknown variable {name!r}{hint}")
        if unknown:
            return None, none
        return _ENV.from_string(text), summary_needs(ast)

    def _source_lines(self) -> list[str]:
        """The file's text lines (read once, only to place a column in an error)."""
        if self._lines is None:
            try:
                self._lines = self.path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                self._lines = []
        return self._lines

    def _block_scalar(self, base: Location) -> bool:
        lines = self._source_lines()
        if base.line is None or base.line > len(lines):
            return False
        rest = lines[base.line - 1][(base.col or 1) - 1 :].strip()
        return rest[:1] in ("|", ">")

    def _tests(self, model: RuleModel | CorrelationModel) -> None:
        seen: set[str] = set()
        for i, case in enumerate(model.tests):
            if case.name in seen:
                self.error(("tests", i, "name"), f"duplicate test name {case.name!r}")
            seen.add(case.name)
            if isinstance(case.events, str):
                if resolve_events_file(case.events, self.path) is None:
                    self.error(
                        ("tests", i, "events"),
                        f"events file {case.events!r} not found (looked next to the rule "
                        "file and in the working directory)",
                    )
                continue
            try:
                build_test_events(case.events)
            except TestEventError as exc:
                where: PathKey = ("tests", i, "events")
                if exc.index is not None:
                    where = (*where, exc.index)
                self.error(where, exc.message)


def _specializer(
    tree: Node, selections: Mapping[str, Predicate], specializers: Mapping[str, Specializer]
) -> Specializer:
    """The rule's condition partly evaluated for known top-level field values (the
    engine's per-event-type plans; see ``matchers.Specializer``)."""

    def specialize(known: Mapping[str, Any]) -> Residual:
        def residual(name: str) -> Residual:
            part = specializers.get(name)
            return part(known) if part is not None else selections[name]

        return specialize_tree(tree, residual)

    return specialize


def _sequence_steps(data: dict[str, Any]) -> list[str]:
    seq = data.get("sequence")
    if not isinstance(seq, dict) or not isinstance(seq.get("steps"), list):
        return []
    return [
        s["selection"]
        for s in seq["steps"]
        if isinstance(s, dict) and isinstance(s.get("selection"), str)
    ]


def resolve_events_file(name: str, rule_path: Path) -> Path | None:
    """A test's events file: relative to the rule file's directory, then the cwd."""
    candidate = Path(name)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in (rule_path.parent, Path.cwd()):
        full = base / candidate
        if full.is_file():
            return full
    return None
