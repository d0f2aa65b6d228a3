"""A loaded rule as standard Sigma documents (specification 2.x), with what did not fit.

Plain Python, no pySigma: ``alerting convert --target sigma`` works without the
``convert`` extra, and the SIEM targets (``alerting.convert.backends``) feed these same
documents to pySigma. The mapping:

- a rule without an aggregation is one detection rule: ``name`` is the rule id users see
  in alerts, routes and silences, ``id`` its ``sigma_id`` (its own UUID, else a uuid5 of
  the rule id, so it is stable across conversions);
- ``threshold`` / ``distinct`` become a detection rule (``name: <id>-events``) and an
  ``event_count`` / ``value_count`` correlation named after the rule;
- ``sequence`` becomes one detection rule per step selection, an ``event_count``
  correlation for each step repeated ``count`` > 1 times, and a ``temporal_ordered``
  correlation over the steps, named after the rule;
- ``new_value`` and ``travel`` have no Sigma counterpart: the rule keeps them as the
  project's extension keys and is marked ``status: unsupported`` (Sigma's word for "needs
  something a generic backend does not have") so no other tool runs it as a plain
  detection that fires on every match.

The project's lifecycle keys (``realert``, ``by``, ``summary``, ``tests``) travel as
extension keys on the document that fires (Sigma keeps unknown top-level keys); they are
reported because a Sigma backend ignores them.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import yaml

from alerting.durations import format_duration_ns, td_ns
from alerting.engine.rule import RULE_UUID_NAMESPACE, CompiledRule
from alerting.engine.types import (
    DigestSpec,
    DistinctSpec,
    NewValueSpec,
    SequenceSpec,
    ThresholdSpec,
    TravelSpec,
)

LOGSOURCE = {"product": "jumpcloud", "service": "directory_insights"}
LEVELS = {"info": "informational"}  # every other severity is a Sigma level as it is
# Sigma metadata a rule loaded from a Sigma file may carry; passed through as it is.
PASSED_META = ("license", "references", "author", "date", "modified", "related", "taxonomy")

Verdict = Literal["faithful", "partial", "not expressible"]
_RANK: dict[Verdict, int] = {"faithful": 0, "partial": 1, "not expressible": 2}


@dataclass
class Fidelity:
    """How faithfully one target expresses one rule, and why not."""

    verdict: Verdict = "faithful"
    reasons: list[str] = field(default_factory=list)  # what differs (lowers the verdict)
    dropped: list[str] = field(default_factory=list)  # lifecycle keys the target ignores

    def lower(self, verdict: Verdict, reason: str) -> None:
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict
        self.reasons.append(reason)

    def line(self) -> str:
        """``partial: why; why (not expressed: realert 1h)``."""
        text: str = self.verdict
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        if self.dropped:
            text += f" (not expressed: {', '.join(self.dropped)})"
        return text


@dataclass
class SigmaRule:
    """One rule as Sigma: its documents (the firing one last) and the Sigma verdict."""

    rule_id: str
    documents: list[dict[str, Any]]
    fidelity: Fidelity
    kind: str  # "detection", "event_count", "value_count", "temporal_ordered", "extension"
    # Said for the sigma target only: the SIEM targets map these fields themselves.
    sigma_only: list[str] = field(default_factory=list)


def rule_uuid(rule: CompiledRule, suffix: str = "") -> str:
    """The rule's Sigma id (its own UUID, or one derived from its rule id); a part of it
    (a correlation's base rule) gets one derived from the rule id and the part."""
    if not suffix:
        return rule.sigma_id
    return str(uuid.uuid5(RULE_UUID_NAMESPACE, f"{rule.id}/{suffix}"))


def timespan(td: timedelta) -> str:
    """A Sigma timespan: one number and one unit (``90m``, not ``1h30m``)."""
    ns = td_ns(td)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if ns % (size * 1_000_000_000) == 0 and ns > 0:
            return f"{ns // (size * 1_000_000_000)}{unit}"
    raise ValueError(f"Sigma timespans are whole seconds, not {format_duration_ns(ns)}")


def to_sigma(rule: CompiledRule) -> SigmaRule:
    """The Sigma documents for ``rule``; the last document is the one that fires."""
    sigma = _to_sigma(rule)
    jsonpath = sorted({f for d in sigma.documents for f in detection_fields(d) if f[:1] == "$"})
    if jsonpath:
        reason = (
            f"JSONPath field names ({', '.join(jsonpath)}) are a jc-alerting extension: "
            "other Sigma tools need a field mapping for them"
        )
        sigma.fidelity.lower("partial", reason)
        sigma.sigma_only.append(reason)
    element = sorted({f for d in sigma.documents for f in _element_keys(d)})
    if element:
        flatten_elements(sigma.documents)
        sigma.fidelity.lower(
            "partial",
            f"{', '.join(element)} (one list entry must match the whole mapping, a "
            "jc-alerting extension) is written as JSONPath fields: the field and its value "
            "may match in different entries",
        )
    return sigma


def flatten_elements(docs: list[dict[str, Any]]) -> None:
    """Rewrite ``field|element: {k: v}`` as ``$.field..k: v``: Sigma has no element
    modifier, and the JSONPath pair is the nearest it can say."""

    def flat(body: Any) -> Any:
        if isinstance(body, list):
            return [flat(item) for item in body]
        if not isinstance(body, dict):
            return body
        out: dict[str, Any] = {}
        for key, value in body.items():
            field, _, mods = str(key).partition("|")
            if mods == "element" and isinstance(value, dict):
                for inner, v in value.items():
                    out[f"$.{field}..{inner}"] = v
            else:
                out[key] = value
        return out

    for doc in docs:
        detection = doc.get("detection")
        if isinstance(detection, dict):
            for name in list(detection):
                if name != "condition":
                    detection[name] = flat(detection[name])


def _element_keys(doc: dict[str, Any]) -> set[str]:
    """The ``field|element`` keys of a document's detection."""
    out: set[str] = set()
    detection = doc.get("detection")

    def walk(body: Any) -> None:
        if isinstance(body, dict):
            out.update(str(k) for k in body if "element" in str(k).split("|")[1:])
        elif isinstance(body, list):
            for item in body:
                walk(item)

    if isinstance(detection, dict):
        for name, body in detection.items():
            if name != "condition":
                walk(body)
    return out


def detection_fields(doc: dict[str, Any]) -> set[str]:
    """The fields a document's detection names (each key's part before its modifiers)."""
    out: set[str] = set()
    detection = doc.get("detection")
    if not isinstance(detection, dict):
        return out

    def walk(body: Any) -> None:
        if isinstance(body, dict):
            out.update(str(k).split("|", 1)[0] for k in body)
        elif isinstance(body, list):
            for item in body:
                walk(item)

    for name, body in detection.items():
        if name != "condition":
            walk(body)
    return out


def _to_sigma(rule: CompiledRule) -> SigmaRule:
    model = rule.model
    if not hasattr(model, "detection"):
        return _as_written(rule)
    fidelity = Fidelity()
    spec = rule.aggregation
    group = [p for p, _ in rule.group_by]
    extensions = _extensions(rule, fidelity)
    detection = copy.deepcopy(dict(model.detection))
    if "condition" not in detection and rule.condition_text and not isinstance(spec, SequenceSpec):
        detection["condition"] = rule.condition_text

    if spec is None:
        doc = _head(rule) | {"detection": detection}
        if group:
            doc["by"] = group  # the alert's group key (and realert's), an extension key
        return SigmaRule(rule.id, [doc | extensions], fidelity, "detection")

    if isinstance(spec, NewValueSpec | TravelSpec | DigestSpec):
        key = (
            "new_value"
            if isinstance(spec, NewValueSpec)
            else "travel"
            if isinstance(spec, TravelSpec)
            else "digest"
        )
        doc = _head(rule) | {"status": "unsupported", "detection": detection}
        doc[key] = spec.model_dump(mode="json", exclude_defaults=False)
        fidelity.lower(
            "partial",
            f"{key} has no Sigma counterpart: kept as the jc-alerting extension key "
            f"'{key}', status: unsupported",
        )
        return SigmaRule(rule.id, [doc | extensions], fidelity, "extension")

    if isinstance(spec, ThresholdSpec | DistinctSpec):
        base_name = f"{rule.id}-events"
        base = _head(rule, name=base_name, suffix="events") | {"detection": detection}
        correlation: dict[str, Any] = {
            "type": "event_count" if isinstance(spec, ThresholdSpec) else "value_count",
            "rules": [base_name],
            "timespan": timespan(spec.within),
            "condition": {"gte": spec.count},
        }
        if group:
            correlation["group-by"] = group
        if isinstance(spec, DistinctSpec):
            correlation["condition"]["field"] = spec.field
        firing = _correlation_head(rule) | {"correlation": correlation}
        return SigmaRule(rule.id, [base, firing | extensions], fidelity, correlation["type"])

    assert isinstance(spec, SequenceSpec)
    return _sequence(rule, spec, group, detection, extensions, fidelity)


def _as_written(rule: CompiledRule) -> SigmaRule:
    """A Sigma correlation rule loaded as written: its file's documents are already Sigma
    (the rules it refers to in other files are not copied in)."""
    docs = [d for d in yaml.safe_load_all(rule.path.read_text(encoding="utf-8")) if d]
    firing = next(
        (d for d in docs if "correlation" in d and rule.id in (d.get("name"), d.get("id"))),
        docs[-1],
    )
    docs = [d for d in docs if d is not firing] + [firing]
    kind = str(firing.get("correlation", {}).get("type", "detection"))
    fidelity = Fidelity()
    _extensions(rule, fidelity)  # what a backend ignores (realert), said as for any rule
    return SigmaRule(rule.id, docs, fidelity, kind)


def _step_detection(
    detection: dict[str, Any], selection: str, step_selections: list[str]
) -> dict[str, Any]:
    """One step's detection: the engine counts a hit for a step only when the rule's
    condition holds too, so a condition that is more than "any step" (``(failed and not
    radius_certificate) or succeeded``) goes with the step's selection."""
    condition = detection.get("condition")
    words = set(str(condition).replace("(", " ").replace(")", " ").split())
    if not isinstance(condition, str) or words <= {*step_selections, "or"}:
        return {selection: copy.deepcopy(detection[selection]), "condition": selection}
    body = {k: copy.deepcopy(v) for k, v in detection.items() if k != "condition"}
    body["condition"] = f"({condition}) and {selection}"
    return body


def _sequence(
    rule: CompiledRule,
    spec: SequenceSpec,
    group: list[str],
    detection: dict[str, Any],
    extensions: dict[str, Any],
    fidelity: Fidelity,
) -> SigmaRule:
    docs: list[dict[str, Any]] = []
    step_names: list[str] = []
    made: set[str] = set()
    for step in spec.steps:
        base_name = f"{rule.id}-{step.selection.replace('_', '-').lower()}"
        if base_name not in made:
            made.add(base_name)
            body = _step_detection(detection, step.selection, [s.selection for s in spec.steps])
            docs.append(_head(rule, name=base_name, suffix=step.selection) | {"detection": body})
        name = base_name
        if step.count > 1:
            name = f"{base_name}-{step.count}"
            if name not in made:
                made.add(name)
                counted: dict[str, Any] = {
                    "type": "event_count",
                    "rules": [base_name],
                    "timespan": timespan(spec.within),
                    "condition": {"gte": step.count},
                }
                if group:
                    counted["group-by"] = group
                docs.append(
                    _correlation_head(rule, name=name, suffix=f"{step.selection}/{step.count}")
                    | {"correlation": counted}
                )
        step_names.append(name)
    if len(set(step_names)) != len(step_names):
        fidelity.lower(
            "partial",
            "a step repeats an earlier one: temporal_ordered counts each rule once",
        )
    if any(s.count > 1 for s in spec.steps):
        fidelity.lower(
            "partial",
            "a repeated step is a chained event_count correlation, so the whole sequence "
            f"may span up to twice {timespan(spec.within)}",
        )
    ordered: dict[str, Any] = {
        "type": "temporal_ordered",
        "rules": list(dict.fromkeys(step_names)),
        "timespan": timespan(spec.within),
    }
    if group:
        ordered["group-by"] = group
    docs.append(_correlation_head(rule) | {"correlation": ordered} | extensions)
    return SigmaRule(rule.id, docs, fidelity, "temporal_ordered")


def _head(rule: CompiledRule, *, name: str | None = None, suffix: str = "") -> dict[str, Any]:
    """The metadata of a detection rule document."""
    model = rule.model
    doc: dict[str, Any] = {
        "title": rule.title if not suffix else f"{rule.title} ({suffix.replace('/', ' x')})",
        "id": rule_uuid(rule, suffix),
        "name": name or rule.id,
        "status": _attr(rule, "status") or "stable",
    }
    if rule.description:
        doc["description"] = rule.description
    for key in PASSED_META:
        value = _attr(rule, key)
        if value:
            doc[key] = _plain(value)
    if rule.tags:
        doc["tags"] = list(rule.tags)
    doc["logsource"] = _plain(_attr(rule, "logsource")) or dict(LOGSOURCE)
    scope = getattr(model, "scope", None)
    if scope:
        doc["scope"] = list(scope)
    if model.falsepositives:
        # Sigma's convention: each entry a sentence (SigmaHQ checks the capital).
        doc["falsepositives"] = [f[:1].upper() + f[1:] for f in model.falsepositives]
    doc["level"] = LEVELS.get(rule.severity, rule.severity)
    if suffix:
        # Base rules of a correlation are not alerts of their own (Sigma's default), and
        # the fields to show belong to the alert: nothing more to say here.
        return doc
    if model.fields:
        doc["fields"] = list(model.fields)
    return doc


def _correlation_head(
    rule: CompiledRule, *, name: str | None = None, suffix: str = ""
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": rule.title if not suffix else f"{rule.title} ({suffix.replace('/', ' x')})",
        "id": rule_uuid(rule, suffix),
        "name": name or rule.id,
        "status": _attr(rule, "status") or "stable",
    }
    if rule.description:
        doc["description"] = rule.description
    if _attr(rule, "author"):
        doc["author"] = _attr(rule, "author")
    if rule.tags and not suffix:
        doc["tags"] = list(rule.tags)
    doc["level"] = LEVELS.get(rule.severity, rule.severity)
    if not suffix and rule.model.fields:
        doc["fields"] = list(rule.model.fields)
    return doc


def _extensions(rule: CompiledRule, fidelity: Fidelity) -> dict[str, Any]:
    """The project's keys on the firing document; realert is reported as not expressed."""
    model = rule.model
    out: dict[str, Any] = {}
    if model.realert:
        out["realert"] = format_duration_ns(td_ns(model.realert))
        group = [p for p, _ in rule.group_by]
        per = f" per {', '.join(group)}" if group else ""
        fidelity.dropped.append(f"realert {out['realert']}{per}")
    if not rule.enabled:
        out["enabled"] = False
    if model.summary is not None:
        out["summary"] = model.summary
    if model.tests:
        out["tests"] = [t.model_dump(mode="json", exclude_none=True) for t in model.tests]
    return out


def _plain(value: Any) -> Any:
    """YAML-ready: pydantic models as dicts (without unset parts), dates as text."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _attr(rule: CompiledRule, name: str) -> Any:
    """A Sigma attribute the loader may keep on the rule or its model (absent today)."""
    value = getattr(rule, name, None)
    if value is None:
        value = getattr(rule.model, name, None)
    return value
