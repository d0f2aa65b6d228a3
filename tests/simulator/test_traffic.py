"""The traffic generator: real DI shapes, reproducible, attacks that exhibit themselves,
and normal traffic that is messy yet free of attack patterns."""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

import pytest

from alerting.events import Event, parse_timestamp
from alerting.simulator.traffic import (
    HOUR_NS,
    MINUTE_NS,
    SCENARIOS,
    TrafficGenerator,
    attacks_to_json,
    export_jsonl,
)

# A Thursday: the 96 h that follow hold weekdays, a weekend and everyone's trips.
THURSDAY = int(datetime(2026, 11, 19, tzinfo=UTC).timestamp()) * 1_000_000_000
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
UPPER_UUID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")
WHOLE_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
NANOS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
LOGINS = {"user_login_attempt", "admin_login_attempt", "ldap_bind", "radius_auth_attempt"}
ALERT_WORTHY_TYPES = {
    "admin_old_api_key_attempt",
    "admin_create",
    "user_admin_granted",
    "user_group_admin_grant",
    "admin_totp_disable",
    "totp_delete_enrollment",
    "policy_update",
    "policy_delete",
    "authnpolicy_delete",
    "iplist_update",
    "admin_update",
}
MFA_FIELDS = {"enable_user_portal_multifactor", "totp_enabled", "mfa.configured"}


@pytest.fixture(scope="module")
def attacked() -> tuple[TrafficGenerator, list[dict[str, Any]]]:
    gen = TrafficGenerator(seed=11)
    return gen, gen.generate(THURSDAY, THURSDAY + 48 * HOUR_NS)


@pytest.fixture(scope="module")
def normal() -> tuple[TrafficGenerator, list[dict[str, Any]]]:
    gen = TrafficGenerator(seed=11, scenarios=[])
    return gen, gen.generate(THURSDAY, THURSDAY + 96 * HOUR_NS)


def ns(event: dict[str, Any]) -> int:
    return parse_timestamp(event["timestamp"])


def who(event: dict[str, Any]) -> str | None:
    by = event.get("initiated_by")
    return by.get("username") if isinstance(by, dict) else None


def failed(event: dict[str, Any]) -> bool:
    if event["event_type"] == "sso_auth":
        return event["sso_token_success"] is False
    return event["event_type"] in LOGINS and event.get("success") is False


