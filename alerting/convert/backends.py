"""SIEM queries from the Sigma documents, through pySigma's backends, with the gaps named.

pySigma is the reference Sigma converter; its SIEM backends (Splunk, Elasticsearch) need
pySigma 1.x, so the ``convert`` extra pins ``pysigma<2``. It is imported only here, only
when a SIEM target is asked for, so the service and the other commands never load it.

Two things pySigma does not know and this module adds:

- JSONPath field names (``$.changes..field``) are this project's extension; a backend
  would query a field literally named ``$.changes..field``. A processing pipeline maps
  the simple forms (names joined by ``.``, ``..`` and ``[*]``) to the target's names for
  values inside arrays of objects: Splunk's ``changes{}.field`` (and ``changes.field`` for
  the object form DI sometimes sends), Elasticsearch's ``changes.field``. Anything else
  (filters, indexes) is reported and the rule not written.
- What each backend drops: Lucene has no correlations (an aggregated rule would fire on
  every match, so it is not written); Splunk and ES|QL count in fixed time buckets
  (``bin _time`` / ``date_trunc``), not the engine's sliding window; neither has
  ``temporal_ordered``, so a sequence becomes an unordered ``temporal`` correlation, and a
  chained correlation (a step repeated N times is an ``event_count`` inside the sequence)
  is not written: Splunk's output puts ``stats`` inside ``multisearch``, which Splunk
  refuses (streaming commands only), and ES|QL's nests one query inside another.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alerting.convert.sigma import Fidelity, SigmaRule, detection_fields
from alerting.engine.fields import jsonpath_parts
from alerting.errors import AlertingError

if TYPE_CHECKING:  # pragma: no cover - typing only; pySigma is an optional extra
    from sigma.conversion.base import Backend

INSTALL_HINT = "install the convert extra: pip install 'jc-alerting[convert]'"


@dataclass(frozen=True)
class Target:
    """One SIEM query language: its backend, file suffix and how it names array fields."""

    name: str
    suffix: str
    description: str
    backend: Callable[[], type[Backend]]
    array_fields: Callable[[list[str]], list[str]]  # path parts -> field names to query
    correlations: bool  # the backend converts event_count / value_count
    temporal: bool  # ... and temporal (unordered) correlations
    # What goes wrong with fields holding many values (array elements), if anything.
    multivalue_caveat: str | None = None


def _splunk_fields(parts: list[str]) -> list[str]:
    # JSON arrays are ``name{}`` in Splunk's extracted field names; DI's ``changes`` is
    # sometimes a single object, so the plain dotted name is queried too.
    array = ".".join(f"{p}{{}}" if i < len(parts) - 1 else p for i, p in enumerate(parts))
    plain = ".".join(parts)
    return [array, plain] if array != plain else [plain]


def _dotted(parts: list[str]) -> list[str]:
    # Elasticsearch flattens arrays of objects: ``changes.field`` matches any element.
    return [".".join(parts)]


def _splunk() -> type[Backend]:
    from sigma.backends.splunk import SplunkBackend

    return SplunkBackend


def _lucene() -> type[Backend]:
    from sigma.backends.elasticsearch import LuceneBackend

    return LuceneBackend


def _esql() -> type[Backend]:
    from sigma.backends.elasticsearch import ESQLBackend

    return ESQLBackend


def _eql() -> type[Backend]:
    from sigma.backends.elasticsearch import EqlBackend

    return EqlBackend


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("splunk", ".spl", "Splunk SPL", _splunk, _splunk_fields, True, True),
        Target("lucene", ".lucene", "Elasticsearch Lucene", _lucene, _dotted, False, False),
        Target(
            "esql",
            ".esql",
            "Elasticsearch ES|QL",
            _esql,
            _dotted,
            True,
            True,
            "ES|QL compares a multi-valued field (one value per array element) as null, "
            "so the array fields may match nothing without an MV_EXPAND",
        ),
        Target("eql", ".eql", "Elasticsearch EQL", _eql, _dotted, False, False),
    )
}


@dataclass
class Converted:
    """One rule's query for one target (None when not written) and the verdict."""

    rule_id: str
    query: str | None
    fidelity: Fidelity


def require_pysigma(target: Target) -> None:
    """Fail once, before any rule, when the ``convert`` extra is not installed."""
    try:
        import sigma.collection
        import sigma.processing.pipeline  # noqa: F401

        target.backend()
    except ImportError:
        raise AlertingError(f"--target {target.name} needs pySigma: {INSTALL_HINT}") from None


