"""The engine: events in, alerts out, over precompiled rules and event-time windows.

This is the hot path. Rules are indexed by the ``event_type`` values their condition
requires, so an event meets only the rules that can match it; conditions are closures
built at load; the Jinja summary renders only when an alert fires, never per event.
Tests, replay and the service all drive this one class, so they agree by construction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alerting import jsonutil
from alerting.alert import (
    MAX_EVENT_IDS,
    MAX_SAMPLE_EVENTS,
    Alert,
    fingerprint_base,
    fingerprint_from,
)
from alerting.engine.aggregations import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_TOLERANCE_NS,
    NewValueAggregation,
    build_aggregation,
)
from alerting.engine.fields import (
    MISSING,
    Getter,
    compile_getters,
    compile_path,
    compile_values,
    short_path,
)
from alerting.engine.held import Holder, pick_samples
from alerting.engine.reads import condition_fields, fields_read, flag_fields
from alerting.engine.rule import CompiledRule
from alerting.engine.types import Aggregation, Firing, Hit
from alerting.events import Event, format_timestamp

if TYPE_CHECKING:
    from _hashlib import HASH

    from alerting.store import Store

logger = logging.getLogger("alerting.engine")

MAX_SUMMARY_CHARS = 4000
_TYPE_CACHE_LIMIT = 4096  # distinct event_type strings remembered (attacker-bounded)
_GROUP_CACHE_LIMIT = 65_536  # one-field text groups remembered per rule (attacker-bounded)
# groups whose fingerprint hash is kept per rule: ~250 bytes each (an OpenSSL context)
_FINGERPRINT_CACHE_LIMIT = 4096
_UNGROUPED: tuple[str, dict[str, Any]] = ("", {})  # (key, group) of a rule without group_by
ORGANIZATION = "organization"  # the DI event field naming the customer org (MSP mode)


@dataclass(slots=True)
class RuleStats:
    """What one rule did: events that matched, alerts raised and held back, errors."""

    matched: int = 0
    alerts: int = 0
    suppressed: int = 0
    errors: int = 0


StepPlan = tuple[int, ...] | Callable[[dict[str, Any]], tuple[int, ...]]
"""The sequence steps an event matches, decided by the plan or checked per event."""


class _Runner:
    """One enabled rule at run time: its predicate, group extraction, windows, realert."""

    __slots__ = (
        "_groups",
        "_groups_many",
        "aggregation",
        "by",
        "by_paths",
        "dirty",
        "fingerprints",
        "hit",
        "last",
        "match",
        "order",
        "realert_ns",
        "rule",
        "stats",
        "steps",
        "value_getters",
        "values_at",
        "which_steps",
    )

    def __init__(self, rule: CompiledRule, order: int, max_entries: int, tolerance_ns: int) -> None:
        self.rule = rule
        self.order = order
        self.match = rule.condition
        self.by = tuple(rule.group_by)
        self.by_paths = tuple(path for path, _getter in self.by)
        self.steps = rule.step_predicates
        self.which_steps: StepPlan = self.step_plan(None)  # with nothing known
        self.realert_ns = rule.realert_ns
        self.stats = RuleStats()
        self.last: dict[str, list[int]] = {}  # group key -> [last fired ns, suppressed]
        self.dirty: set[str] = set()
        # group key -> the hash of its fingerprints' shared material (Engine._fingerprint)
        self.fingerprints: dict[str, HASH] = {}
        self.value_getters: dict[str, Getter] = {}
        self.aggregation: Aggregation | None = None
        self.hit = Hit(Event({}, 0, ""), "", {})  # refilled for each matching event
        self._groups: dict[str, tuple[str, dict[str, Any]]] = {}
        self._groups_many: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        self.values_at = compile_getters(tuple(getter for _path, getter in self.by))
        if rule.aggregation is not None:
            self.aggregation = build_aggregation(
                rule.aggregation,
                rule_id=rule.id,
                max_entries=max_entries,
                tolerance_ns=tolerance_ns,
                holder=Holder(rule.held_paths, hold_full=rule.hold_full),
            )

    def step_plan(self, known: dict[str, Any] | None) -> StepPlan:
        """The sequence steps an event with these ``known`` field values matches
        (``Hit.steps``): a tuple when they decide every step (``success`` true or false
        does for the usual failures-then-success rule), else a function of the event
        checking only what they leave open. ``None``: nothing known."""
        if not self.steps:
            return ()
        specializers = self.rule.step_specializers
        left: list[tuple[int, Any]] = []
        for i, pred in enumerate(self.steps):
            specialize = specializers[i] if i < len(specializers) else None
            try:
                residual = pred if specialize is None or known is None else specialize(known)
            except Exception:  # noqa: BLE001 - no shortcut then: the whole step decides
                residual = pred
            if residual is not False:
                left.append((i, residual))
        if all(residual is True for _i, residual in left):
            return tuple(i for i, _residual in left)
        checks = tuple(left)

        def steps(raw: dict[str, Any]) -> tuple[int, ...]:
            return tuple(i for i, pred in checks if pred is True or pred(raw))

        return steps

    def group(self, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The canonical group key and the ``{path: value}`` group (missing -> null).

        The key is the value itself for the common one-field text group, otherwise NUL +
        compact JSON of the values; a text value starting with NUL takes the JSON form
        too, so two different groups never share a key.
        """
        by = self.by
        if not by:
            return _UNGROUPED
        if len(by) == 1:
            path, getter = by[0]
            value = getter(raw)
            if type(value) is str:
                # The usual group (a user): one (key, group) per value, made once. Groups
                # are shared read-only anyway (windows hold one per series).
                known = self._groups.get(value)
                if known is not None:
                    return known
                if not value.startswith("\x00"):
                    if len(self._groups) >= _GROUP_CACHE_LIMIT:
                        self._groups.clear()  # values are attacker-chosen text: bounded
                    known = self._groups[value] = (value, {path: value})
                    return known
            elif value is MISSING:
                value = None
            return "\x00" + jsonutil.dumps([value], sort_keys=True), {path: value}
        return self._group_many(raw)

    def _group_many(self, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``group`` of a multi-field group, one (key, group) per tuple of text values.

        brute-force-success groups by five fields on every login: building the dict and
        its JSON key each time was most of its cost. Only tuples of text, null and
        missing are remembered: equal tuples then have values of the same types (``1``,
        ``1.0`` and ``true`` are equal but spell different keys). Bounded like the
        one-field cache (attacker-chosen text)."""
        values = self.values_at(raw)
        try:
            known = self._groups_many.get(values)
        except TypeError:  # a list or an object among the values: not remembered
            known = None
        if known is not None:
            return known
        group = {
            path: None if value is MISSING else value
            for path, value in zip(self.by_paths, values, strict=True)
        }
        found = "\x00" + jsonutil.dumps(list(group.values()), sort_keys=True), group
        if all(type(v) is str or v is None or v is MISSING for v in values):
            if len(self._groups_many) >= _GROUP_CACHE_LIMIT:
                self._groups_many.clear()
            self._groups_many[values] = found
        return found

    def values(self, raws: Sequence[dict[str, Any]]) -> Any:
        """``values(path)`` for summaries: sorted distinct values across the events'
        ``raws`` (whole, or the projections of held events: the same for the paths the
        summary names)."""

        def values(path: str) -> list[Any]:
            getter = self.value_getters.get(path)
            if getter is None:
                getter = self.value_getters[path] = compile_path(path)
            seen: dict[str, Any] = {}
            for raw in raws:
                value = getter(raw)
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if item is MISSING or item is None:
                        continue
                    marker = item if isinstance(item, str) else jsonutil.dumps(item, sort_keys=True)
                    seen.setdefault(marker, item)
            return [seen[k] for k in sorted(seen)]

        return values

    def pairs(self, raws: Sequence[dict[str, Any]]) -> Any:
        """``pairs(path, detail)`` for summaries: each distinct value of ``path`` (sorted)
        with the distinct ``detail`` values seen in the same events, ``1.2.3.4 (RU)``, so
        a reader never pairs an IP with another IP's country."""

        def pairs(path: str, detail: str) -> list[str]:
            getters = []
            for p in (path, detail):
                getter = self.value_getters.get(p)
                if getter is None:
                    getter = self.value_getters[p] = compile_path(p)
                getters.append(getter)
            get, get_detail = getters
            seen: dict[str, dict[str, None]] = {}
            for raw in raws:
                value = get(raw)
                if value is MISSING or value is None or value == "":
                    continue
                details = seen.setdefault(str(value), {})
                found = get_detail(raw)
                if found is not MISSING and found is not None and found != "":
                    details.setdefault(str(found), None)
            return [f"{v} ({', '.join(d)})" if d else v for v, d in sorted(seen.items())]

        return pairs


def _with_organization(rule: CompiledRule) -> CompiledRule:
    """The rule grouping by ``organization`` too (kept last; once if already there)."""
    if any(path == ORGANIZATION for path, _getter in rule.group_by):
        return rule
    by = [*rule.group_by, (ORGANIZATION, compile_path(ORGANIZATION))]
    return dataclasses.replace(rule, group_by=by)


Entries = tuple[tuple[_Runner, Any, StepPlan], ...]
"""The (runner, what is left of its condition to check, its steps) an event goes through."""


@dataclass(frozen=True, slots=True)
class Route:
    """The rules an event goes through (``entries``, in rule order) and, for a plan the
    engine keeps, the same as one generated function (``run``, see ``compile_route``)
    and whether some rule's condition is decided true by the plan (``decided``: every
    event of the plan goes through, ``route`` checks nothing)."""

    entries: Entries
    run: Callable[[Event, dict[str, Any]], list[Alert]] | None = dataclasses.field(
        default=None, compare=False
    )
    decided: bool = dataclasses.field(default=False, compare=False)


def _group_share_key(runner: _Runner) -> tuple[Any, ...]:
    """What decides a runner's group: rules with equal keys share one extraction per
    event (one-/two-part paths by their text, other getters by identity)."""
    return tuple(short_path(getter) or getter for _path, getter in runner.by)


def compile_route(
    entries: Entries,
    fire: Callable[[_Runner, list[Firing], list[Alert]], None],
    fail: Callable[[_Runner, Event, Exception], None],
) -> Callable[[Event, dict[str, Any]], list[Alert]]:
    """``Engine.process``'s loop over ``entries`` unrolled into one straight-line function.

    The login plan of the portal mix holds seven rules and meets 80% of events: the
    generic loop paid, per rule and event, the tuple unpacking, ``match is True`` and
    step checks, attribute loads and the group-key comparison. Here what the plan decides
    is left out of the code (a decided condition, constant steps, no aggregation), each
    rule's objects are constants, and rules with the same group share one extraction
    (made at the first rule that matches). Each rule keeps its own ``try``: one rule
    raising on an event does not stop the others (``fail`` reports it). The source is
    built from indexes only; rule text never enters it.
    """
    namespace: dict[str, Any] = {"Firing": Firing, "fire": fire, "fail": fail}
    lines = ["def run(event, raw):", "    out = []"]
    shared: dict[tuple[Any, ...], str] = {}
    for i, (runner, match, steps) in enumerate(entries):
        if runner.by:
            share = _group_share_key(runner)
            slot = shared.get(share)
            if slot is None:
                slot = shared[share] = f"G{len(shared)}"
                lines.insert(2, f"    {slot} = None")
        namespace.update({f"r{i}": runner, f"s{i}": runner.stats, f"m{i}": match})
        lines.append("    try:")
        pad = "        "
        if match is not True:
            lines.append(f"{pad}if m{i}(raw):")
            pad += "    "
        lines.append(f"{pad}s{i}.matched += 1")
        if runner.by:
            namespace[f"g{i}"] = runner.group
            lines.append(f"{pad}if {slot} is None:")
            lines.append(f"{pad}    {slot} = g{i}(raw)")
            grouped = slot
        else:
            namespace["UNGROUPED"] = _UNGROUPED
            grouped = "UNGROUPED"
        if runner.aggregation is None:
            lines.append(f"{pad}key, group = {grouped}")
            lines.append(f"{pad}fire(r{i}, [Firing(key, group, event, [event], 1)], out)")
        else:
            # One Hit per runner, refilled (never kept): benchmarks/README.md, "One Hit per runner".
            namespace.update({f"h{i}": runner.hit, f"a{i}": runner.aggregation.add})
            lines.append(f"{pad}h{i}.event = event")
            lines.append(f"{pad}h{i}.group_key, h{i}.group = {grouped}")
            if runner.steps:
                namespace[f"t{i}"] = steps
                call = "" if isinstance(steps, tuple) else "(raw)"
                lines.append(f"{pad}h{i}.steps = t{i}{call}")
            lines.append(f"{pad}firings = a{i}(h{i})")
            lines.append(f"{pad}if firings:")
            lines.append(f"{pad}    fire(r{i}, firings, out)")
        lines.append("    except Exception as exc:  # one bad event or rule must not stop the rest")
        lines.append(f"        fail(r{i}, event, exc)")
    lines.append("    return out")
    exec("\n".join(lines) + "\n", namespace)  # noqa: S102 - generated from indexes only
    run: Callable[[Event, dict[str, Any]], list[Alert]] = namespace["run"]
    return run


def default_summary(title: str, group: dict[str, Any], count: int) -> str:
    """``Title: alice (10 events)`` — what a rule without ``summary:`` says."""
    noun = "event" if count == 1 else "events"
    values = ", ".join(str(v) for v in group.values())
    return f"{title}: {values} ({count} {noun})" if values else f"{title} ({count} {noun})"


def same_definition(a: CompiledRule, b: CompiledRule) -> bool:
    """Whether two loaded rules detect the same way (their inline tests may differ)."""
    # The compiled condition too: a Sigma filter in another file can change it.
    return (
        a.condition_text == b.condition_text
        and a.event_types == b.event_types
        and a.model.model_dump(exclude={"tests"}) == b.model.model_dump(exclude={"tests"})
    )


class Engine:
    """Evaluates rules over events; see the module docstring for the contract."""

    def __init__(
        self,
        rules: Iterable[CompiledRule],
        *,
        store: Store | None = None,
        max_entries_per_rule: int = DEFAULT_MAX_ENTRIES,
        use_index: bool = True,
        tolerance_ns: int = DEFAULT_TOLERANCE_NS,
        group_by_organization: bool = False,
        org_names: Mapping[str, str] | None = None,
    ) -> None:
        """``group_by_organization`` (MSP mode, several orgs in one stream): every rule's
        group gains the event's ``organization``, so the same user name in two customer
        orgs is two groups. ``org_names`` maps org ids to the display name alerts carry."""
        self.rules = [r for r in rules if r.enabled]
        if group_by_organization:
            self.rules = [_with_organization(r) for r in self.rules]
        self._org_names = dict(org_names or {})
        # How late (event time) a hit may arrive and still be judged against its
        # neighbours: the service passes its source's overlap.
        self.tolerance_ns = tolerance_ns
        self._runners = [
            _Runner(rule, i, max_entries_per_rule, tolerance_ns)
            for i, rule in enumerate(self.rules)
        ]
        self._use_index = use_index
        self._warmup = False
        self._build_index()
        if store is not None:
            self.restore(store)

    def baselines(self) -> dict[str, NewValueAggregation]:
        """The aggregation of each baseline (new_value) rule, by rule id."""
        return {
            r.rule.id: r.aggregation
            for r in self._runners
            if isinstance(r.aggregation, NewValueAggregation)
        }

    def restricted_to(self, rule_ids: Collection[str]) -> Engine:
        """This engine evaluating only the rules in ``rule_ids``, with the same runners:
        their windows, baselines and realert state are this engine's. A ``--jobs``
        worker routes the events of other workers' partitions through it
        (``replay_parallel``), so that each rule's state stays in one place."""
        view = Engine.__new__(Engine)  # a plain engine, whatever subclass this is
        view.__dict__.update(self.__dict__)
        view.rules = [rule for rule in self.rules if rule.id in rule_ids]
        view._runners = [r for r in self._runners if r.rule.id in rule_ids]
        view._build_index()  # its own index and plans, over the shared runners
        return view

    # ----------------------------------------------------------------- index

    def _build_index(self) -> None:
        """Everything derived from the runners: the index by event type, the flag
        fields and the (empty) plan caches."""
        # rules whose aggregation fires when a period is over (digests): see due()
        self._due = [r for r in self._runners if hasattr(r.aggregation, "due")]
        self._by_type: dict[str, list[_Runner]] = {}
        self._type_cache: dict[str, Route] = {}
        # Plans per (event_type, values of the flag fields): see _plan_for.
        self._flags = flag_fields(self.rules) if self._use_index else ()
        self._probe = compile_values(("event_type", *self._flags))
        self._plans: dict[tuple[Any, ...], Route] = {}
        catch_all: list[_Runner] = []
        for runner in self._runners:
            types = runner.rule.event_types if self._use_index else None
            if types is None:
                catch_all.append(runner)
            else:
                for t in types:
                    self._by_type.setdefault(t, []).append(runner)
        self._catch_all: tuple[_Runner, ...] = tuple(catch_all)
        self._catch_all_plan = self._compiled(
            tuple((r, r.match, r.which_steps) for r in self._catch_all)
        )
        # An event_type that is present but not text (a list, drifted schema) can still
        # satisfy `event_type: x` (any element matches), so it meets every rule in full.
        self._every_plan = self._compiled(tuple((r, r.match, r.which_steps) for r in self._runners))

    def _indexed(self, event_type: str) -> tuple[_Runner, ...]:
        """The runners the index gives for ``event_type``, in rule order."""
        specific = self._by_type.get(event_type.lower(), [])
        return tuple(sorted((*specific, *self._catch_all), key=lambda r: r.order))

    def _plan(self, event_type: str) -> Route:
        """(runner, what is left of its condition) for events of this exact type.

        Each condition is partly evaluated for the type: a rule it rules out is left out,
        one it decides needs no check (``True``), the rest keep only their other entries.
        Cached per distinct type text; past the cache limit (types are attacker-chosen
        text) events fall back to the plain index and full conditions.
        """
        found = self._type_cache.get(event_type)
        if found is not None:
            return found
        runners = self._indexed(event_type)
        if len(self._type_cache) >= _TYPE_CACHE_LIMIT:
            return Route(tuple((r, r.match, r.which_steps) for r in runners))
        found = self._type_cache[event_type] = self._specialized(
            runners, {"event_type": event_type}
        )
        return found

    def _specialized(self, runners: tuple[_Runner, ...], known: dict[str, Any]) -> Route:
        """Each runner's condition partly evaluated for ``known`` field values; the
        runners it rules out left out."""
        plan = []
        for runner in runners:
            specialize = runner.rule.specialize if self._use_index else None
            try:
                residual = runner.match if specialize is None else specialize(known)
            except Exception:  # noqa: BLE001 - no shortcut then: the full condition decides
                residual = runner.match
            if residual is not False:
                steps = runner.step_plan(known if self._use_index else None)
                plan.append((runner, residual, steps))
        return self._compiled(tuple(plan))

    def _compiled(self, entries: Entries) -> Route:
        """A plan the engine keeps, with its generated function (``compile_route``)."""
        decided = any(match is True for _runner, match, _steps in entries)
        return Route(entries, compile_route(entries, self._fire, self._fail), decided)

    def _plan_known(self, key: tuple[Any, ...]) -> Route:
        """The plan for events whose ``event_type`` and flag fields have these values."""
        event_type = key[0]
        if len(self._plans) >= _TYPE_CACHE_LIMIT:
            return self._plan(event_type)  # attacker-chosen values: per type only, then
        known = {"event_type": event_type}
        for field, value in zip(self._flags, key[1:], strict=True):
            known[field] = MISSING if value is None else value  # the same verdict: see flag_fields
        found = self._plans[key] = self._specialized(self._indexed(event_type), known)
        return found

    def candidates(self, event: Event) -> list[str]:
        """The ids of the rules an event is evaluated against (for tests and debugging)."""
        et = event.raw.get("event_type")
        if type(et) is str:
            runners = self._indexed(et)
        else:
            runners = self._catch_all if et is None else tuple(self._runners)
        return [r.rule.id for r in runners]

    # ----------------------------------------------------------------- processing

    def _plan_for(self, raw: dict[str, Any]) -> Route:
        """The (runner, condition left to check) pairs an event must go through.

        Plans are cached per event type and values of the flag fields (``success``,
        ``mfa``, ...): most events then meet only the rules they match, with nothing
        left to check. A flag that holds a list or an object (no cache key) falls back
        to the plan per event type.
        """
        et = raw.get("event_type")
        if type(et) is str:
            key = self._probe(raw)
            try:
                plan = self._plans.get(key)
            except TypeError:  # unhashable: a list or object where a flag should be
                return self._plan(et)
            return self._plan_known(key) if plan is None else plan
        return self._catch_all_plan if et is None else self._every_plan

    def process(self, event: Event, route: Route | None = None) -> list[Alert]:
        """Evaluate one event; return the alerts it raises (none during warm-up).

        ``route``: what this engine's ``route()`` gave for the event's fields, if asked.
        """
        raw = event.raw
        plan = self._plan_for(raw) if route is None else route
        run = plan.run
        if run is not None:
            return run(event, raw)
        return self._run(plan.entries, event, raw)

    def _run(self, entries: Entries, event: Event, raw: dict[str, Any]) -> list[Alert]:
        """``process`` for a plan not kept (past the cache limits): the generic loop that
        ``compile_route`` unrolls for the kept ones."""
        out: list[Alert] = []
        # Rules grouping by the same fields (e.g. travel and new-country, both by user)
        # share one group extraction per event.
        last_paths: tuple[str, ...] | None = None
        grouped = _UNGROUPED  # set at the first match
        for runner, match, steps in entries:
            try:
                if match is not True and not match(raw):
                    continue
                runner.stats.matched += 1
                if runner.by_paths != last_paths:
                    grouped = runner.group(raw)
                    last_paths = runner.by_paths
                key, group = grouped
                aggregation = runner.aggregation
                if aggregation is None:
                    firings = [Firing(key, group, event, [event], 1)]
                else:
                    # One Hit per runner, refilled (never kept): benchmarks/README.md, "One Hit per runner".
                    hit = runner.hit
                    hit.event = event
                    hit.group_key = key
                    hit.group = group
                    if runner.steps:
                        hit.steps = steps if isinstance(steps, tuple) else steps(raw)
                    firings = aggregation.add(hit)
                if firings:
                    self._fire(runner, firings, out)
            except Exception as exc:  # noqa: BLE001 - one bad event or rule must not stop the rest
                self._fail(runner, event, exc)
        return out

    def _fire(self, runner: _Runner, firings: list[Firing], out: list[Alert]) -> None:
        """The alerts of a rule's ``firings`` that realert lets go, onto ``out``."""
        if self._warmup:
            return
        for firing in firings:
            alert = self._realert(runner, firing)
            if alert is not None:
                out.append(alert)

    def _fail(self, runner: _Runner, event: Event, exc: Exception) -> None:
        """Count and report a rule that raised on an event (the others go on)."""
        runner.stats.errors += 1
        logger.error(
            "rule %s failed on event %s (%s: %s); the event is skipped for this rule",
            runner.rule.id,
            event.id,
            type(exc).__name__,
            exc,
        )
        logger.debug("rule failure detail", exc_info=True)

    def can_match(self, event: Event) -> bool:
        """Whether some rule's condition may hold for ``event`` (see ``may_match``)."""
        return self.may_match(event.raw)

    def may_match(self, raw: dict[str, Any]) -> bool:
        """Whether some rule's condition may hold for an event with these fields.

        When it is False, ``process()`` would change nothing and return no alert, so a
        caller holding many events (the replay) may skip the event. ``raw`` needs only the
        fields the conditions read (``condition_fields``). A condition that raises counts
        as a match: ``process`` then reports the error.
        """
        return self.route(raw) is not None

    def route(self, raw: dict[str, Any]) -> Route | None:
        """The rules an event with these fields goes through, None when ``may_match`` is
        False. A caller that reads the fields ahead (the replay's reader, from the head)
        hands the route back to ``process`` with the event, which then skips finding it
        again."""
        plan = self._plan_for(raw)
        if plan.decided:
            return plan
        for _runner, match, _steps in plan.entries:
            if match is True:
                return plan
            try:
                if match(raw):
                    return plan
            except Exception:  # noqa: BLE001 - process() reports it
                return plan
        return None

    def matched_rules(self, raw: dict[str, Any]) -> list[str]:
        """The ids of the rules whose condition holds for an event with these fields, in
        rule order (a condition that raises counts, as in ``route``). ``--jobs`` weighs
        its split by these over a sample of the input (``replay_parallel.rule_weights``)."""
        matched = []
        for runner, match, _steps in self._plan_for(raw).entries:
            try:
                if match is True or match(raw):
                    matched.append(runner.rule.id)
            except Exception:  # noqa: BLE001 - process() reports it
                matched.append(runner.rule.id)
        return matched

    def condition_fields(self) -> frozenset[str] | None:
        """The top-level event fields the rules' conditions read (None: any field may be).

        ``may_match`` on an event decoded in just these fields answers as on the whole.
        """
        return condition_fields(self.rules)

    def fields_read(self) -> frozenset[str] | None:
        """The top-level event fields the rules read (None: any field may be read).

        ``process()`` gives the same results on events decoded in just these fields
        (``JsonEvent.partial``); their alerts show them whole (``Event.complete``).
        """
        return fields_read(self.rules)

    def process_many(self, events: Iterable[Event]) -> list[Alert]:
        """Evaluate events in the given order; return all alerts raised."""
        out: list[Alert] = []
        process = self.process
        for event in events:
            alerts = process(event)
            if alerts:
                out.extend(alerts)
        return out

    def _realert(self, runner: _Runner, firing: Firing) -> Alert | None:
        """Apply ``realert`` per rule + group on event time; build the alert if it goes."""
        carried = 0
        window = runner.realert_ns
        if window > 0:
            t = firing.trigger.time_ns if firing.at_ns is None else firing.at_ns
            state = runner.last.get(firing.group_key)
            runner.dirty.add(firing.group_key)
            if state is not None and abs(t - state[0]) < window:
                state[1] += 1
                runner.stats.suppressed += 1
                return None
            if state is None:
                runner.last[firing.group_key] = [t, 0]
            else:
                carried = state[1]
                state[0] = max(state[0], t)
                state[1] = 0
        runner.stats.alerts += 1
        return self._alert(runner, firing, carried)

    def _alert(self, runner: _Runner, firing: Firing, suppressed: int) -> Alert:
        rule = runner.rule
        events = firing.events or [firing.trigger]
        if len(events) == 1 and events[0] is firing.trigger:  # a rule without a window
            first = last = firing.trigger
            samples = events
        else:
            first = min(events, key=lambda e: (e.time_ns, e.id))
            last = max(events, key=lambda e: (e.time_ns, e.id))
            # The newest events still held in full (windows keep the newest few of a
            # group whole), always with the trigger.
            samples = pick_samples(events, firing.trigger, MAX_SAMPLE_EVENTS)
        group = dict(firing.group)
        sample_raws = [e.complete().raw for e in samples]
        first_time = format_timestamp(first.time_ns)
        last_time = first_time if last is first else format_timestamp(last.time_ns)
        organization = group.get(ORGANIZATION)
        if organization is None and sample_raws:  # the trigger is among the samples
            trigger = firing.trigger
            at = (
                0
                if samples[0] is trigger
                else next((i for i, e in enumerate(samples) if e is trigger), -1)
            )
            organization = sample_raws[at].get(ORGANIZATION)
        organization = organization if isinstance(organization, str) else ""
        return Alert(
            rule=rule.id,
            title=rule.title,
            severity=rule.severity,
            group=group,
            count=firing.count,
            first_event_time=first_time,
            last_event_time=last_time,
            event_ids=[e.id for e in events[:MAX_EVENT_IDS]],
            fingerprint=self._fingerprint(runner, firing),
            summary=self._summary(runner, firing, events, first, last),
            events=sample_raws,
            tags=list(rule.tags),
            description=rule.description,
            suppressed=suppressed,
            references=list(rule.references),
            runbook=rule.runbook,
            organization=organization,
            organization_name=self._org_names.get(organization, ""),
        )

    @staticmethod
    def _fingerprint(runner: _Runner, firing: Firing) -> str:
        """``make_fingerprint`` of the firing, its group's part hashed once per group."""
        base = runner.fingerprints.get(firing.group_key)
        if base is None:
            if len(runner.fingerprints) >= _FINGERPRINT_CACHE_LIMIT:
                runner.fingerprints.clear()  # group values are attacker-chosen: bounded
            base = fingerprint_base(runner.rule.id, firing.group)
            runner.fingerprints[firing.group_key] = base
        return fingerprint_from(base, firing.trigger.id)

    def _summary(
        self, runner: _Runner, firing: Firing, events: list[Event], first: Event, last: Event
    ) -> str:
        rule = runner.rule
        summary = rule.summary
        if summary is None:
            return default_summary(rule.title, firing.group, firing.count)
        try:
            text = summary.render(self._summary_variables(runner, firing, events, first, last))
            text = text.strip()
        except Exception as exc:  # noqa: BLE001 - a template must never drop an alert
            runner.stats.errors += 1
            logger.warning(
                "rule %s: summary template failed (%s); using the default summary",
                rule.id,
                exc,
            )
            fallback = default_summary(rule.title, firing.group, firing.count)
            return f"{fallback} [summary template failed: {exc}]"[:MAX_SUMMARY_CHARS]
        return (
            text[:MAX_SUMMARY_CHARS]
            if text
            else default_summary(rule.title, firing.group, firing.count)
        )

    @staticmethod
    def _summary_variables(
        runner: _Runner, firing: Firing, events: list[Event], first: Event, last: Event
    ) -> dict[str, Any]:
        """The variables the rule's summary reads, and only those (the others cost an
        events list, closures and dicts per alert: benchmarks/README.md)."""
        rule = runner.rule
        assert rule.summary is not None
        names = rule.summary.names
        out: dict[str, Any] = {}
        if "first" in names or "last" in names:
            if rule.hold_full:
                first, last = first.complete(), last.complete()
            out["first"] = first.raw
            out["last"] = last.raw
        if "events" in names or "values" in names or "pairs" in names:
            # Parsed once for ``events`` and ``values``. Held events give their
            # projections, which carry every field the template reads; a template that
            # needs whole events holds them whole and gets them complete.
            raws = [(e.complete() if rule.hold_full else e).raw for e in events]
            out["events"] = raws
            out["values"] = runner.values(raws)
            out["pairs"] = runner.pairs(raws)
        out["count"] = firing.count
        out["group"] = firing.group
        out["details"] = firing.details
        if "rule" in names:
            out["rule"] = {"id": rule.id, "title": rule.title, "severity": rule.severity}
        out["title"] = rule.title
        out["severity"] = rule.severity
        return out

    # ----------------------------------------------------------------- state

    @contextmanager
    def warmup(self) -> Iterator[None]:
        """Feed events to rebuild windows after a restart: no alerts, realert untouched."""
        previous = self._warmup
        self._warmup = True
        try:
            yield
        finally:
            self._warmup = previous

    def assume_in_order(self) -> None:
        """Every event from now on comes in ``(time, id)`` order, as a replay that reads
        strictly in order promises: a sequence then keeps nothing that only a late hit
        could need (``deferred_projection``). Only ever given for the engine's whole
        remaining life: a later late event would meet what it did not keep."""
        for runner in self._runners:
            if runner.aggregation is not None:
                runner.aggregation.assume_in_order()

    def due(self, watermark_ns: int) -> list[Alert]:
        """The alerts of periods over at ``watermark_ns`` (digests), none during warm-up.

        Separate from ``advance`` (eviction, whenever convenient) so that a caller asks
        where it fixes the order: the poll with each batch, replay once at the end."""
        out: list[Alert] = []
        for runner in self._due:
            assert runner.aggregation is not None
            for firing in runner.aggregation.due(watermark_ns):  # type: ignore[attr-defined]
                alert = None if self._warmup else self._realert(runner, firing)
                if alert is not None:
                    out.append(alert)
        return out

    def advance(self, watermark_ns: int) -> None:
        """Event time has reached ``watermark_ns``: evict what can no longer matter."""
        for runner in self._runners:
            if runner.aggregation is not None:
                runner.aggregation.evict(watermark_ns)
            window = runner.realert_ns
            if window > 0 and runner.last:
                # A realert state goes once no firing to come can fall within its window:
                # firings carry the watermark's time or later, but a digest's carries its
                # period's end, and a period may still be open far behind the watermark
                # (replay asks for the periods over only at the end).
                upcoming = watermark_ns
                if runner in self._due:
                    open_end = runner.aggregation.first_open_end_ns()  # type: ignore[union-attr]
                    if open_end is not None and open_end < upcoming:
                        upcoming = open_end
                expired = [
                    k
                    for k, (t, suppressed) in runner.last.items()
                    if suppressed == 0 and upcoming - t >= window
                ]
                for k in expired:
                    del runner.last[k]

    def flush(self, store: Store) -> None:
        """Persist realert state and aggregation state (inside the caller's transaction)."""
        for runner in self._runners:
            if runner.dirty:
                rows = [
                    (k, runner.last[k][0], runner.last[k][1])
                    for k in sorted(runner.dirty)
                    if k in runner.last
                ]
                if rows:
                    store.put_realert(runner.rule.id, rows)
                runner.dirty.clear()
            if runner.aggregation is not None:
                runner.aggregation.flush(store)

    def restore(self, store: Store) -> None:
        """Load realert state and baselines saved by ``flush``."""
        for runner in self._runners:
            if runner.realert_ns > 0:
                runner.last = {
                    k: [t, s] for k, (t, s) in store.load_realert(runner.rule.id).items()
                }
            if runner.aggregation is not None:
                runner.aggregation.restore(store)

    def carry_over(self, previous: Engine) -> list[str]:
        """Take over the live state (windows, realert, counters) of every rule whose
        definition is the same in ``previous``; returns their ids.

        A reload builds a new engine from the new rules (realert and baselines come from
        the store) and then keeps what only memory holds for the rules that did not change:
        a half-full threshold window survives an edit of another rule.
        """
        old = {r.rule.id: r for r in previous._runners}
        kept = []
        for i, runner in enumerate(self._runners):
            before = old.get(runner.rule.id)
            if before is None or not same_definition(before.rule, runner.rule):
                continue
            if previous.tolerance_ns != self.tolerance_ns:
                continue
            before.order = i
            self._runners[i] = before
            kept.append(runner.rule.id)
        if kept:
            self._build_index()  # over the kept runners, digests' due() included
        return kept

    @property
    def longest_window_ns(self) -> int:
        """How much event history rebuilds every window after a restart."""
        return max((r.window_ns for r in self.rules), default=0)

    @property
    def stats(self) -> dict[str, RuleStats]:
        """Per enabled rule: events matched, alerts, suppressed, errors."""
        return {r.rule.id: r.stats for r in self._runners}
