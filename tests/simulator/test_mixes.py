"""Traffic mixes: the portal-login-heavy org of issue 14 from the same people and attacks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from alerting.simulator.traffic import HOUR_NS, TrafficGenerator

MONDAY = int(datetime(2026, 1, 5, 8, tzinfo=UTC).timestamp()) * 1_000_000_000


def _types(mix: str) -> tuple[Counter[str], int, TrafficGenerator]:
    generator = TrafficGenerator(seed=7, users=120, mix=mix)
    events = generator.generate(MONDAY, MONDAY + 6 * HOUR_NS)
    return Counter(e["event_type"] for e in events), len(events), generator


def test_portal_mix_is_mostly_portal_logins_with_typos_before_some() -> None:
    types, total, _ = _types("portal")
    assert types["user_login_attempt"] / total > 0.85
    generator = TrafficGenerator(seed=7, users=120, mix="portal")
    logins = [
        e
        for e in generator.generate(MONDAY, MONDAY + 6 * HOUR_NS)
        if e["event_type"] == "user_login_attempt"
    ]
    failed = sum(1 for e in logins if e["success"] is False)
    assert 0.05 < failed / len(logins) < 0.25  # typos, not an attack on everyone


def test_default_mix_is_sso_and_radius_heavy() -> None:
    types, total, _ = _types("simulator")
    assert (types["sso_auth"] + types["radius_auth_attempt"]) / total > 0.8
    assert types["user_login_attempt"] / total < 0.05


def test_mixes_share_the_attacks() -> None:
    portal = _types("portal")[2]
    default = _types("simulator")[2]
    assert [a.scenario for a in portal.attacks] == [a.scenario for a in default.attacks]
    assert [a.start_ns for a in portal.attacks] == [a.start_ns for a in default.attacks]


def test_unknown_mix_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown traffic mix 'portl'; known: simulator, portal"):
        TrafficGenerator(seed=7, users=10, mix="portl")
