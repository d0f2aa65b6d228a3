"""Window entries held slim: an event keeps its full JSON only while it may be a sample.

A window can hold a million events, and an alert reads few of them back: its ``events``
samples (the newest ``MAX_SAMPLE_EVENTS`` contributing events) and whatever fields the
rule's ``summary:`` template reads through ``first``, ``last`` and ``values(path)``.
So a held event (``HeldEvent``) keeps its id, its time and

* its full JSON bytes while it is among the newest ``MAX_SAMPLE_EVENTS`` of its series
  (``Series`` drops them when newer entries push it out: ``slim()``), and
* a *projection*: the fields the rule reads (``None`` when it reads none), kept for the
  event's whole stay: taken while ``raw`` is hot (one lookup per field) and encoded at
  once as one compact JSON list of values. ``raw`` of a slim event rebuilds the fields
  nested as in the event. (Keeping the values until the event is slimmed and encoding
  them then was measured slower: a long-lived tuple per entry costs the collector more
  than the encoding saves.)

Which fields a rule reads is decided once, at load, from the Jinja AST of its summary
(``summary_needs``); a template that needs whole events (``events``, ``first`` used
bare, a JSONPath ``values``) makes the rule hold every event in full, as before.
``Holder`` builds held events for one rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Final

from jinja2 import nodes

from alerting import jsonutil
from alerting.alert import MAX_SAMPLE_EVENTS
from alerting.events import Event, JsonEvent, format_timestamp

__all__ = [
    "MAX_SAMPLE_EVENTS",
    "HeldEvent",
    "Holder",
    "SummaryNeeds",
    "event_json",
    "held_in_full",
    "pick_samples",
    "summary_needs",
]

FieldPath = tuple[str, ...]
"""A projected field as its keys from the event's root: ``("geoip", "country_code")``."""

_ABSENT: Final = object()


class _Keep(Enum):
    """``HeldEvent._part`` of a rule that holds every event in full (never slimmed)."""

    FULL = "full"


class HeldEvent(Event):
    """An event in a window: id, time, full JSON while it may be a sample, projection.

    ``raw`` is the full event (a fresh dict parsed from the JSON bytes) while held in
    full; afterwards a partial dict rebuilt from the projection: the projected fields
    nested as in the event, plus ``id`` and ``timestamp`` (this object's id and time)
    unless the projection carries the event's own.

    ``_part`` is ``_Keep.FULL`` (a rule that holds events whole: never slimmed), None
    (nothing projected) or the projection's JSON (see ``Holder``). A holder that
    projects gives its events a subclass naming it, to rebuild ``raw`` with.
    """

    __slots__ = ("_full", "_part")

    _holder: ClassVar[Holder | None] = None
    _add_identity: ClassVar[bool] = True

    def __init__(
        self,
        time_ns: int,
        event_id: str,
        full: bytes | None,
        part: bytes | _Keep | None,
    ) -> None:
        self.time_ns = time_ns
        self.id = event_id
        self._full = full
        self._part = part

    @property
    def raw(self) -> dict[str, Any]:  # type: ignore[override]
        full = self._full
        if full is not None:
            try:
                value: dict[str, Any] = jsonutil.loads(full)
                return value
            except ValueError:  # e.g. 1e999 in a field no rule reads
                whole = jsonutil.loads_whole(full)
                if whole is not None:
                    return whole
                # nothing parses it whole: the fields read, as once slimmed
        part = self._part
        holder = self._holder
        partial = holder.rebuild(part) if holder is not None and type(part) is bytes else {}
        if self._add_identity:
            if "id" not in partial:
                partial["id"] = self.id
            if "timestamp" not in partial:
                partial["timestamp"] = format_timestamp(self.time_ns)
        return partial

    @classmethod
    def whole(cls, time_ns: int, event_id: str, full: bytes) -> HeldEvent:
        """An entry kept whole for its whole stay (never slimmed)."""
        return cls(time_ns, event_id, full, _Keep.FULL)

    @property
    def full(self) -> bool:
        """Whether ``raw`` is the whole event (else the projection)."""
        return self._full is not None

    def slim(self) -> None:
        """Drop the full JSON (keep the projection); no-op for a rule that holds full."""
        if self._part is not _Keep.FULL:
            self._full = None

    def __repr__(self) -> str:
        state = "full" if self._full is not None else "slim"
        return f"HeldEvent(id={self.id!r}, time_ns={self.time_ns}, {state})"


