"""Scoring a backtest against ground truth: which attacks each rule caught, and which
alerts match no attack.

The truth file is what ``alerting simulate --export F`` writes beside its events
(``F.truth.json``): a JSON array of injected attacks, each with its ``scenario``, the
``entity`` it targets, its time span, the ``rule`` expected to catch it (``also_rules``:
others it rightly trips) and its ``event_ids``. An alert catches an attack when it carries
one of the attack's events; recall counts attacks caught, precision counts alerts that
caught something.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting import jsonutil
from alerting.alert import Alert
from alerting.errors import AlertingError

__all__ = ["Attack", "Scorer", "format_score", "load_truth"]


@dataclass(frozen=True, slots=True)
class Attack:
    """One injected attack of a truth file."""

    scenario: str
    entity: str
    rule: str
    also_rules: tuple[str, ...]
    start_time: str
    end_time: str
    event_ids: frozenset[str]

    @property
    def expected(self) -> tuple[str, ...]:
        """Every rule that should alert on this attack."""
        return (self.rule, *self.also_rules)


def load_truth(path: str | Path) -> list[Attack]:
    """The attacks of a truth file; ``AlertingError`` naming the file and field if bad."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AlertingError(
            f"{name}: no such file; simulate --export F writes F.truth.json beside F"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AlertingError(f"{name}: cannot read ({exc})") from None
    try:
        data = jsonutil.loads(text)
    except jsonutil.JSONDecodeError as exc:
        raise AlertingError(f"{name}: not JSON ({exc}): use the file simulate wrote") from None
    if not isinstance(data, list):
        raise AlertingError(f"{name}: expected a JSON array of attacks, got {type(data).__name__}")
    return [_attack(item, f"{name}: attack #{n}") for n, item in enumerate(data, 1)]


def _attack(item: Any, where: str) -> Attack:
    if not isinstance(item, dict):
        raise AlertingError(f"{where}: expected an object, got {type(item).__name__}")

    def text(key: str, default: str | None = None) -> str:
        value = item.get(key, default)
        if not isinstance(value, str):
            raise AlertingError(f"{where}: field {key!r} must be a string")
        return value

    ids = item.get("event_ids")
    also = item.get("also_rules", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise AlertingError(f"{where}: field 'event_ids' must be a list of event ids")
    if not isinstance(also, list) or not all(isinstance(r, str) for r in also):
        raise AlertingError(f"{where}: field 'also_rules' must be a list of rule ids")
    return Attack(
        scenario=text("scenario"),
        entity=text("entity", ""),
        rule=text("rule"),
        also_rules=tuple(also),
        start_time=text("start_time"),
        end_time=text("end_time"),
        event_ids=frozenset(ids),
    )


@dataclass(slots=True)
class _RuleScore:
    alerts: int = 0
    on_attacks: int = 0  # alerts that carry an attack's event


@dataclass(slots=True)
class Scorer:
    """Feed it every alert of a replay (``add``); ``report()`` scores them."""

    attacks: list[Attack]
    rule_ids: Iterable[str]
    _by_event: dict[str, list[int]] = field(init=False, default_factory=dict)
    _caught: list[Counter[str]] = field(init=False, default_factory=list)
    _rules: dict[str, _RuleScore] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for i, attack in enumerate(self.attacks):
            for event_id in attack.event_ids:
                self._by_event.setdefault(event_id, []).append(i)
        self._caught = [Counter() for _ in self.attacks]
        self._rules = {rule: _RuleScore() for rule in self.rule_ids}

    def add(self, alert: Alert) -> None:
        hit = {i for event_id in alert.event_ids for i in self._by_event.get(event_id, ())}
        score = self._rules.setdefault(alert.rule, _RuleScore())
        score.alerts += 1
        if hit:
            score.on_attacks += 1
        for i in hit:
            self._caught[i][alert.rule] += 1

    def report(self) -> dict[str, Any]:
        """The score as JSON-ready data (``--summary-json``'s ``truth``)."""
        scenarios: dict[str, dict[str, Any]] = {}
        for attack, caught_by in zip(self.attacks, self._caught, strict=True):
            s = scenarios.setdefault(
                attack.scenario,
                {"attacks": 0, "caught": 0, "caught_by": Counter(), "missed": []},
            )
            s["attacks"] += 1
            if caught_by:
                s["caught"] += 1
                s["caught_by"].update(caught_by.keys())
            else:
                s["missed"].append(
                    {"entity": attack.entity, "start_time": attack.start_time, "rule": attack.rule}
                )
        for s in scenarios.values():
            s["recall"] = s["caught"] / s["attacks"]
            s["caught_by"] = dict(sorted(s["caught_by"].items(), key=lambda kv: (-kv[1], kv[0])))
        rules: dict[str, dict[str, Any]] = {}
        for rule, score in sorted(self._rules.items()):
            expected = [i for i, a in enumerate(self.attacks) if rule in a.expected]
            hits = sum(1 for i in expected if self._caught[i][rule])
            rules[rule] = {
                "alerts": score.alerts,
                "on_attacks": score.on_attacks,
                "false_positives": score.alerts - score.on_attacks,
                "precision": score.on_attacks / score.alerts if score.alerts else None,
                "expected": len(expected),
                "caught": hits,
                "recall": hits / len(expected) if expected else None,
            }
        return {"scenarios": dict(sorted(scenarios.items())), "rules": rules}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def format_score(report: dict[str, Any]) -> str:
    """Recall per scenario, then precision and recall per rule, as terminal tables."""
    scenarios: dict[str, dict[str, Any]] = report["scenarios"]
    rules: dict[str, dict[str, Any]] = report["rules"]
    w = max([len("SCENARIO"), *(len(s) for s in scenarios)])
    lines = [f"{'SCENARIO':<{w}}  {'ATTACKS':>7}  {'CAUGHT':>6}  {'RECALL':>6}  CAUGHT BY"]
    for name, s in scenarios.items():
        by = ", ".join(f"{rule} {n}" for rule, n in s["caught_by"].items()) or "-"
        lines.append(
            f"{name:<{w}}  {s['attacks']:>7}  {s['caught']:>6}  {_pct(s['recall']):>6}  {by}"
        )
    rw = max([len("RULE"), *(len(r) for r in rules)])
    lines.append("")
    lines.append(
        f"{'RULE':<{rw}}  {'ALERTS':>6}  {'ON ATTACKS':>10}  {'PRECISION':>9}  "
        f"{'EXPECTED':>8}  {'CAUGHT':>6}  {'RECALL':>6}"
    )
    for rule, r in rules.items():
        lines.append(
            f"{rule:<{rw}}  {r['alerts']:>6}  {r['on_attacks']:>10}  {_pct(r['precision']):>9}  "
            f"{r['expected']:>8}  {r['caught']:>6}  {_pct(r['recall']):>6}"
        )
    noise = {rule: r["false_positives"] for rule, r in rules.items() if r["false_positives"]}
    total = sum(noise.values())
    detail = ", ".join(f"{rule} {n}" for rule, n in sorted(noise.items(), key=lambda kv: -kv[1]))
    lines.append(
        f"{total} alert{'' if total == 1 else 's'} match no attack"
        + (f" ({detail})" if detail else "")
    )
    missed = [(name, m) for name, s in scenarios.items() for m in s["missed"]]
    for name, m in missed[:10]:
        lines.append(
            f"missed: {name} on {m['entity'] or '?'} at {m['start_time']} (expected {m['rule']})"
        )
    if len(missed) > 10:
        lines.append(f"... and {len(missed) - 10} more missed attacks (see --summary-json)")
    return "\n".join(lines)
