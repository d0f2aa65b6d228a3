"""Each Sigma correlation type agrees with a brute-force oracle on random streams.

The rules are real Sigma documents (three base rules and one correlation, one YAML
file, loaded through ``load_rules``) and the events go through the ``Engine``, so the
mapping onto the engine's windows is what is tested, end to end. The oracles are written
from the Sigma correlation specification plus the engine's firing rule (module
docstring of ``alerting.engine.aggregations``): after each event, per group, the first
window ``(t - timespan, t]`` of events not yet used by an alert that meets the condition
fires, and its events are used up. They rescan everything after each event.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event, format_timestamp, parse_timestamp

S = 10**9
T0 = parse_timestamp("2026-01-05T09:00:00Z")
PROPS = settings(max_examples=60, deadline=None)
KINDS = ("x", "y", "z", "none")

BASE_RULES = """
---
title: Kind x
id: 3b0f6f0e-8a51-4c43-9d6b-0e7c9a1d2f01
name: rule_x
logsource: {product: jumpcloud, service: directory_insights}
detection: {selection: {event_type: x}, condition: selection}
---
title: Kind y
id: 3b0f6f0e-8a51-4c43-9d6b-0e7c9a1d2f02
name: rule_y
logsource: {product: jumpcloud, service: directory_insights}
detection: {selection: {event_type: y}, condition: selection}
---
title: Kind z
id: 3b0f6f0e-8a51-4c43-9d6b-0e7c9a1d2f03
name: rule_z
logsource: {product: jumpcloud, service: directory_insights}
detection: {selection: {event_type: z}, condition: selection}
"""


@dataclass(frozen=True)
class Ev:
    time: int
    id: str
    user: str
    kind: str
    value: str
    size: int | None = None

    def event(self) -> Event:
        raw: dict[str, Any] = {
            "id": self.id,
            "timestamp": format_timestamp(self.time),
            "event_type": self.kind,
            "initiated_by": {"username": self.user},
            "client_ip": self.value,
        }
        if self.size is not None:
            raw["bytes_out"] = self.size
        return Event.from_raw(raw)


@st.composite
def streams(draw: Any) -> list[Ev]:
    n = draw(st.integers(0, 30))
    t = T0
    out = []
    for i in range(n):
        t += draw(st.integers(0, 40)) * S
        out.append(
            Ev(
                t,
                f"e{i:03d}",
                draw(st.sampled_from("ab")),
                draw(st.sampled_from(KINDS)),
                draw(st.sampled_from(("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"))),
                draw(st.none() | st.integers(0, 60)),
            )
        )
    return out


Result = list[tuple[str, int, list[str]]]  # (user, count, event ids) per alert


def run(correlation: str, stream: list[Ev]) -> Result:
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "mr_case.yml"
        path.write_text(correlation + BASE_RULES, encoding="utf-8")
        rules = load_rules([path])
    (case,) = [r for r in rules if r.id == "case"]
    # the rules a correlation names alert only through it (Sigma's generate: false)
    assert not any(r.enabled for r in rules if r.id in case.selections)
    alerts = Engine([case]).process_many(e.event() for e in stream)
    return [(a.group["initiated_by.username"], a.count, list(a.event_ids)) for a in alerts]


def correlation(kind: str, rules: list[str], timespan: int, condition: str = "") -> str:
    return (
        f"title: case\nname: case\nlevel: high\ncorrelation:\n  type: {kind}\n"
        f"  rules: [{', '.join(rules)}]\n  group-by: [initiated_by.username]\n"
        f"  timespan: {timespan}s\n" + (f"  condition: {condition}\n" if condition else "")
    )


def window_oracle(stream: list[Ev], rules: set[str], within: int, enough: Any) -> Result:
    """After each event: the first window (in order) of held hits that is ``enough``."""
    held: dict[str, list[Ev]] = {}
    out: Result = []
    for h in stream:
        if h.kind not in rules:
            continue
        group = held.setdefault(h.user, [])
        group.append(h)
        for e in list(group):
            window = [u for u in group if u.time <= e.time and u.time > e.time - within]
            window = [u for u in window if (u.time, u.id) <= (e.time, e.id)]
            if enough(window):
                out.append((h.user, len(window), [u.id for u in window]))
                for u in window:
                    group.remove(u)
                break
    return out


@PROPS
@given(stream=streams(), count=st.integers(1, 5), timespan=st.integers(10, 200))
def test_event_count_matches_oracle(stream: list[Ev], count: int, timespan: int) -> None:
    rule = correlation("event_count", ["rule_x", "rule_y"], timespan, f"{{gte: {count}}}")
    expected = window_oracle(stream, {"x", "y"}, timespan * S, lambda w: len(w) >= count)
    assert run(rule, stream) == expected


@PROPS
@given(stream=streams(), count=st.integers(0, 4), timespan=st.integers(10, 200))
def test_event_count_gt_is_one_more(stream: list[Ev], count: int, timespan: int) -> None:
    rule = correlation("event_count", ["rule_x"], timespan, f"{{gt: {count}}}")
    expected = window_oracle(stream, {"x"}, timespan * S, lambda w: len(w) > count)
    assert run(rule, stream) == expected


@PROPS
@given(stream=streams(), count=st.integers(2, 4), timespan=st.integers(10, 300))
def test_value_count_matches_oracle(stream: list[Ev], count: int, timespan: int) -> None:
    rule = correlation(
        "value_count", ["rule_x", "rule_z"], timespan, f"{{field: client_ip, gte: {count}}}"
    )
    expected = window_oracle(
        stream, {"x", "z"}, timespan * S, lambda w: len({u.value for u in w}) >= count
    )
    assert run(rule, stream) == expected


@PROPS
@given(
    stream=streams(), total=st.integers(0, 150), strict=st.booleans(), timespan=st.integers(10, 200)
)
def test_value_sum_matches_oracle(
    stream: list[Ev], total: int, strict: bool, timespan: int
) -> None:
    op = "gt" if strict else "gte"
    rule = correlation(
        "value_sum", ["rule_x", "rule_y"], timespan, f"{{field: bytes_out, {op}: {total}}}"
    )
    sized = [e for e in stream if e.size is not None or e.kind not in ("x", "y")]

    def enough(window: list[Ev]) -> bool:
        got = sum(u.size or 0 for u in window)
        return got > total if strict else got >= total

    expected = window_oracle(sized, {"x", "y"}, timespan * S, enough)
    assert run(rule, stream) == expected


@PROPS
@given(stream=streams(), timespan=st.integers(10, 300), some=st.booleans())
def test_temporal_matches_oracle(stream: list[Ev], timespan: int, some: bool) -> None:
    """All three rules (or, with ``gte: 2``, two of them) seen in the window, any order."""
    need = 2 if some else 3
    rule = correlation(
        "temporal", ["rule_x", "rule_y", "rule_z"], timespan, "{gte: 2}" if some else ""
    )
    expected = window_oracle(
        stream, {"x", "y", "z"}, timespan * S, lambda w: len({u.kind for u in w}) >= need
    )
    assert run(rule, stream) == expected


def ordered_oracle(stream: list[Ev], kinds: list[str], within: int) -> Result:
    """temporal_ordered: one event per rule, in the rules' order, each strictly later,
    first to last under ``timespan``; after each event the chain ending at it (latest
    hits, chosen backwards) fires and its events are used up."""
    held: dict[str, list[Ev]] = {}
    out: Result = []
    for h in stream:
        if h.kind not in kinds:
            continue
        group = held.setdefault(h.user, [])
        group.append(h)
        if h.kind != kinds[-1]:
            continue
        chain = [h]
        for kind in reversed(kinds[:-1]):
            later = chain[0]
            options = [u for u in group if u.kind == kind and u.time < later.time]
            if not options:
                break
            chain.insert(0, max(options, key=lambda u: (u.time, u.id)))
        else:
            if chain[-1].time - chain[0].time < within:
                out.append((h.user, len(chain), [u.id for u in chain]))
                for u in chain:
                    group.remove(u)
    return out


@PROPS
@given(stream=streams(), timespan=st.integers(10, 300))
def test_temporal_ordered_matches_oracle(stream: list[Ev], timespan: int) -> None:
    rule = correlation("temporal_ordered", ["rule_x", "rule_y", "rule_z"], timespan)
    expected = ordered_oracle(stream, ["x", "y", "z"], timespan * S)
    assert run(rule, stream) == expected
