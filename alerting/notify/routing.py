"""Which channels an alert goes to: ordered routes, first match wins unless ``continue``.

``AlertMatch`` keys are ANDed; within a key a list is OR. ``rule``, ``tags``, ``group``
and ``organization`` values are shell-style globs (``admin-*``), compared
case-sensitively; ``organization`` fits the org id or its display name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from alerting.alert import Alert
from alerting.notify.settings import AlertMatch, RouteConfig
from alerting.timeintervals import TimeInterval, active_at


def _any_glob(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def _group_value(group: dict[str, Any], key: str) -> str | None:
    value = group.get(key)
    return None if value is None else str(value)


def matches(match: AlertMatch, alert: Alert) -> bool:
    """True when every key given in ``match`` matches the alert."""
    if match.rule and not _any_glob(match.rule, alert.rule):
        return False
    if match.severity and alert.severity not in match.severity:
        return False
    if match.tags and not any(_any_glob(match.tags, tag) for tag in alert.tags):
        return False
    if match.organization and not any(
        name and _any_glob(match.organization, name)
        for name in (alert.organization, alert.organization_name)
    ):
        return False
    for key, wanted in match.group.items():
        value = _group_value(alert.group, key)
        if value is None:
            return False
        patterns = [wanted] if isinstance(wanted, str) else wanted
        if not _any_glob(patterns, value):
            return False
    return True


def route_open(
    route: RouteConfig, intervals: Mapping[str, Sequence[TimeInterval]], now: float | None
) -> bool:
    """Whether the route's time intervals let it be used at ``now`` (Alertmanager's
    ``mute_time_intervals`` / ``active_time_intervals``); always, when ``now`` is None."""
    if now is None:
        return True
    ns = int(now * 1e9)
    if route.mute_time_intervals and active_at(route.mute_time_intervals, intervals, ns):
        return False
    return not route.active_time_intervals or active_at(route.active_time_intervals, intervals, ns)


class Router:
    """Ordered routes; ``channels_for`` returns the channels of the matching routes."""

    def __init__(
        self,
        routes: Sequence[RouteConfig],
        intervals: Mapping[str, Sequence[TimeInterval]] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.intervals = dict(intervals or {})

    def channels_for(self, alert: Alert, now: float | None = None) -> list[str]:
        """Channels in route order, without repeats; empty when no route matches. A
        route muted at ``now`` (or outside its active intervals) is passed over."""
        return list(self.targets_for(alert, now))

    def targets_for(self, alert: Alert, now: float | None = None) -> dict[str, bool | None]:
        """Channel -> the ``incidents`` setting of the first matching route naming it."""
        channels: dict[str, bool | None] = {}
        for route in self.routes:
            if matches(route.match, alert) and route_open(route, self.intervals, now):
                for name in route.channels:
                    channels.setdefault(name, route.incidents)
                if not route.continue_:
                    break
        return channels


def reachable_channels(
    routes: Sequence[RouteConfig], rule: str, severity: str, tags: Sequence[str]
) -> list[tuple[str, bool]]:
    """The channels a rule's alerts can reach, as ``(channel, only_some_groups)``.

    Routes are walked as ``Router`` does, but without an alert: a route that also matches
    on ``group`` (or anything only an alert knows) may or may not apply, so its channels
    are marked ``True`` and the walk goes on past it.
    """
    probe = Alert(
        rule=rule,
        title="",
        severity=severity,
        group={},
        count=0,
        first_event_time="",
        last_event_time="",
        event_ids=[],
        fingerprint="",
        summary="",
        tags=list(tags),
    )
    reached: dict[str, bool] = {}
    for route in routes:
        static = route.match.model_copy(update={"group": {}})
        conditional = static != route.match
        if not matches(static, probe):
            continue
        for name in route.channels:
            reached[name] = reached.get(name, True) and conditional
        if not route.continue_ and not conditional:
            break
    return list(reached.items())