def held_in_full(event: Event) -> bool:
    """Whether ``event.raw`` is the whole event (every event that is not held slim)."""
    return event.full if isinstance(event, HeldEvent) else True


def pick_samples(events: Sequence[Event], trigger: Event, limit: int) -> list[Event]:
    """An alert's sample events: the newest of ``events`` still held in full, at most
    ``limit``, in event-time order, always including ``trigger``.

    ``events`` is in event-time order. The trigger is normally the newest event and held
    in full; a late event can make an older, already slimmed entry the trigger, which
    then goes in as held (its projection, id and timestamp) rather than be left out.
    """
    picked: list[Event] = []
    has_trigger = False
    for event in reversed(events):
        if len(picked) >= limit:
            break
        if event is trigger:
            picked.append(event)
            has_trigger = True
        elif held_in_full(event):
            picked.append(event)
    if not has_trigger and limit > 0:
        picked = [*picked[: limit - 1], trigger]
    picked.sort(key=lambda e: (e.time_ns, e.id))
    return picked


# The last plain event encoded, with its bytes: every rule holding the same event then
# shares one bytes object. A tuple read once is consistent even across threads.
_last_encoded: tuple[Event, bytes] | None = None


def event_json(event: Event) -> bytes:
    """The event's whole JSON: the line it was parsed from, or ``raw`` encoded once."""
    global _last_encoded
    if type(event) is JsonEvent:
        return event.blob
    last = _last_encoded
    if last is not None and last[0] is event:
        return last[1]
    blob = jsonutil.dumps(event.raw).encode()
    _last_encoded = (event, blob)
    return blob


class Holder:
    """Builds one rule's held events: full JSON plus the rule's projection.

    ``paths`` are the fields to keep for an event's whole stay; ``hold_full`` keeps every
    event in full instead (a summary that needs whole events).

    Each path is followed through dicts. The value at its end is kept; so is a value
    that is not a dict before the end (``changes`` for ``changes.field`` on a list), so
    a template reading through it sees exactly what the event had; and when a key is
    missing, the dicts before it are kept (partially), so ``last.resource is defined``
    holds without ``resource.email``. The projection is the JSON list ``[value, ...]``
    with one value per path when each ends at its last key (the usual case), else
    ``[codes, value, ...]``: per path, ``d`` for a value at its first ``d`` keys, ``-d``
    for the ``d``-th key missing (value null).

    Windows keep the parts of a held event as columns (``alerting.engine.windows``):
    ``project`` makes the projection (None: the rule projects nothing) and ``event``
    makes the ``HeldEvent`` of an entry when a firing needs it.
    """

    __slots__ = ("_cls", "_ends", "hold_full", "paths", "project")

    def __init__(self, paths: Iterable[FieldPath] = (), *, hold_full: bool = False) -> None:
        self.hold_full = hold_full
        self.paths: tuple[FieldPath, ...] = () if hold_full else _minimal(paths)
        self._ends = tuple(len(p) for p in self.paths)
        self.project: Callable[[dict[str, Any]], bytes] | None = (
            _compile_projection(self.paths) if self.paths else None
        )
        identity = any(p in (("id",), ("timestamp",)) for p in self.paths)
        attrs = {"__slots__": (), "_holder": self, "_add_identity": not identity}
        self._cls: type[HeldEvent] = (
            type("ProjectedEvent", (HeldEvent,), attrs) if self.paths else HeldEvent
        )

    @classmethod
    def full(cls) -> Holder:
        """A holder that keeps every event in full (aggregations built without a rule)."""
        return cls(hold_full=True)

    def hold(self, event: Event) -> HeldEvent:
        """The held form of ``event`` (being processed now: its ``raw`` is hot).

        It starts in full; the series slims it once newer entries push it out of the
        newest ``MAX_SAMPLE_EVENTS``.
        """
        full = event.blob if type(event) is JsonEvent else event_json(event)
        project = self.project
        part = None if project is None else project(event.raw)
        return self.event(event.time_ns, event.id, full, part)

    def event(
        self, time_ns: int, event_id: str, full: bytes | None, part: bytes | None
    ) -> HeldEvent:
        """The held event of a window entry: its full JSON (None once slim), projection."""
        if self.hold_full:
            return HeldEvent(time_ns, event_id, full, _Keep.FULL)
        return self._cls(time_ns, event_id, full, part)

    def rebuild(self, data: bytes) -> dict[str, Any]:
        """The partial event a slim projection stands for (nested as in the event)."""
        items = jsonutil.loads(data)
        if len(items) == len(self.paths):
            codes, values = self._ends, items
        else:
            codes, values = items[0], items[1:]
        out: dict[str, Any] = {}
        for path, code, value in zip(self.paths, codes, values, strict=True):
            node = out
            for key in path[: abs(code) - 1]:  # the dicts on the way
                node = node.setdefault(key, {})
            if code > 0:
                node[path[code - 1]] = value
        return out


