"""Semantic checks and compilation of one rule document, with located problems.

``RuleBuilder`` turns a document's ``detection`` (or a filter's selections) into
compiled predicates and a condition, checks field paths, the summary template and the
inline tests, and builds the ``CompiledRule``; every problem goes to a shared list with
the ``file:line:col`` of the key or value at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from alerting.durations import td_ns
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
from alerting.engine.fields import FieldPathError, Getter, compile_path
from alerting.engine.held import SummaryNeeds, summary_needs
from alerting.engine.matchers import (
    NO_CONTEXT,
    Predicate,
    Residual,
    SelectionContext,
    SelectionError,
    Specializer,
    compile_selection,
)
from alerting.engine.rule import (
    AGGREGATION_KEYS,
    CompiledRule,
    CorrelationModel,
    RuleModel,
    TestEventError,
    build_test_events,
)
from alerting.engine.summary import SummaryTemplate, make_summary_environment
from alerting.engine.types import (
    NewValueSpec,
    SequenceSpec,
)
from alerting.errors import Location, Problem
from alerting.yamlfile import PathKey, YamlDocument, suggest

SELECTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
SUMMARY_VARIABLES = (
    "count",
    "group",
    "events",
    "first",
    "last",
    "values",
    "pairs",
    "details",
    "rule",
    "title",
    "severity",
)

_SUMMARY_ENV = make_summary_environment()


_UNKNOWN_CALLABLE = re.compile(r"^No (filter|test) named '([^']*)'")


def _jinja_problem(exc: jinja2.TemplateSyntaxError) -> str:
    """Jinja's message, with the fix for an unknown filter or test (the near miss or the list)."""
    message = exc.message or str(exc)
    found = _UNKNOWN_CALLABLE.match(message)
    if not found:
        return message
    kind, name = found.groups()
    known = sorted(_SUMMARY_ENV.filters if kind == "filter" else _SUMMARY_ENV.tests)
    return f"unknown {kind} {name!r}" + (
        suggest(name, known) or f" (available: {', '.join(known)})"
    )


class CompiledDetection:
    def __init__(self) -> None:
        self.selections: dict[str, Predicate] = {}
        self.selection_types: dict[str, frozenset[str] | None] = {}
        self.specializers: dict[str, Specializer] = {}
        self.tree: Node | None = None
        self.condition_text = ""
        self.used: set[str] = set()


class RuleBuilder:
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
    ) -> CompiledDetection:
        out = CompiledDetection()
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

    def finish(self, model: RuleModel, compiled: CompiledDetection) -> CompiledRule | None:
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
            getter = self.field_path(p, (*by_where, i) if self._is_list(by_where) else by_where)
            if getter is not None:
                group_by.append((p, getter))
        for key in AGGREGATION_KEYS:
            sub = getattr(model, key)
            for attr in ("field", "latitude", "longitude"):
                value = getattr(sub, attr, None) if sub is not None else None
                if isinstance(value, str):
                    self.field_path(value, (key, attr))
        for i, p in enumerate(model.fields):
            self.field_path(p, ("fields", i))

        steps: tuple[Predicate, ...] = ()
        step_specializers: tuple[Specializer | None, ...] = ()
        if isinstance(spec, SequenceSpec):
            preds = []
            parts: list[Specializer | None] = []
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
                parts.append(compiled.specializers.get(step.selection))
                compiled.used.add(step.selection)
            steps = tuple(preds)
            step_specializers = tuple(parts)
        elif isinstance(spec, NewValueSpec) and spec.alert_on is not None:
            steps = self._alert_on(spec.alert_on, model, compiled)
            step_specializers = tuple(compiled.specializers.get(spec.alert_on) for _ in steps)

        summary, needs = self.summary(model.summary)
        self.check_tests(model)
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
            specialize=detection_specializer(
                compiled.tree, compiled.selections, compiled.specializers
            ),
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
            step_specializers=step_specializers,
            fields=list(model.fields),
            tests=list(model.tests),
            references=list(model.references),
            runbook=model.runbook.strip(),
            notes=notes,
            detections=(model.detection,),
            logsource=model.logsource,
        )

    def _alert_on(
        self, name: str, model: RuleModel, compiled: CompiledDetection
    ) -> tuple[Predicate, ...]:
        """new_value's ``alert_on`` selection, as the one step predicate hits carry."""
        if name not in compiled.selections:
            if name not in model.detection:
                hint = suggest(name, [k for k in model.detection if k != "condition"])
                self.error(("new_value", "alert_on"), f"unknown selection {name!r}{hint}")
            return ()
        compiled.used.add(name)
        return (compiled.selections[name],)

    def _is_list(self, where: PathKey) -> bool:
        node: Any = self.doc.data
        for part in where:
            node = node.get(part) if isinstance(node, dict) else None
        return isinstance(node, list)

    def field_path(self, path: str, where: PathKey) -> Getter | None:
        try:
            return compile_path(path)
        except FieldPathError as exc:
            self.error(where, str(exc))
            return None

    def summary(self, text: str | None) -> tuple[SummaryTemplate | None, SummaryNeeds]:
        """The compiled summary and what it reads of held events (fields or all)."""
        none = SummaryNeeds()
        if text is None:
            return None, none
        base = self.doc.locate(("summary",))
        try:
            ast = _SUMMARY_ENV.parse(text)
            # Runs Jinja's code generator: an unknown filter or test fails here, at load.
            names = frozenset(meta.find_undeclared_variables(ast))
        except jinja2.TemplateSyntaxError as exc:  # TemplateAssertionError too
            line = (base.line or 1) + (exc.lineno or 1) - 1
            if text.count("\n") and (base.line or 0) and self._block_scalar(base):
                line += 1
            self.problems.append(
                Problem(Location(base.path, line, None), f"summary template: {_jinja_problem(exc)}")
            )
            return None, none
        unknown = sorted(names - set(SUMMARY_VARIABLES))
        for name in unknown:
            hint = suggest(name, SUMMARY_VARIABLES) or (
                f" (available: {', '.join(SUMMARY_VARIABLES)})"
            )
            self.error(("summary",), f"summary template uses unknown variable {name!r}{hint}")
        if unknown:
            return None, none
        return SummaryTemplate(_SUMMARY_ENV, ast, names), summary_needs(ast)

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

    def check_tests(self, model: RuleModel | CorrelationModel) -> None:
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


def detection_specializer(
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
