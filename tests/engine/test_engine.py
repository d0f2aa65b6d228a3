"""The engine: per-event alerts, aggregation wiring, realert, fingerprints, indexing."""

from __future__ import annotations

import itertools
import random
import textwrap

import pytest

from alerting.alert import make_fingerprint
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event, format_timestamp, parse_timestamp
from alerting.store import Store
from tests.support.real_events import ADMIN_LOGIN, USER_UPDATE_SCIM, shaped

T0 = parse_timestamp("2026-03-02T10:00:00Z")
S = 1_000_000_000
MIN = 60 * S
_serial = itertools.count(1)


def ev(seconds, event_id=None, **fields):
    raw = {"timestamp": format_timestamp(T0 + int(seconds * S)), **fields}
    raw["id"] = event_id or f"e{next(_serial):06d}"
    return Event.from_raw(raw)


def load(tmp_path, *texts):
    for i, text in enumerate(texts):
        (tmp_path / f"r{i:02d}.yml").write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules([tmp_path])


NO_MFA = """\
id: admin-no-mfa
title: Admin login without MFA
severity: high
tags: [attack.t1078]
description: An admin logged in without MFA.
detection:
  sel: {event_type: admin_login_attempt, success: true, mfa: false}
by: initiated_by.email
"""

BURST = """\
id: failed-burst
title: Failed login burst
severity: high
detection:
  failed:
    event_type: [user_login_attempt, admin_login_attempt]
    success: false
  condition: failed
threshold: {count: 5, within: 5m, by: initiated_by.username}
summary: >-
  {{ count }} failures for {{ group['initiated_by.username'] }}
  from {{ values('client_ip') | join(', ') }}
"""


def login(seconds, user="alice", success=False, ip="198.51.100.7", **extra):
    return ev(
        seconds,
        event_type="user_login_attempt",
        success=success,
        initiated_by={"username": user},
        client_ip=ip,
        **extra,
    )


def test_a_rule_without_aggregation_fires_once_per_matching_event(tmp_path):
    engine = Engine(load(tmp_path, NO_MFA))
    events = [
        ev(
            0,
            "a1",
            event_type="admin_login_attempt",
            success=True,
            mfa=False,
            initiated_by={"email": "a@x"},
        ),
        ev(
            1,
            "a2",
            event_type="admin_login_attempt",
            success=True,
            mfa=True,
            initiated_by={"email": "a@x"},
        ),
        ev(2, "a3", event_type="user_login_attempt", success=True, mfa=False),
        ev(
            3,
            "a4",
            event_type="admin_login_attempt",
            success=True,
            mfa=False,
            initiated_by={"email": "b@x"},
        ),
    ]
    alerts = engine.process_many(events)
    assert [a.event_ids for a in alerts] == [["a1"], ["a4"]]
    first = alerts[0]
    assert first.rule == "admin-no-mfa"
    assert first.severity == "high"
    assert first.group == {"initiated_by.email": "a@x"}
    assert first.count == 1
    assert first.first_event_time == first.last_event_time == "2026-03-02T10:00:00Z"
    assert first.events == [events[0].raw]
    assert first.tags == ["attack.t1078"]
    assert first.description == "An admin logged in without MFA."
    assert first.summary == "Admin login without MFA: a@x (1 event)"
    assert first.fingerprint == make_fingerprint(
        "admin-no-mfa", {"initiated_by.email": "a@x"}, "a1"
    )
    assert engine.stats["admin-no-mfa"].matched == 2
    assert engine.stats["admin-no-mfa"].alerts == 2


