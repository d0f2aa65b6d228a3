"""What a replay tells its reader: the per-rule table with alerts per day, and the same
as JSON for scripts (``replay --summary-json``).

An average hides what a rule author needs to see: a baseline rule (``new_value``) that
is silent while it learns and then fires a dozen times a day reads as "4 a day". So each
rule shows its alerts for every day of the input, and the days inside its learning
period are marked as such (``·`` when nothing could fire).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerting.durations import DAY_NS, HOUR_NS, format_duration_ns
from alerting.events import format_timestamp
from alerting.replay import ReplayResult

__all__ = ["format_summary", "summary_json"]

MAX_DAY_COLUMNS = 14  # up to two weeks as numbers; longer inputs as a sparkline
MAX_SPARK_COLUMNS = 60  # past that, a sparkline column sums several days
_SPARKS = "▁▂▃▄▅▆▇█"
LEARNING = "·"


def _day(day: int) -> datetime:
    return datetime.fromtimestamp(day * DAY_NS // 1_000_000_000, UTC)


def _per_day(result: ReplayResult, rule_id: str, days: list[int]) -> str:
    """One rule's alerts per day: numbers, or a sparkline for a long input."""
    counts = result.per_rule[rule_id].per_day
    learning = result.learning_days(rule_id)
    if len(days) <= MAX_DAY_COLUMNS:
        width = max(len(str(max(counts.values(), default=0))), 1)
        cells = [
            LEARNING if d in learning and not counts.get(d) else str(counts.get(d, 0)) for d in days
        ]
        return " ".join(f"{c:>{width}}" for c in cells)
    span = days_per_column(days)
    columns = [days[i : i + span] for i in range(0, len(days), span)]
    sums = [sum(counts.get(d, 0) for d in column) for column in columns]
    top = max(sums, default=0)
    out = []
    for column, n in zip(columns, sums, strict=True):
        if not n:
            out.append(LEARNING if all(d in learning for d in column) else "_")
        else:
            out.append(_SPARKS[min(len(_SPARKS) - 1, (n * len(_SPARKS) - 1) // top)])
    return "".join(out)


def days_per_column(days: list[int]) -> int:
    """How many days one sparkline column sums, so a table stays readable on a terminal
    (a 6-year export is 60 columns, not 2,263)."""
    return max(1, -(-len(days) // MAX_SPARK_COLUMNS))


def format_summary(result: ReplayResult) -> str:
    """The per-rule table and the totals lines printed at the end of a replay."""
    days = result.days
    span_days = max(result.span_ns / DAY_NS, 1 / 24)
    rule_w = max([len("RULE"), *(len(r) for r in result.per_rule)])
    per_day_title = "PER DAY"
    if days:
        first, last = _day(days[0]), _day(days[-1])
        form = "%Y-%m-%d" if first.year != last.year else "%m-%d"
        span = f"{first:{form}}" + (f"..{last:{form}}" if len(days) > 1 else "")
        if len(days) > MAX_DAY_COLUMNS and days_per_column(days) > 1:
            span += f", {days_per_column(days)} days a column"
        per_day_title += f" ({span})"
    lines = [
        f"{'RULE':<{rule_w}}  {'ALERTS':>7}  {'ALERTS/DAY':>10}  {'GROUPS':>7}  "
        f"{'SUPPRESSED':>10}  {per_day_title}"
    ]
    learners: list[str] = []
    for rule_id, s in sorted(result.per_rule.items(), key=lambda kv: (-kv[1].alerts, kv[0])):
        lines.append(
            f"{rule_id:<{rule_w}}  {s.alerts:>7}  {s.alerts / span_days:>10.1f}  "
            f"{len(s.groups):>7}  {s.suppressed:>10}  {_per_day(result, rule_id, days)}"
        )
        if result.learning_days(rule_id):
            learners.append(f"{rule_id} ({format_duration_ns(s.learn_ns)})")
    if learners:
        lines.append(
            f"{LEARNING} = learning period of a baseline rule, silent by design: "
            + ", ".join(learners)
        )
    hours = result.span_ns / HOUR_NS
    span = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
    noun = "alert" if result.alerts == 1 else "alerts"
    lines.append(f"{result.alerts} {noun} over {span} of events")
    if result.ordering:
        lines.append(result.ordering)
    dup = "duplicate event" if result.duplicates == 1 else "duplicate events"
    lines.append(
        f"{result.events:,} events read, {result.skipped} skipped (malformed), "
        f"{result.duplicates:,} {dup} dropped"
    )
    return "\n".join(lines)


def summary_json(result: ReplayResult) -> dict[str, Any]:
    """The summary as data: totals, the days, and per rule its alerts on each day."""
    days = result.days
    rules = {}
    for rule_id, s in sorted(result.per_rule.items()):
        learning = result.learning_days(rule_id)
        rules[rule_id] = {
            "alerts": s.alerts,
            "groups": len(s.groups),
            "suppressed": s.suppressed,
            "per_day": [s.per_day.get(d, 0) for d in days],
            "learning_days": [f"{_day(d):%Y-%m-%d}" for d in days if d in learning],
            "learn": format_duration_ns(s.learn_ns) if s.learn_ns else None,
        }
    return {
        "events": result.events,
        "skipped": result.skipped,
        "duplicates": result.duplicates,
        "ordering": result.ordering,
        "alerts": result.alerts,
        "first_event_time": None if result.first_ns is None else format_timestamp(result.first_ns),
        "last_event_time": None if result.last_ns is None else format_timestamp(result.last_ns),
        "days": [f"{_day(d):%Y-%m-%d}" for d in days],
        "rules": rules,
    }
