"""Load rule files: YAML with positions -> model -> semantic checks -> ``CompiledRule``.

Every problem of every file is collected and raised together as one ``RuleError`` with
``file:line:col: message`` lines, so an author fixes a whole directory in one pass; a
file with any problem never yields a rule (nothing is half-loaded). Directories are read
non-recursively: ``*.yml`` and ``*.yaml`` directly inside, in name order, so test data
and drafts can live in sub-directories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from alerting.engine.builder import RuleBuilder, resolve_events_file
from alerting.engine.matchers import (
    NO_CONTEXT,
    SelectionContext,
)
from alerting.engine.metarules import RuleIndex, apply_filter, build_correlation
from alerting.engine.rule import (
    AGGREGATION_KEYS,
    CompiledRule,
    CorrelationModel,
    PlaceholdersModel,
    RuleModel,
)
from alerting.errors import AlertingError, Location, Problem, RuleError, ValidationFailed
from alerting.yamlfile import YamlDocument, load_yaml, load_yaml_all, validate

__all__ = [
    "compile_rule_document",
    "document_kind",
    "load_rule_file",
    "load_rules",
    "resolve_events_file",
    "rule_files",
]

RULE_SUFFIXES = (".yml", ".yaml")


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

    index = RuleIndex(rules)
    for path, doc in filters:
        apply_filter(path, doc, index, ctx, problems)
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
            built = build_correlation(path, doc, model, index, problems)
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
    builder = RuleBuilder(path, doc, problems, ctx)
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