def test_fingerprints_stay_right_past_the_bound_on_group_hashes(tmp_path, monkeypatch):
    # Each rule keeps the hash of a group's part of its fingerprints, for a bounded
    # number of groups; past the bound it forgets them and starts over.
    monkeypatch.setattr("alerting.engine.engine._FINGERPRINT_CACHE_LIMIT", 2)
    engine = Engine(load(tmp_path, NO_MFA))
    logins = [
        Event.from_raw(
            shaped(
                ADMIN_LOGIN,
                f"e{i}",
                T0 + i * S,
                mfa=False,
                initiated_by={"type": "admin", "email": f"admin{i % 5}@example.com"},
            )
        )
        for i in range(15)
    ]
    alerts = engine.process_many(logins)
    assert len(alerts) == 15
    for alert in alerts:
        assert alert.fingerprint == make_fingerprint(
            "admin-no-mfa", alert.group, alert.event_ids[0]
        )
    assert len({a.fingerprint for a in alerts}) == 15


def test_missing_group_field_groups_under_null(tmp_path):
    engine = Engine(load(tmp_path, NO_MFA))
    (alert,) = engine.process(ev(0, event_type="admin_login_attempt", success=True, mfa=False))
    assert alert.group == {"initiated_by.email": None}


def test_realert_suppresses_per_group_and_carries_the_count(tmp_path):
    rule = NO_MFA + "realert: 30m\n"
    engine = Engine(load(tmp_path, rule))

    def admin(minutes, email):
        return ev(
            minutes * 60,
            event_type="admin_login_attempt",
            success=True,
            mfa=False,
            initiated_by={"email": email},
        )

    stream = [
        admin(0, "a"),
        admin(1, "b"),
        admin(10, "a"),
        admin(29, "a"),
        admin(31, "a"),
        admin(45, "a"),
    ]
    alerts = engine.process_many(stream)
    got = [(a.group["initiated_by.email"], a.first_event_time[11:16], a.suppressed) for a in alerts]
    # a: 10:00 alerts; 10:10 and 10:29 are within 30m -> held back, counted into 10:31;
    # 10:45 is within 30m of 10:31 -> held back. b is its own group.
    assert got == [("a", "10:00", 0), ("b", "10:01", 0), ("a", "10:31", 2)]
    assert engine.stats["admin-no-mfa"].suppressed == 3


def test_threshold_rule_fires_with_window_details_and_summary(tmp_path):
    engine = Engine(load(tmp_path, BURST))
    events = [login(i * 30, ip=f"198.51.100.{i % 2}") for i in range(5)]
    events.append(login(10, user="bob"))
    alerts = engine.process_many(sorted(events, key=lambda e: e.time_ns))
    (alert,) = alerts
    assert alert.count == 5
    assert alert.group == {"initiated_by.username": "alice"}
    assert alert.first_event_time == "2026-03-02T10:00:00Z"
    assert alert.last_event_time == "2026-03-02T10:02:00Z"
    assert alert.event_ids == [e.id for e in events[:5]]
    assert alert.summary == "5 failures for alice from 198.51.100.0, 198.51.100.1"


def test_sequence_rule_gets_step_matches(tmp_path):
    rule = """\
    id: brute-then-success
    title: Brute force then success
    severity: critical
    detection:
      failed: {event_type: user_login_attempt, success: false}
      ok: {event_type: user_login_attempt, success: true}
    sequence:
      by: initiated_by.username
      within: 10m
      steps: [{selection: failed, count: 3}, {selection: ok}]
    """
    engine = Engine(load(tmp_path, rule))
    quiet = [login(0), login(10), login(20, success=True)]  # only two failures first
    assert engine.process_many(quiet) == []
    alerts = engine.process_many([login(30), login(40), login(50), login(60, success=True)])
    assert len(alerts) == 1
    assert alerts[0].count == 4


def test_fingerprints_are_stable_across_runs(tmp_path):
    rules = load(tmp_path, BURST)
    events = [login(i * 10, user=u) for i in range(12) for u in ("alice", "bob")]
    first = [a.fingerprint for a in Engine(rules).process_many(events)]
    second = [a.fingerprint for a in Engine(rules).process_many(events)]
    assert len(first) == 4
    assert first == second
    assert len(set(first)) == 4


