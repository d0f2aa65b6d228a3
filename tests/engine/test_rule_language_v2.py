"""Issue 15's additions to the rule language, as a rule author sees them: ``|element``
(one change entry must match a whole mapping), new_value's ``dormant`` and ``alert_on``,
and the ``digest`` aggregation. Events are DI shapes from tests/data/real-events/."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerting.engine.aggregations import build_aggregation
from alerting.engine.digest import DigestAggregation
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.matchers import SelectionError, compile_selection
from alerting.engine.types import DigestSpec, Hit, NewValueSpec
from alerting.errors import RuleError
from alerting.events import Event, parse_timestamp
from alerting.store import Store

T0 = parse_timestamp("2026-11-20T10:00:00Z")
HOUR = 3600 * 10**9
DAY = 24 * HOUR

# Sekoia's user_update (SCIM, API key): a list of changes, one of them suspends the user
SCIM_UPDATE = {
    "event_type": "user_update",
    "initiated_by": {"source": "scim", "type": "admin", "email": "maurice.moss@sekoia.io"},
    "changes": [
        {"field": "company", "from": "SEKOIA.IO", "to": "Sekoia.io"},
        {"field": "state", "from": "ACTIVATED", "to": "SUSPENDED"},
        {"field": "suspended", "from": False, "to": True},
    ],
}


# ------------------------------------------------------------------ |element


def element(body: Any, event: dict[str, Any]) -> bool:
    return compile_selection("sel", body).predicate(event)


def test_element_needs_the_field_and_its_value_in_one_entry() -> None:
    suspended = {"changes|element": {"field": "suspended", "to": True}}
    assert element(suspended, SCIM_UPDATE)
    # `to: true` exists (suspended) and `field: company` exists, but not in one entry
    mixed = {"changes|element": {"field": "company", "to": True}}
    assert not element(mixed, SCIM_UPDATE)
    assert element({"$.changes..field": "company", "$.changes..to": True}, SCIM_UPDATE)


def test_element_reads_changes_sent_as_one_object_and_keeps_modifiers() -> None:
    one = {"event_type": "user_password_change", "changes": {"field": "password"}}
    assert element({"changes|element": {"field|startswith": "pass"}}, one)
    assert not element({"changes|element": {"field": "password", "to|exists": True}}, one)
    assert not element({"changes|element": {"field": "x"}}, {"changes": "text"})
    assert not element({"changes|element": {"field": "x"}}, {})


def test_element_paths_inside_the_entry_are_relative_to_it() -> None:
    event = {"changes": [{"field": "mfa", "to": {"exclusion": True, "configured": True}}]}
    assert element({"changes|element": {"field": "mfa", "to.exclusion": True}}, event)
    assert not element({"changes|element": {"field": "mfa", "to.configured": False}}, event)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"changes|element": "totp_enabled"}, "|element needs a mapping"),
        ({"changes|element|contains": {"field": "x"}}, "|element takes no other modifier"),
        ({"changes|element": {"field|startwith": "x"}}, "unknown modifier 'startwith'"),
        ({"changes|elemnt": {"field": "x"}}, "did you mean 'element'"),
    ],
)
def test_element_errors_say_what_to_write(body: Any, fragment: str) -> None:
    with pytest.raises(SelectionError) as info:
        compile_selection("sel", body)
    assert fragment in info.value.message


# ------------------------------------------------------------------ dormant, alert_on


def login(offset_ns: int, event_id: str, user: str = "jane.doe", **fields: Any) -> Hit:
    raw = {"id": event_id, "initiated_by": {"type": "user", "username": user}, **fields}
    return Hit(Event(raw, T0 + offset_ns, event_id), user, {"initiated_by.username": user})


def dormant_spec(**kw: Any) -> NewValueSpec:
    base: dict[str, Any] = {
        "field": "initiated_by.type",
        "by": ["initiated_by.username"],
        "learn": timedelta(days=30),
        "forget": timedelta(0),
        "dormant": timedelta(days=30),
    }
    return NewValueSpec(**{**base, **kw})


def test_dormant_fires_on_a_return_after_the_idle_time_and_only_then() -> None:
    agg = build_aggregation(dormant_spec(), rule_id="dormant")
    assert agg.add(login(0, "a")) == []
    assert agg.add(login(29 * DAY, "b")) == []  # back within 30 days
    (firing,) = agg.add(login(65 * DAY, "c"))  # 36 days later
    assert firing.details["idle_days"] == 36
    assert firing.details["last_seen"] == "2026-12-19T10:00:00Z"
    assert agg.add(login(65 * DAY + HOUR, "d")) == []  # active again


def test_dormant_is_silent_while_learning_and_for_a_first_login() -> None:
    agg = build_aggregation(dormant_spec(), rule_id="dormant")
    assert agg.add(login(0, "a")) == []
    assert agg.add(login(20 * DAY, "b", user="new.hire")) == []
    # learn ends 30 days after the rule's first event: a return before that is learned
    assert agg.add(login(25 * DAY, "c", user="old.account")) == []


def test_dormant_last_logins_survive_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    agg = build_aggregation(dormant_spec(), rule_id="dormant")
    agg.add(login(0, "a"))
    agg.add(login(DAY, "b", user="bob"))
    with store.transaction():
        agg.flush(store)
    again = build_aggregation(dormant_spec(), rule_id="dormant")
    again.restore(store)
    assert [f.group_key for f in again.add(login(40 * DAY, "c"))] == ["jane.doe"]
    assert again.add(login(40 * DAY, "d", user="bob")) != []
    store.close()


@pytest.mark.parametrize("evicted", [False, True], ids=["not yet evicted", "evicted"])
def test_dormant_is_silent_for_a_group_idle_past_its_forget(evicted: bool) -> None:
    """forget 60d: an account back after 70 days is forgotten, so new, so silent, whether
    or not eviction (run when the engine is advanced) has dropped it yet; one back after
    40 days is dormant."""
    agg = build_aggregation(dormant_spec(forget=timedelta(days=60)), rule_id="dormant")
    assert agg.add(login(0, "a")) == []
    assert agg.add(login(HOUR, "b", user="bob")) == []
    (firing,) = agg.add(login(40 * DAY, "c", user="bob"))
    assert firing.details["idle_days"] == 39
    if evicted:
        agg.evict(T0 + 70 * DAY)
    assert agg.add(login(70 * DAY, "d")) == []


def test_a_dormant_alert_lists_as_known_only_what_is_not_forgotten() -> None:
    agg = build_aggregation(dormant_spec(forget=timedelta(days=60)), rule_id="dormant")
    assert agg.add(login(0, "a")) == []
    admin = {"type": "admin", "username": "jane.doe"}
    (new,) = agg.add(login(35 * DAY, "b", initiated_by=admin))  # a new value
    assert new.details["value"] == "admin"
    (firing,) = agg.add(login(85 * DAY, "c"))  # 50 days idle; "user" last seen 85 days ago
    assert firing.details["idle_days"] == 50
    assert firing.details["known"] == ["admin"]


def test_dormant_needs_a_forget_longer_than_itself() -> None:
    with pytest.raises(ValidationError, match="dormant needs forget: 0"):
        dormant_spec(forget=timedelta(days=30))


def test_alert_on_learns_every_event_and_judges_only_the_selection(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        textwrap.dedent(
            """\
            id: failure-from-new-country
            title: t
            severity: medium
            detection:
              failed: {event_type: user_login_attempt, success: false}
              ok: {event_type: user_login_attempt, success: true}
              condition: failed or ok
            new_value: {field: geoip.country_code, by: initiated_by.username, learn: 0s, alert_on: failed}
            """
        ),
        encoding="utf-8",
    )
    engine = Engine(load_rules([tmp_path]))

    def event(i: int, hours: int, success: bool, country: str) -> Event:
        raw = {
            "id": f"e{i}",
            "event_type": "user_login_attempt",
            "success": success,
            "initiated_by": {"type": "user", "username": "amy"},
            "geoip": {"country_code": country},
        }
        return Event(raw, T0 + hours * HOUR, f"e{i}")

    quiet = [event(1, 0, True, "US"), event(2, 1, True, "PT"), event(3, 2, False, "PT")]
    assert engine.process_many(quiet) == []  # a success abroad teaches, never fires
    (alert,) = engine.process_many([event(4, 3, True, "BR"), event(5, 4, False, "RU")])
    assert alert.event_ids == ["e5"]


def test_alert_on_must_name_a_selection(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "id: r\ntitle: t\nseverity: low\ndetection:\n  failed: {success: false}\n"
        "new_value: {field: geoip.country_code, alert_on: faild}\n",
        encoding="utf-8",
    )
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    assert "unknown selection 'faild' (did you mean 'failed'?)" in str(info.value)


# ------------------------------------------------------------------ digest


def digest(**kw: Any) -> DigestAggregation:
    agg = build_aggregation(DigestSpec(field="initiated_by.username", **kw), rule_id="d")
    assert isinstance(agg, DigestAggregation)
    return agg


def org(offset_ns: int, event_id: str, user: str) -> Hit:
    raw = {"id": event_id, "initiated_by": {"type": "user", "username": user}, "mfa": False}
    return Hit(Event(raw, T0 + offset_ns, event_id), "", {})


def test_digest_lists_a_day_once_when_the_next_day_begins() -> None:
    agg = digest()
    day = [org(0, "a", "amy"), org(HOUR, "b", "bob"), org(2 * HOUR, "c", "amy")]
    assert [f for h in day for f in agg.add(h)] == []
    assert agg.entries() == 3
    (firing,) = agg.add(org(DAY, "d", "cat"))
    assert firing.count == 3
    assert [e.id for e in firing.events] == ["a", "b", "c"]
    assert firing.trigger.id == "c"
    assert firing.details == {
        "values": ["amy", "bob"],
        "period_start": "2026-11-20T00:00:00Z",
        "period_end": "2026-11-21T00:00:00Z",
    }
    assert agg.entries() == 1  # the new day holds cat's login


def test_digest_counts_past_its_event_cap_and_keeps_late_events_in_the_open_day() -> None:
    agg = digest(every=timedelta(hours=1))
    for i in range(150):
        agg.add(org(i * 10**9, f"e{i:03d}", f"u{i % 7}"))
    agg.add(org(-5 * 10**9, "late", "u9"))  # an earlier hour, arriving late
    (firing,) = agg.add(org(HOUR, "next", "amy"))
    assert firing.count == 151
    assert len(firing.events) == 100
    assert firing.details["values"] == [f"u{i}" for i in range(7)] + ["u9"]


def test_digest_period_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="every must be longer than 0"):
        DigestSpec(every=timedelta(0))


def _digest_engine(directory: Path, every: str = "1d", realert: str | None = None) -> Engine:
    (directory / "d.yaml").write_text(
        "id: d\ntitle: t\nseverity: info\ndetection:\n"
        "  login: {event_type: user_login_attempt, success: true, mfa: false}\n"
        f"digest: {{every: {every}, field: initiated_by.username}}\n"
        + (f"realert: {realert}\n" if realert else ""),
        encoding="utf-8",
    )
    return Engine(load_rules([directory]), tolerance_ns=5 * 60 * 10**9)


def _portal_login(i: int, at: int, user: str) -> Event:
    raw = {
        "id": f"e{i}",
        "event_type": "user_login_attempt",
        "success": True,
        "mfa": False,
        "mfa_meta": {"type": "none"},
        "initiated_by": {"type": "user", "username": user},
    }
    return Event(raw, at, f"e{i}")


def test_a_daily_list_goes_out_every_day_whatever_its_realert(tmp_path: Path) -> None:
    """realert 12h (the pack's digests) must not swallow a day's list because the last
    login of one day and the first of the next were minutes apart: realert judges a
    digest at its period's end."""
    engine = _digest_engine(tmp_path, "1d", "12h")
    day = T0 - T0 % DAY
    minute = 60 * 10**9
    logins = [
        _portal_login(1, day + DAY - 5 * minute, "amy"),  # 23:55
        _portal_login(2, day + DAY + 10 * minute, "bob"),  # 00:10 the next day
        _portal_login(3, day + DAY + 20 * minute, "cat"),
    ]
    (first,) = engine.process_many(logins)  # the next day's first login closes the day
    assert first.event_ids == ["e1"]
    (second,) = engine.due(day + 2 * DAY + 10 * minute)
    assert second.event_ids == ["e2", "e3"]
    assert engine.stats["d"].suppressed == 0


def test_a_list_held_by_realert_stays_held_however_far_the_engine_was_advanced(
    tmp_path: Path,
) -> None:
    """An hourly list with realert 3h sends one list in three hours. Whether the engine
    was advanced past the realert window while a period stayed open (replay asks for
    the periods over only at the end) must not change that."""
    answers = []
    for advance_first in (False, True):
        engine = _digest_engine(tmp_path, "1h", "3h")
        hour = T0 - T0 % HOUR
        sent = engine.process_many(
            [_portal_login(1, hour + 1, "amy"), _portal_login(2, hour + HOUR + 1, "bob")]
        )
        assert [a.event_ids for a in sent] == [["e1"]]  # hour 0's list, at its end
        if advance_first:
            engine.advance(hour + 10 * HOUR)  # other rules' events moved event time on
        later = engine.due(hour + 10 * HOUR)  # hour 1's list: an hour after hour 0's
        answers.append(([a.event_ids for a in later], engine.stats["d"].suppressed))
    assert answers[0] == answers[1] == ([], 1)


def test_digest_goes_out_when_event_time_passes_the_period_end(tmp_path: Path) -> None:
    engine = _digest_engine(tmp_path)
    day = T0 - T0 % DAY
    login = _portal_login

    assert engine.process_many([login(1, day + HOUR, "amy"), login(2, day + 2 * HOUR, "bob")]) == []
    assert engine.due(day + DAY) == []  # a late login may still belong to the day
    (alert,) = engine.due(day + DAY + 5 * 60 * 10**9)
    assert alert.count == 2
    assert alert.event_ids == ["e1", "e2"]
    assert engine.due(day + 2 * DAY) == []  # once
    # a day that closes while the engine warms up (after a restart) is not raised
    engine.process_many([login(3, day + DAY + HOUR, "cat")])
    with engine.warmup():
        assert engine.due(day + 3 * DAY) == []