def _compile_projection(paths: tuple[FieldPath, ...]) -> Callable[[dict[str, Any]], bytes]:
    """``raw -> projection JSON`` (see ``Holder``) as one straight-line function: the hot
    path, every held event of a projecting rule.

    Each path is followed with ``dict.get`` and a type check per key, setting its value
    and code; the codes are written out only when some path did not end at its last key
    (a portal login has no ``src_ip``). Generated once per rule: a loop over the paths
    costs twice as much per event, and an exception for a missing key more. The source
    holds only generated names; the keys (rule text) are bound as constants in its
    namespace, never spliced into it.
    """
    namespace: dict[str, Any] = {"A": _ABSENT, "dict": dict, "dumpb": jsonutil.dumpb}
    tops: dict[str, str] = {}  # top-level key -> local name
    lines: list[str] = []

    def key_name(key: str) -> str:
        name = f"k{len(namespace)}"
        namespace[name] = key
        return name

    for i, path in enumerate(paths):
        top = tops.get(path[0])
        if top is None:
            top = tops[path[0]] = f"t{len(tops)}"
            lines.append(f"{top} = raw.get({key_name(path[0])}, A)")
        node, indent = top, ""
        for depth in range(1, len(path) + 1):
            lines.append(f"{indent}if {node} is A:")
            lines.append(f"{indent}    v{i} = None; c{i} = {-depth}")
            if depth == len(path):
                lines.append(f"{indent}else:")
            else:
                lines.append(f"{indent}elif type({node}) is not dict:")
            lines.append(f"{indent}    v{i} = {node}; c{i} = {depth}")
            if depth < len(path):
                lines.append(f"{indent}else:")
                indent += "    "
                child = f"n{i}_{depth}"
                lines.append(f"{indent}{child} = {node}.get({key_name(path[depth])}, A)")
                node = child
    values = ", ".join(f"v{i}" for i in range(len(paths)))
    codes = ", ".join(f"c{i}" for i in range(len(paths)))
    ended = " and ".join(f"c{i} == {len(p)}" for i, p in enumerate(paths))
    lines.append(f"if {ended}:")
    lines.append(f"    return dumpb([{values}])")
    lines.append(f"return dumpb([[{codes}], {values}])")
    source = "def project(raw):\n" + "".join(f"    {line}\n" for line in lines)
    exec(source, namespace)  # noqa: S102 - generated from names only (see above)
    project: Callable[[dict[str, Any]], bytes] = namespace["project"]
    return project


def _minimal(paths: Iterable[FieldPath]) -> tuple[FieldPath, ...]:
    """Distinct paths, sorted, without those inside another one (kept whole anyway)."""
    out: list[FieldPath] = []
    for path in sorted(set(paths)):
        if not path:
            continue
        if out and path[: len(out[-1])] == out[-1]:
            continue  # sorted: a covering prefix comes right before what it covers
        out.append(path)
    return tuple(out)


# ---------------------------------------------------------------------- summary analysis


@dataclass(frozen=True, slots=True)
class SummaryNeeds:
    """What a summary template reads of held events."""

    paths: tuple[FieldPath, ...] = ()
    hold_full: bool = False


_EVENT_NAMES = frozenset({"first", "last"})
# Jinja's getattr tries the Python attribute before the key (getitem falls back to it):
# ``last.items`` is the dict method, whose result depends on every key, not one field.
_DICT_ATTRIBUTES = frozenset(dir(dict))