def test_warmup_rebuilds_windows_without_alerting(tmp_path):
    engine = Engine(load(tmp_path, BURST))
    with engine.warmup():
        assert engine.process_many([login(i) for i in range(4)]) == []
        assert engine.process_many([login(4)]) == []  # a firing during warm-up is not returned
    assert engine.process_many([login(i) for i in range(5, 9)]) == []
    (alert,) = engine.process_many([login(9)])
    assert alert.count == 5


def test_realert_state_survives_a_restart_through_the_store(tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    rules = load(rules_dir, NO_MFA + "realert: 1h\n")
    store = Store(tmp_path / "state.db")

    def admin(minutes):
        return ev(
            minutes * 60,
            event_type="admin_login_attempt",
            success=True,
            mfa=False,
            initiated_by={"email": "a"},
        )

    first = Engine(rules)
    assert len(first.process_many([admin(0), admin(5)])) == 1
    with store.transaction():
        first.flush(store)
    second = Engine(rules, store=store)
    assert second.process_many([admin(20)]) == []
    (alert,) = second.process_many([admin(61)])
    assert alert.suppressed == 2  # one before the restart, one after


def test_a_failing_summary_template_keeps_the_alert(tmp_path):
    rule = NO_MFA + "summary: '{{ first.geoip.country_code }} login'\n"
    engine = Engine(load(tmp_path, rule))
    (alert,) = engine.process(ev(0, event_type="admin_login_attempt", success=True, mfa=False))
    assert alert.summary.startswith(
        "Admin login without MFA: None (1 event) [summary template failed"
    )
    assert engine.stats["admin-no-mfa"].errors == 1


def test_summary_values_are_sorted_and_distinct(tmp_path):
    rule = NO_MFA.replace("by: initiated_by.email\n", "") + (
        "threshold: {count: 3, within: 1h}\nsummary: \"{{ values('client_ip') }} {{ rule.id }}\"\n"
    )
    engine = Engine(load(tmp_path, rule))
    events = [
        ev(i, event_type="admin_login_attempt", success=True, mfa=False, client_ip=ip)
        for i, ip in enumerate(["9.9.9.9", "1.1.1.1", "9.9.9.9"])
    ]
    (alert,) = engine.process_many(events)
    assert alert.summary == "['1.1.1.1', '9.9.9.9'] admin-no-mfa"


def test_disabled_rules_are_skipped(tmp_path):
    engine = Engine(load(tmp_path, NO_MFA + "enabled: false\n"))
    assert engine.process(ev(0, event_type="admin_login_attempt", success=True, mfa=False)) == []
    assert engine.stats == {}


def test_an_event_meets_only_rules_that_can_match_it(tmp_path):
    catch_all = """\
    id: any-failure
    title: Any failure
    severity: low
    detection:
      sel: {success: false}
    """
    engine = Engine(load(tmp_path, NO_MFA, BURST, catch_all))
    assert engine.candidates(ev(0, event_type="admin_login_attempt")) == [
        "admin-no-mfa",
        "failed-burst",
        "any-failure",
    ]
    assert engine.candidates(ev(0, event_type="USER_LOGIN_ATTEMPT")) == [
        "failed-burst",
        "any-failure",
    ]
    assert engine.candidates(ev(0, event_type="group_create")) == ["any-failure"]
    assert engine.candidates(ev(0)) == ["any-failure"]


INDEX_RULES = [
    NO_MFA,
    BURST,
    """\
    id: sso-fail
    title: SSO failure
    severity: low
    detection:
      sel: {event_type: sso_auth, sso_token_success: false}
      internal: {client_ip|cidr: 10.0.0.0/8}
      condition: sel and not internal
    """,
    """\
    id: not-login
    title: Anything but logins
    severity: info
    detection:
      login: {event_type: '*login*'}
      condition: not login
    threshold: {count: 7, within: 1m, by: event_type}
    """,
    """\
    id: either
    title: Either kind
    severity: medium
    detection:
      a: {event_type: user_create}
      b: [{event_type: user_delete}, {event_type: GROUP_DELETE, success: true}]
      c: {success: true}
      condition: (a or b) and c
    by: event_type
    realert: 2m
    """,
    """\
    id: spray
    title: Password spray
    severity: high
    detection:
      sel: {event_type: [user_login_attempt, sso_auth]}
    distinct: {field: initiated_by.username, count: 3, within: 5m, by: client_ip}
    """,
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indexing_does_not_change_results(tmp_path, seed):
    rng = random.Random(seed)
    rules = load(tmp_path, *INDEX_RULES)
    types = [
        "user_login_attempt",
        "admin_login_attempt",
        "sso_auth",
        "user_create",
        "user_delete",
        "group_delete",
        "Group_Delete",
        "ldap_bind",
        None,
    ]
    events = []
    for i in range(3000):
        raw = {
            "success": rng.choice([True, False, "false", None]),
            "mfa": rng.choice([True, False]),
            "sso_token_success": rng.choice([True, False]),
            "client_ip": rng.choice(["10.1.1.1", "198.51.100.7", "203.0.113.9"]),
            "initiated_by": {
                "username": rng.choice("abcdef"),
                "email": rng.choice(["a@x", "b@x"]),
            },
        }
        event_type = rng.choice(types)
        if event_type is not None:
            raw["event_type"] = event_type
        events.append(ev(i * rng.choice([1, 2, 5]) / 3, f"r{i:05d}", **raw))
    events.sort(key=lambda e: (e.time_ns, e.id))
    indexed = [a.to_dict() for a in Engine(rules).process_many(events)]
    brute = [a.to_dict() for a in Engine(rules, use_index=False).process_many(events)]
    assert indexed == brute
    fired = {a["rule"] for a in indexed}
    assert len(fired) >= 5  # the stream exercises most rules, so the comparison means something


def test_longest_window(tmp_path):
    engine = Engine(load(tmp_path, NO_MFA, BURST))
    assert engine.longest_window_ns == 5 * MIN


def test_a_group_of_several_fields_tells_values_of_other_types_apart(tmp_path):
    """1, true and "1" are equal in Python but three groups; the same texts are one
    group however often they come (realert holds the repeat back)."""
    (rule,) = load(
        tmp_path,
        """\
        id: by-two
        title: By two fields
        severity: low
        detection:
          sel: {event_type: user_login_attempt}
        by: [initiated_by.username, attempt]
        realert: 1h
        """,
    )
    engine = Engine([rule])
    attempts = ["1", 1, True, 1.0, "1", None, [1], [1]]
    alerts = engine.process_many(
        ev(i, event_type="user_login_attempt", initiated_by={"username": "amy"}, attempt=a)
        for i, a in enumerate(attempts)
    )
    assert [a.group["attempt"] for a in alerts] == ["1", 1, True, 1.0, None, [1]]
    assert [type(a.group["attempt"]) for a in alerts[:4]] == [str, int, bool, float]
    assert engine.stats["by-two"].suppressed == 2


DIGEST = """\
id: lockouts-daily
title: Lockouts of the day
severity: low
detection:
  lockout: {event_type: user_lockout}
  condition: lockout
digest: {every: 1d, field: initiated_by.username}
"""


def test_a_digest_kept_over_a_reload_still_sends_its_day(tmp_path):
    # A reload keeps the periods of unchanged rules (carry_over): the day's digest must
    # go out from the new engine, with what the old one had gathered.
    rules = load(tmp_path, DIGEST, NO_MFA)
    before = Engine(rules)
    day = parse_timestamp("2023-06-16T00:00:00Z")
    lockout = shaped(USER_UPDATE_SCIM, "l1", day + 3600 * S, event_type="user_lockout")
    assert before.process(Event.from_raw(lockout)) == []
    after = Engine(load(tmp_path, DIGEST, NO_MFA))
    assert "lockouts-daily" in after.carry_over(before)
    digests = after.due(day + 86_400 * S + 3600 * S)  # the day is over, late events too
    assert [(a.rule, a.event_ids) for a in digests] == [("lockouts-daily", ["l1"])]