def convert(sigma: SigmaRule, target: Target) -> Converted:
    """Convert one rule's Sigma documents to ``target``: the query and how faithful it is,
    or no query and why (the backend lacks something the rule uses). Raise
    ``AlertingError`` when pySigma finds the documents themselves wrong."""
    fidelity = Fidelity(dropped=list(sigma.fidelity.dropped))
    for reason in sigma.fidelity.reasons:
        if reason not in sigma.sigma_only:
            fidelity.lower("partial", reason)
    docs = copy.deepcopy(sigma.documents)
    firing = docs[-1]
    kind = sigma.kind

    if kind == "extension":
        key = next((k for k in ("new_value", "travel", "digest") if k in firing), "travel")
        return _refused(sigma, fidelity, f"{key} has no {target.description} counterpart")
    if kind in ("event_count", "value_count") and not target.correlations:
        return _refused(
            sigma,
            fidelity,
            f"{target.description} has no aggregations: the {kind} correlation would be "
            "dropped and the query fire on every match",
        )
    if kind in ("temporal", "temporal_ordered"):
        if not target.temporal:
            return _refused(sigma, fidelity, f"{target.description} has no temporal correlations")
        if _chained(docs):
            return _refused(
                sigma,
                fidelity,
                f"a repeated step is a correlation inside the sequence, which pySigma's "
                f"{target.description} backend turns into an invalid query",
            )
        if kind == "temporal_ordered":
            firing["correlation"]["type"] = "temporal"
            fidelity.lower(
                "partial", "step order not checked (the backend has no temporal_ordered)"
            )
    if kind in ("event_count", "value_count", "temporal", "temporal_ordered"):
        span = firing["correlation"]["timespan"]
        fidelity.lower(
            "partial",
            f"counts in fixed {span} buckets, not a sliding {span} window: a burst across "
            "a bucket boundary is missed",
        )

    mapping: dict[str, list[str]] = {}
    for name in sorted({f for doc in docs for f in detection_fields(doc)}):
        if not name.startswith("$"):
            continue
        parts = jsonpath_parts(name)
        if parts is None:
            return _refused(
                sigma,
                fidelity,
                f"JSONPath field {name!r} has no {target.description} field name",
            )
        mapping[name] = target.array_fields(parts)
    if mapping:
        shown = ", ".join(f"{k} -> {' | '.join(v)}" for k, v in mapping.items())
        fidelity.reasons.append(f"fields mapped: {shown}")
        if target.multivalue_caveat:
            fidelity.lower("partial", target.multivalue_caveat)

    try:
        query = _run_backend(docs, target, mapping)
    except _Unsupported as exc:
        return _refused(sigma, fidelity, str(exc))
    return Converted(sigma.rule_id, query, fidelity)


def _chained(docs: list[dict[str, Any]]) -> bool:
    """A correlation that refers to another correlation."""
    correlations = {d.get("name") for d in docs if "correlation" in d}
    return any(
        ref in correlations
        for d in docs
        if "correlation" in d
        for ref in d["correlation"].get("rules", [])
    )


def _refused(sigma: SigmaRule, fidelity: Fidelity, reason: str) -> Converted:
    """Not written: the one reason says why (the Sigma-level caveats no longer matter)."""
    return Converted(
        sigma.rule_id, None, Fidelity("not expressible", [reason], list(fidelity.dropped))
    )


class _Unsupported(Exception):
    """The backend has no way to express something the rule uses."""


def _plain_message(exc: Exception) -> str:
    """pySigma's message without its ``(while converting rule ...)`` tail."""
    return str(exc).split(" (while ", 1)[0].strip() or type(exc).__name__


def _run_backend(docs: list[dict[str, Any]], target: Target, mapping: dict[str, list[str]]) -> str:
    try:
        from sigma.collection import SigmaCollection
        from sigma.exceptions import SigmaError, SigmaFeatureNotSupportedByBackendError
        from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
        from sigma.processing.transformations import FieldMappingTransformation
    except ImportError:
        raise AlertingError(f"--target {target.name} needs pySigma: {INSTALL_HINT}") from None
    pipeline = ProcessingPipeline(
        name="jc-alerting JSONPath fields",
        priority=20,
        items=[
            ProcessingItem(
                identifier="jc_alerting_jsonpath",
                transformation=FieldMappingTransformation(
                    {k: v if len(v) > 1 else v[0] for k, v in mapping.items()}
                ),
            )
        ]
        if mapping
        else [],
    )
    try:
        collection = SigmaCollection.from_dicts(docs)
        backend = target.backend()(processing_pipeline=pipeline)
        queries = backend.convert(collection)
    except (SigmaFeatureNotSupportedByBackendError, NotImplementedError) as exc:
        # What the backend cannot express (field references, a correlation type): a
        # report for this rule, not an error.
        raise _Unsupported(
            f"pySigma's {target.description} backend: {_plain_message(exc)}"
        ) from None
    except SigmaError as exc:
        raise AlertingError(
            f"{target.name}: pySigma refused the rule: {_plain_message(exc)}"
        ) from None
    if not queries:
        raise AlertingError(f"{target.name}: pySigma produced no query")
    # Base rules of a correlation yield nothing; the firing document's query comes last.
    return str(queries[-1])