def summary_needs(template: nodes.Template) -> SummaryNeeds:
    """The fields a summary reads from contributing events, from its parsed AST.

    ``values('a.b')`` reads ``a.b``; ``first.geoip.country_code`` (or ``last['geoip']``)
    reads that chain up to the first part that is not a constant name. ``last.geoip is
    defined`` reads only whether ``geoip`` is there, which the projection of any longer
    path through it keeps (``Holder``: the dicts on the way are kept, partially), so it
    adds ``geoip`` only when nothing under it is read. Anything that
    could see more than named fields — ``events`` at all, ``first``/``last`` used bare
    (``{{ last }}``, ``last | tojson``, ``last.items()``), ``values`` with a computed or
    JSONPath argument — needs whole events (``hold_full``). ``group``, ``count`` and
    ``details`` need nothing held.
    """
    paths: set[FieldPath] = set()
    tested: set[FieldPath] = set()  # only tested for existence: ``x is defined``
    full = False

    def visit(node: nodes.Node) -> None:
        nonlocal full
        if isinstance(node, nodes.Test) and node.name in _EXISTENCE_TESTS:
            found = _event_chain(node.node)
            plain = not (node.args or node.kwargs or node.dyn_args)
            # a field (not the event itself), constant keys all the way
            if plain and found is not None and found[1] and len(found[1]) == len(found[0]):
                tested.add(found[1])
                return
        if isinstance(node, nodes.Getattr | nodes.Getitem):
            found = _event_chain(node)
            if found is not None:
                chain, path = found
                if path:
                    paths.add(path)
                else:
                    full = True
                for link in chain:  # computed subscripts are expressions of their own
                    if isinstance(link, nodes.Getitem):
                        visit(link.arg)
                return
        elif isinstance(node, nodes.Name):
            if node.ctx == "load" and (node.name in _EVENT_NAMES or node.name in _WHOLE):
                full = True
            return
        elif isinstance(node, nodes.Call):
            callee = node.node
            if isinstance(callee, nodes.Name) and callee.name in _HELPERS:
                for path_arg in _helper_paths(node, _HELPERS[callee.name]):
                    if path_arg is None:
                        full = True
                    elif path_arg:
                        paths.add(path_arg)
                for child in node.iter_child_nodes():
                    if child is not callee:
                        visit(child)
                return
        for child in node.iter_child_nodes():
            visit(child)

    visit(template)
    if full:
        return SummaryNeeds(hold_full=True)
    for path in tested:
        if not any(read[: len(path)] == path for read in paths):
            paths.add(path)  # nothing under it is read: keep the value itself
    return SummaryNeeds(paths=_minimal(paths))


_EXISTENCE_TESTS = frozenset({"defined", "undefined"})


def _event_chain(
    node: nodes.Node,
) -> tuple[list[nodes.Getattr | nodes.Getitem], FieldPath] | None:
    """For ``last.geoip[k].x``: its links (outermost first) and the path they read from
    the event up to the first that is not a constant key or is a dict method
    (``("geoip",)``); None when the chain does not start at ``first`` or ``last``."""
    chain: list[nodes.Getattr | nodes.Getitem] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        chain.append(node)
        node = node.node
    if not (isinstance(node, nodes.Name) and node.name in _EVENT_NAMES):
        return None
    keys: list[str] = []
    for link in reversed(chain):  # from the event outwards
        key = _constant_key(link)
        if key is None or key in _DICT_ATTRIBUTES:
            break
        keys.append(key)
    return chain, tuple(keys)


_WHOLE = frozenset({"events", "values", "pairs"})  # used other than as ``values('const')``
# Summary helpers taking constant field paths, and how many: values('a'), pairs('a', 'b').
_HELPERS = {"values": 1, "pairs": 2}


def _constant_key(link: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(link, nodes.Getattr):
        return link.attr
    arg = link.arg
    if isinstance(arg, nodes.Const) and type(arg.value) is str:
        return arg.value
    return None


def _helper_paths(call: nodes.Call, arity: int) -> list[FieldPath | None]:
    """The paths of ``values('a.b')`` / ``pairs('a', 'b')``; ``[None]`` (whole events)
    when the call is not ``arity`` constant arguments."""
    if call.kwargs or call.dyn_args is not None or call.dyn_kwargs is not None:
        return [None]
    if len(call.args) != arity:
        return [None]
    return [_const_path(arg) for arg in call.args]


def _const_path(arg: nodes.Expr) -> FieldPath | None:
    """A constant dotted path; None when it is not one.

    An empty tuple: a constant that is no valid path (rendering fails the same way with
    whole events or projections, so nothing needs holding for it).
    """
    if not isinstance(arg, nodes.Const) or type(arg.value) is not str:
        return None
    text = arg.value
    if text.startswith("$"):
        return None  # JSONPath can reach anywhere
    parts = tuple(text.split("."))
    if not text.strip() or any(not p for p in parts):
        return ()
    return parts