def km(a: dict[str, Any], b: dict[str, Any]) -> float:
    lat1, lon1, lat2, lon2 = map(
        math.radians, (a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    )
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def successful_geo_logins(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per user, the successful interactive logins that carry a location."""
    per_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        ok = (e["event_type"] == "sso_auth" and e["sso_token_success"]) or (
            e["event_type"] == "user_login_attempt" and e["success"]
        )
        if ok and "geoip" in e and who(e):
            per_user[who(e)].append(e)
    return per_user


# ----------------------------------------------------------------------- reproducibility


def test_same_seed_same_traffic_and_other_seed_differs() -> None:
    a = TrafficGenerator(seed=5).generate(THURSDAY, THURSDAY + 3 * HOUR_NS)
    b = TrafficGenerator(seed=5).generate(THURSDAY, THURSDAY + 3 * HOUR_NS)
    c = TrafficGenerator(seed=6).generate(THURSDAY, THURSDAY + 3 * HOUR_NS)
    assert a == b
    assert len(a) > 100
    assert [e["id"] for e in a] != [e["id"] for e in c]


def test_consecutive_ranges_compose_without_repeating_ids() -> None:
    whole = TrafficGenerator(seed=5).generate(THURSDAY, THURSDAY + 6 * HOUR_NS)
    live = TrafficGenerator(seed=5)
    parts: list[dict[str, Any]] = []
    t = THURSDAY
    for step in (17, 60, 1, 90, 112, 80):  # uneven polls, like a live service
        parts += live.generate(t, t + step * MINUTE_NS)
        t += step * MINUTE_NS
    ids = [e["id"] for e in parts]
    assert len(set(ids)) == len(ids)
    assert parts == whole


def test_stream_yields_the_same_events_hour_by_hour() -> None:
    start, end = THURSDAY + 7 * MINUTE_NS, THURSDAY + 3 * HOUR_NS + 11 * MINUTE_NS
    streamed = TrafficGenerator(seed=8).stream(start, end)
    assert list(streamed) == TrafficGenerator(seed=8).generate(start, end)


def test_events_are_sorted_parse_and_have_unique_ids(attacked: Any) -> None:
    _gen, events = attacked
    keys = [(Event.from_raw(e).time_ns, e["id"]) for e in events]
    assert keys == sorted(keys)
    assert len({e["id"] for e in events}) == len(events)
    assert all(THURSDAY <= k[0] < THURSDAY + 48 * HOUR_NS for k in keys)


def test_volume_is_a_few_thousand_events_per_working_hour(attacked: Any) -> None:
    _gen, events = attacked
    per_hour: dict[int, int] = defaultdict(int)
    for e in events:
        per_hour[ns(e) // HOUR_NS] += 1
    assert max(per_hour.values()) >= 2000  # busy weekday hours
    assert min(per_hour.values()) >= 50  # service accounts never sleep


def test_generation_is_fast() -> None:
    gen = TrafficGenerator(seed=3)
    began = time.process_time()  # CPU time: other xdist workers do not count against us
    events = gen.generate(THURSDAY, THURSDAY + 24 * HOUR_NS)
    rate = len(events) / max(time.process_time() - began, 1e-6)
    # ~60-90k/s on an idle core; the floor catches gross regressions (per-event deep
    # copies, per-event timezone lookups) without failing on a busy machine
    assert rate > 10_000, f"{rate:.0f} events/s"


# ----------------------------------------------------------------------- shapes


def test_per_service_shapes_and_precision(attacked: Any) -> None:
    _gen, events = attacked
    seen: set[str] = set()
    for e in events:
        service = e.get("service")
        if service is None:  # JumpCloud's documented 2020 admin login: no service field
            assert e["event_type"] == "admin_login_attempt"
            assert "initiated_by" not in e
            assert e["resource"]["type"] == "admin"
            assert set(e["geoip"]) >= {"country_code2", "region_name"}
            assert "latitude" not in e["geoip"]
            continue
        seen.add(service)
        assert e["@version"] == "1"
        assert e["organization"] == "5f3c2a1b9d8e7f6a5b4c3d2e"
        if service == "radius":
            assert UPPER_UUID.fullmatch(e["id"]), e["id"]
            assert WHOLE_SECONDS.fullmatch(e["timestamp"])
            assert e["event_type"] == "radius_auth_attempt"
            assert e["mfa"] is False
            assert e["username"] == who(e)
        elif service == "sso":
            assert OBJECT_ID.fullmatch(e["id"])
            if "server_timestamp" in e:  # the newest shape: whole seconds + server time
                assert WHOLE_SECONDS.fullmatch(e["timestamp"]), e["timestamp"]
                assert NANOS.fullmatch(e["server_timestamp"])
                assert e["timestamp_source"] == "server"
                assert e["target_resource"] == {"type": "APPLICATION"}
                assert e["initiated_by"]["administrator"] is False
            else:  # 9 fraction digits, 8 when the last is 0
                assert re.fullmatch(r".*\.\d{8,9}Z", e["timestamp"]), e["timestamp"]
            assert "success" not in e
            assert isinstance(e["sso_token_success"], bool)
            assert set(e["application"]) == {"display_label", "sso_type", "name", "id", "sso_url"}
        elif service == "systems":
            assert OBJECT_ID.fullmatch(e["id"])
            assert WHOLE_SECONDS.fullmatch(e["timestamp"])
            local = e["system_timestamp"]
            assert re.fullmatch(r".*T\d\d:\d\d:\d\d[+-]\d\d:\d\d", local)
            assert parse_timestamp(local) == ns(e)  # same instant, device-local offset
        elif service in ("directory", "ldap"):
            assert OBJECT_ID.fullmatch(e["id"])
            assert MILLIS.fullmatch(e["timestamp"]), e["timestamp"]
        elif service == "alerts":  # JumpCloud's own alerting (the di-alert attack)
            assert e["event_type"] == "alert_created"
            assert MILLIS.fullmatch(e["timestamp"]), e["timestamp"]
        else:
            pytest.fail(f"unexpected service {service}")
        geo = e.get("geoip")
        if geo is not None:
            assert set(geo) == {
                "country_code",
                "timezone",
                "latitude",
                "continent_code",
                "region_name",
                "region_code",
                "longitude",
            }
            assert isinstance(geo["latitude"], float)
            assert isinstance(geo["longitude"], float)
        if e["service"] == "ldap":
            assert "client_ip" not in e
        if e["event_type"] == "admin_login_attempt":
            assert "mfa_meta" not in e  # real admin logins carry mfa only
        if e["event_type"] == "user_delete":
            assert "success" not in e
            assert "useragent" not in e
        if e["event_type"] in {"admin_login_attempt", "user_update", "association_change"}:
            assert e["initiated_by"]["type"] == "admin"
            assert "@" in e["initiated_by"]["email"]
    assert seen == {"directory", "sso", "radius", "ldap", "systems", "alerts"}


def test_ldap_sessions_number_their_operations(attacked: Any) -> None:
    _gen, events = attacked
    ops: dict[str, list[int]] = defaultdict(list)
    for e in events:
        if e.get("service") == "ldap":
            ops[e["connection_id"]].append(e["operation_number"])
    assert ops
    for numbers in ops.values():
        assert numbers == list(range(len(numbers)))


# ----------------------------------------------------------------------- attacks


def test_every_scenario_is_injected_with_ground_truth_pointing_at_real_events(
    attacked: Any,
) -> None:
    gen, events = attacked
    by_id = {e["id"]: e for e in events}
    attacks = gen.attacks
    assert {a.scenario for a in attacks} == set(SCENARIOS)
    for a in attacks:
        assert a.rule == SCENARIOS[a.scenario]
        assert a.event_ids, a.scenario
        assert all(i in by_id for i in a.event_ids), a.scenario
        times = [ns(by_id[i]) for i in a.event_ids]
        assert a.start_ns <= min(times)  # may open with a login that sets the scene
        assert a.end_ns >= max(times)
    # attacks do not overlap one another
    spans = sorted((a.start_ns, a.end_ns) for a in attacks)
    assert all(prev[1] < nxt[0] for prev, nxt in itertools.pairwise(spans))


def _attack_events(gen: TrafficGenerator, events: list[dict[str, Any]], scenario: str) -> Any:
    by_id = {e["id"]: e for e in events}
    found = [(a, [by_id[i] for i in a.event_ids]) for a in gen.attacks if a.scenario == scenario]
    assert len(found) >= 2, scenario  # repeated periodically in a long range
    return found


def test_failed_login_burst_has_twelve_foreign_failures_within_five_minutes(
    attacked: Any,
) -> None:
    gen, events = attacked
    for attack, evs in _attack_events(gen, events, "failed-login-burst"):
        user = attack.group["initiated_by.username"]
        home = next(p.home.country for p in gen.people if p.username == user)
        assert all(failed(e) and who(e) == user for e in evs)
        assert len(evs) >= 12
        assert ns(evs[-1]) - ns(evs[0]) <= 5 * MINUTE_NS
        assert all(e["geoip"]["country_code"] != home for e in evs)
        assert len({e["client_ip"] for e in evs}) >= 2


def test_password_spray_hits_fifteen_usernames_from_one_ip(attacked: Any) -> None:
    gen, events = attacked
    for attack, evs in _attack_events(gen, events, "password-spray"):
        assert {e["client_ip"] for e in evs} == {attack.group["client_ip"]}
        assert all(failed(e) for e in evs)
        assert len({who(e) for e in evs}) >= 15
        assert ns(evs[-1]) - ns(evs[0]) <= 5 * MINUTE_NS


def test_brute_force_ends_in_a_success_from_the_attacker_ip(attacked: Any) -> None:
    gen, events = attacked
    for attack, evs in _attack_events(gen, events, "brute-force-success"):
        *failures, success = evs
        assert len(failures) >= 10
        assert all(failed(e) for e in failures)
        assert success["success"] is True
        assert success["event_type"] == "user_login_attempt"
        assert {e["client_ip"] for e in evs} == {success["client_ip"]}
        assert {who(e) for e in evs} == {attack.group["initiated_by.username"]}
        assert set(attack.also_rules) >= {"failed-login-burst", "unusual-geoip-login"}


def test_login_without_mfa_is_a_portal_or_console_success(attacked: Any) -> None:
    gen, events = attacked
    shapes = set()
    for scenario in ("login-without-mfa", "admin-login-without-mfa"):
        for _attack, evs in _attack_events(gen, events, scenario):
            (e,) = evs
            shapes.add((e["event_type"], "initiated_by" in e))
            assert e["success"] is True
            assert e["mfa"] is False
            assert "mfa_meta" not in e or e["event_type"] == "user_login_attempt"
    # users at the portal; admins at the console, in both admin shapes
    assert shapes == {
        ("user_login_attempt", True),
        ("admin_login_attempt", True),
        ("admin_login_attempt", False),
    }


def test_login_without_mfa_victims_used_mfa_just_before(attacked: Any) -> None:
    gen, events = attacked
    by_id = {e["id"]: e for e in events}
    for attack, evs in _attack_events(gen, events, "login-without-mfa"):
        before = [
            e
            for e in by_id.values()
            if e.get("initiated_by", {}).get("username") == attack.group["initiated_by.username"]
            and e["event_type"] == "user_login_attempt"
            and attack.start_ns <= ns(e) < ns(evs[0])
        ]
        assert any(e["mfa"] is True for e in before)


def test_admin_old_api_key_attempt_shape(attacked: Any) -> None:
    gen, events = attacked
    for _attack, evs in _attack_events(gen, events, "admin-old-api-key-attempt"):
        (e,) = evs
        assert e["event_type"] == "admin_old_api_key_attempt"
        assert e["initiated_by"]["type"] == "admin"
        assert e["useragent"]["name"] == "curl"
        assert e["auth_method"] == "api key"
        assert e["resource"]["base_url"].startswith("https://")


def test_new_country_login_is_new_for_the_user_yet_reachable(attacked: Any) -> None:
    gen, events = attacked
    logins = successful_geo_logins(events)
    checked = 0
    for attack, evs in _attack_events(gen, events, "new-country-login"):
        user = attack.group["initiated_by.username"]
        (login,) = evs
        country = login["geoip"]["country_code"]
        assert login["success"] is True
        assert login["mfa"] is True
        earlier = [e for e in logins[user] if ns(e) < ns(login)]
        if not earlier:
            continue  # the victim's quiet time before the trip began before this range
        checked += 1
        assert country not in {e["geoip"]["country_code"] for e in earlier}
        last = earlier[-1]
        hours = (ns(login) - ns(last)) / HOUR_NS
        assert km(last["geoip"], login["geoip"]) / hours < 900  # a flight, not teleporting
    assert checked >= 2


def test_impossible_travel_is_two_far_apart_successes_within_minutes(attacked: Any) -> None:
    gen, events = attacked
    for attack, evs in _attack_events(gen, events, "impossible-travel"):
        first, second = evs
        assert who(first) == who(second) == attack.group["initiated_by.username"]
        assert first["success"]
        assert second["success"]
        minutes = (ns(second) - ns(first)) / MINUTE_NS
        assert minutes <= 5
        assert km(first["geoip"], second["geoip"]) / (minutes / 60) > 10_000


def test_admin_change_scenarios(attacked: Any) -> None:
    gen, events = attacked
    for _a, evs in _attack_events(gen, events, "mfa-disabled"):
        (e,) = evs
        assert e["event_type"] in {"admin_totp_disable", "totp_delete_enrollment", "user_update"}
        if e["event_type"] == "user_update":
            (change,) = e["changes"]
            assert change["field"] in MFA_FIELDS
            assert (change["from"], change["to"]) == (True, False)
    for _a, evs in _attack_events(gen, events, "admin-privilege-granted"):
        assert next(e["event_type"] for e in evs) in {
            "user_admin_granted",
            "user_group_admin_grant",
        }
    for _a, evs in _attack_events(gen, events, "admin-created"):
        assert evs[0]["event_type"] == "admin_create"
        assert evs[0]["resource"]["type"] == "admin"
    for _a, evs in _attack_events(gen, events, "api-key-or-policy-change"):
        e = evs[0]
        assert e["event_type"] in {
            "policy_update",
            "authnpolicy_delete",
            "iplist_update",
            "admin_update",
        }
        if e["event_type"] == "admin_update":
            assert e["changes"] == [{"field": "apiKey"}]
    for attack, evs in _attack_events(gen, events, "mass-user-deletion"):
        assert len(evs) >= 10
        assert all(e["event_type"] == "user_delete" for e in evs)
        assert {e["initiated_by"]["email"] for e in evs} == {attack.group["initiated_by.email"]}
        assert ns(evs[-1]) - ns(evs[0]) <= 5 * MINUTE_NS


def test_scenario_selection_and_unknown_names() -> None:
    gen = TrafficGenerator(seed=2, scenarios=["password-spray"])
    gen.generate(THURSDAY, THURSDAY + 12 * HOUR_NS)
    assert {a.scenario for a in gen.attacks} == {"password-spray"}
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        TrafficGenerator(seed=2, scenarios=["nope"])


def test_export_and_ground_truth_json(tmp_path: Any, attacked: Any) -> None:
    gen, events = attacked
    path = tmp_path / "events.jsonl"
    assert export_jsonl(path, events[:500]) == 500
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == events[:500]
    truth = json.loads(attacks_to_json(gen.attacks))
    assert truth[0]["scenario"] == gen.attacks[0].scenario
    assert truth[0]["start_time"].endswith("Z")
    assert truth[0]["event_ids"]


# ----------------------------------------------------------------------- normal traffic


def test_normal_traffic_has_no_failure_bursts_or_sprays(normal: Any) -> None:
    _gen, events = normal
    per_user: dict[str, deque[int]] = defaultdict(deque)
    per_ip: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
    worst_user = worst_ip = 0
    for e in events:
        if not failed(e):
            continue
        t = ns(e)
        window = per_user[who(e) or "?"]
        window.append(t)
        while window[0] <= t - 5 * MINUTE_NS:
            window.popleft()
        worst_user = max(worst_user, len(window))
        ips = per_ip[e["client_ip"]]
        ips.append((t, who(e) or "?"))
        while ips[0][0] <= t - 10 * MINUTE_NS:
            ips.popleft()
        worst_ip = max(worst_ip, len({u for _t, u in ips}))
    assert 1 <= worst_user < 10
    assert worst_ip < 5


def test_normal_traffic_has_no_alert_worthy_changes(normal: Any) -> None:
    _gen, events = normal
    for e in events:
        assert e["event_type"] not in ALERT_WORTHY_TYPES, e
        if e["event_type"] in ("user_login_attempt", "admin_login_attempt") and e["success"]:
            assert e["mfa"] is True, e
        for change in e.get("changes") or []:
            if isinstance(change, dict):
                assert change.get("field") not in MFA_FIELDS | {"apiKey"}
    deletes = [ns(e) for e in events if e["event_type"] == "user_delete"]
    assert all(b - a > 10 * MINUTE_NS for a, b in itertools.pairwise(deletes))


def test_normal_travel_is_possible_and_to_known_countries(normal: Any) -> None:
    gen, events = normal
    homes = {p.username: p for p in gen.people}
    trips = 0
    for user, logins in successful_geo_logins(events).items():
        allowed = {homes[user].home.country, *homes[user].trips}
        for a, b in itertools.pairwise(logins):
            assert b["geoip"]["country_code"] in allowed
            dist = km(a["geoip"], b["geoip"])
            if dist > 100:
                hours = max(ns(b) - ns(a), 1) / HOUR_NS
                assert dist / hours < 1000, (user, a["timestamp"], b["timestamp"])
                trips += 1
    assert trips >= 2  # some people did fly during these four days


def test_normal_traffic_is_messy_like_the_real_thing(normal: Any) -> None:
    _gen, events = normal
    # typos: failures followed by the same user's success within a minute
    typos = 0
    last_failure: dict[str, int] = {}
    for e in events:
        if e["event_type"] != "user_login_attempt":
            continue
        user = who(e) or "?"
        if not e["success"]:
            last_failure[user] = ns(e)
        elif user in last_failure and ns(e) - last_failure.pop(user) <= MINUTE_NS:
            typos += 1
    assert typos >= 5
    sso = [e for e in events if e["event_type"] == "sso_auth"]
    assert sso
    assert all(e["mfa"] is False for e in sso)
    service_ok = [
        e
        for e in events
        if (who(e) or "").startswith(("svc-", "printer-"))
        and e["success"] is True
        and e["service"] in ("radius", "ldap")
    ]
    assert {e["service"] for e in service_ok} == {"radius", "ldap"}
    assert all(e.get("mfa", False) is False for e in service_ok)
    automation = [e for e in events if e.get("auth_method") == "api key"]
    assert automation
    assert {e["event_type"] for e in automation} == {"user_update"}
    assert {e["useragent"]["name"] for e in automation} <= {"curl", "Python Requests"}
    drift = [e for e in events if e["service"] == "systems" and isinstance(e.get("changes"), dict)]
    assert drift, "some systems events carry `changes` as an object"
    assert any(e["event_type"] == "login_attempt" and e["process_name"] == "sshd" for e in events)
    assert any(e["event_type"] == "admin_login_attempt" and e["mfa"] for e in events)
    assert {"user_create", "user_update", "association_change"} <= {e["event_type"] for e in events}


def test_live_paced_attacks_only_trip_the_rules_they_declare() -> None:
    """With an attack every 4.5 minutes (the simulator's live pace), victims never collide:
    every too-fast journey and every login from a strange country is part of an attack
    that names impossible-travel / unusual-geoip-login as its rule or as also expected."""
    gen = TrafficGenerator(seed=13, attack_slot_ns=int(4.5 * MINUTE_NS), attack_anchor_ns=THURSDAY)
    events = gen.generate(THURSDAY, THURSDAY + 24 * HOUR_NS)
    declared: dict[str, set[str]] = defaultdict(set)
    for a in gen.attacks:
        for event_id in a.event_ids:
            declared[event_id] |= {a.rule, *a.also_rules}
    people = {p.username: p for p in gen.people}
    fast = 0
    for user, logins in successful_geo_logins(events).items():
        known = {people[user].home.country, *people[user].trips} if user in people else set()
        for e in logins:
            if e["geoip"]["country_code"] not in known and e["event_type"] != "sso_auth":
                assert "unusual-geoip-login" in declared[e["id"]], e
        for a, b in itertools.pairwise(logins):
            dist = km(a["geoip"], b["geoip"])
            hours = max(ns(b) - ns(a), 1) / HOUR_NS
            if dist > 500 and dist / hours > 1000:
                fast += 1
                assert "impossible-travel" in declared[a["id"]] | declared[b["id"]], (a, b)
    assert fast >= 10  # the attacks themselves are there
