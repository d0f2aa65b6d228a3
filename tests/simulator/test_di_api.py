"""The local DI API server behaves like the documented JumpCloud API (reference §2, §3, §6)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from alerting.clock import ManualClock
from alerting.errors import AlertingError
from alerting.events import format_timestamp, parse_timestamp
from alerting.simulator.di_api import (
    API_PREFIX,
    DEMO_API_KEY,
    DIApiServer,
    Faults,
    parse_faults,
)
from tests.support.di import NOW, NS, raw_event

EVENTS = f"{API_PREFIX}/events"
START = format_timestamp((NOW - 3600) * NS)
HTTP = httpx.Client(timeout=10)  # one client: building an SSL context per request is slow

# Fixtures shared with test_jumpcloud_client.py.


def event(n: int, seconds_ago: float, **fields: Any) -> dict[str, Any]:
    return raw_event(f"ev{n:05d}", int((NOW - seconds_ago) * NS), **fields)


def post(
    server: DIApiServer,
    body: Any,
    *,
    path: str = EVENTS,
    headers: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    if headers is None:
        headers = [("x-api-key", DEMO_API_KEY)]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HTTP.post(server.url + path, content=content, headers=headers)


def query(**extra: Any) -> dict[str, Any]:
    return {"service": ["all"], "start_time": START, **extra}


def ids(response: httpx.Response) -> list[str]:
    return [e["id"] for e in response.json()]


# ---------------------------------------------------------------------------- auth


def test_api_key_required_and_checked(server: DIApiServer) -> None:
    server.add_events([event(1, 10)])
    for headers in ([], [("x-api-key", "x" * 40)], [("Authorization", "Bearer wrong")]):
        r = post(server, query(), headers=headers)
        assert r.status_code == 401
        assert r.json() == {"message": "Unauthorized (Invalid API Key)"}
    assert ids(post(server, query())) == ["ev00001"]


def test_bearer_token_requires_org_id(server: DIApiServer) -> None:
    server.add_events([event(1, 10)])
    bearer = ("Authorization", f"Bearer {DEMO_API_KEY}")
    r = post(server, query(), headers=[bearer])
    assert r.status_code == 400
    assert "x-org-id" in r.json()["message"]
    r = post(server, query(), headers=[bearer, ("x-org-id", "org-a")])
    assert r.status_code == 200
    assert ids(r) == ["ev00001"]


def test_repeated_org_ids_serve_the_union_of_those_orgs(server: DIApiServer) -> None:
    server.add_events(
        [
            event(1, 30, organization="org-a"),
            event(2, 20, organization="org-b"),
            event(3, 10, organization="org-c"),
        ]
    )
    key = ("x-api-key", DEMO_API_KEY)
    both = post(server, query(), headers=[key, ("x-org-id", "org-a"), ("x-org-id", "org-c")])
    assert ids(both) == ["ev00001", "ev00003"]
    unknown = post(server, query(), headers=[key, ("x-org-id", "org-zzz")])
    assert unknown.status_code == 200
    assert unknown.json() == []
    assert len(post(server, query()).json()) == 3  # a single-org key without x-org-id


def test_server_org_id_limits_a_key_without_x_org_id(clock: ManualClock) -> None:
    events = [event(1, 20, organization="org-a"), event(2, 10, organization="org-b")]
    with DIApiServer(events, clock=clock, org_id="org-b") as srv:
        assert ids(post(srv, query())) == ["ev00002"]


# ---------------------------------------------------------------------------- validation

SERVICE_LIST = "supported values: alerts, all, directory"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Invalid/unknown query JSON body"),
        (b"[1, 2]", "Invalid/unknown query JSON body"),
        ({"start_time": START}, "service is required; " + SERVICE_LIST),
        ({"service": [], "start_time": START}, "service is required; " + SERVICE_LIST),
        ({"service": "all", "start_time": START}, "service must be a list"),
        ({"service": ["directroy"], "start_time": START}, "unknown service 'directroy'"),
        ({"service": ["all"]}, "start_time is required"),
        ({"service": ["all"], "start_time": ""}, "start_time is required"),
        ({"service": ["all"], "start_time": "-30d"}, "invalid start_time '-30d'"),
        ({"service": ["all"], "start_time": "2026-13-01T00:00:00Z"}, "invalid start_time"),
        ({"service": ["all"], "start_time": 1700000000}, "invalid start_time"),
        (query(end_time="yesterday"), "invalid end_time 'yesterday'"),
        (
            {"service": ["all"], "start_time": format_timestamp((NOW + 60) * NS)},
            "Start Time is in the future",
        ),
        (query(fields=[]), "fields must be a non-empty list"),
        (query(fields=["no_such_field", "nor_this"]), "fields lists no known field"),
        (query(search_after=["abc", "x"]), "invalid search_after"),
        (query(search_after=[1]), "invalid search_after"),
        (query(skip=-1), "skip must be a non-negative integer"),
        (query(search_term={"nand": {"a": "b"}}), "unknown operator 'nand'"),
        (query(search_term={"and": "x"}), "expected a map or a list of maps"),
        (query(search_term={"and": {"changes": "x"}}), "'changes' is not searchable"),
        (query(search_term={"and": {"username": None}}), "needs a string, number or boolean"),
    ],
)
def test_invalid_queries_are_400_with_a_message(
    server: DIApiServer, body: Any, message: str
) -> None:
    r = post(server, body)
    assert r.status_code == 400
    assert message in r.json()["message"]
    assert uuid.UUID(r.headers["X-Request-Id"]).version == 4


def test_unknown_service_lists_supported_values_and_suggests(server: DIApiServer) -> None:
    message = post(server, {"service": ["directroy"], "start_time": START}).json()["message"]
    assert "did you mean 'directory'?" in message
    assert "radius" in message
    assert "sso" in message


def test_start_after_end_is_the_real_message_with_go_escaping(server: DIApiServer) -> None:
    start, end = "2026-05-28T09:13:52Z", "2026-05-28T09:11:52Z"
    r = post(server, {"service": ["all"], "start_time": start, "end_time": end})
    assert r.status_code == 400
    assert r.content == (
        b'{"message":"Start Time not after End Time '
        b'2026-05-28T09:13:52Z \\u003e 2026-05-28T09:11:52Z"}'
    )


def test_start_time_accepts_offsets_and_any_fraction_digits(server: DIApiServer) -> None:
    server.add_events([event(1, 100)])
    base = NOW - 200
    for text in (
        format_timestamp(base * NS),
        format_timestamp(base * NS + 123_456_789),
        format_timestamp(base * NS).replace("Z", "+00:00"),
        format_timestamp((base + 7200) * NS).replace("Z", "+02:00"),
    ):
        r = post(server, {"service": ["all"], "start_time": text})
        assert r.status_code == 200, text
        assert ids(r) == ["ev00001"]


# ---------------------------------------------------------------------------- paging


def test_limit_default_max_and_nonsense(server: DIApiServer) -> None:
    server.add_events(event(i, 3000 - i * 0.1) for i in range(10_500))
    cases = [(None, 1000), (500, 500), (20_000, 10_000), ("abc", 1000), (0, 1000), (-5, 1000)]
    for limit, expected in cases:
        body = query() if limit is None else query(limit=limit)
        r = post(server, body)
        assert r.headers["X-Limit"] == str(expected), limit
        assert r.headers["X-Result-Count"] == str(expected)
        assert len(r.json()) == expected


def test_order_is_millisecond_then_id_whatever_the_precision(server: DIApiServer) -> None:
    base = (NOW - 100) * NS
    server.add_events(
        [
            {"id": "b", "timestamp": format_timestamp(base + 5_000_001)},  # same ms as "a"
            {"id": "a", "timestamp": format_timestamp(base + 5_999_999)},
            {"id": "c", "timestamp": format_timestamp(base)},  # whole seconds (RADIUS)
            {"id": "d", "timestamp": format_timestamp(base + 4_000_000)},  # ms (directory)
        ]
    )
    assert ids(post(server, query())) == ["c", "d", "a", "b"]


def test_search_after_pages_through_everything_exactly_once(server: DIApiServer) -> None:
    # ten events share one millisecond: paging must tie-break on the id
    same_ms = [
        {"id": f"same{i}", "timestamp": format_timestamp((NOW - 50) * NS)} for i in range(10)
    ]
    server.add_events([*same_ms, *(event(i, 100 - i) for i in range(15))])
    seen: list[str] = []
    body = query(limit=4)
    while True:
        r = post(server, body)
        page = ids(r)
        seen += page
        if int(r.headers["X-Result-Count"]) < int(r.headers["X-Limit"]):
            break
        header = r.headers["X-Search_after"]
        assert " " not in header
        last = r.json()[-1]
        assert json.loads(header) == [parse_timestamp(last["timestamp"]) // 1_000_000, last["id"]]
        body["search_after"] = json.loads(header)
    assert len(seen) == 25
    assert len(set(seen)) == 25


def test_search_after_accepts_a_numeric_string_and_is_strictly_after(
    server: DIApiServer,
) -> None:
    server.add_events(event(i, 100 - i) for i in range(6))
    first = post(server, query(limit=3))
    ms, last_id = json.loads(first.headers["X-Search_after"])
    assert last_id == "ev00002"
    as_int = post(server, query(limit=3, search_after=[ms, last_id]))
    as_str = post(server, query(limit=3, search_after=[str(ms), last_id]))
    assert ids(as_int) == ids(as_str) == ["ev00003", "ev00004", "ev00005"]


def test_empty_pages_repeat_the_request_cursor_or_omit_it(server: DIApiServer) -> None:
    server.add_events(event(i, 100 - i) for i in range(2))
    r = post(server, query(search_after=[NOW * 1000, "zzz"]))
    assert r.json() == []
    assert r.content == b"[]"
    assert r.headers["X-Result-Count"] == "0"
    assert r.headers["X-Search_after"] == f'[{NOW * 1000},"zzz"]'
    empty = post(server, query(end_time=format_timestamp((NOW - 1000) * NS)))
    assert empty.json() == []
    assert "X-Search_after" not in empty.headers


def test_exact_header_spelling_and_request_ids(server: DIApiServer) -> None:
    server.add_events([event(1, 10)])
    r1, r2 = post(server, query()), post(server, query())
    raw_names = [name for name, _ in r1.headers.raw]
    assert b"X-Search_after" in raw_names
    assert b"X-Result-Count" in raw_names
    assert b"X-Limit" in raw_names
    assert b"X-Sort" in raw_names
    assert r1.headers["X-Request-Id"] != r2.headers["X-Request-Id"]
    assert uuid.UUID(r1.headers["X-Request-Id"]).version == 4


def test_start_and_end_are_inclusive(server: DIApiServer) -> None:
    server.add_events([event(1, 300), event(2, 200), event(3, 100)])
    start = server_rows_time(server, "ev00001")
    end = server_rows_time(server, "ev00002")
    r = post(server, {"service": ["all"], "start_time": start, "end_time": end})
    assert ids(r) == ["ev00001", "ev00002"]
    same = post(server, {"service": ["all"], "start_time": end, "end_time": end})
    assert ids(same) == ["ev00002"]


def server_rows_time(server: DIApiServer, event_id: str) -> str:
    (raw,) = [e for e in post(server, query()).json() if e["id"] == event_id]
    return str(raw["timestamp"])


def test_sort_desc_case_insensitive_and_nonsense_is_asc(server: DIApiServer) -> None:
    server.add_events(event(i, 100 - i) for i in range(5))
    desc = post(server, query(sort="desc"))
    assert desc.headers["X-Sort"] == "DESC"
    assert ids(desc) == [f"ev{i:05d}" for i in reversed(range(5))]
    page = post(server, query(sort="DeSc", limit=2))
    nxt = post(
        server, query(sort="desc", limit=2, search_after=json.loads(page.headers["X-Search_after"]))
    )
    assert ids(page) + ids(nxt) == ["ev00004", "ev00003", "ev00002", "ev00001"]
    odd = post(server, query(sort="sideways"))
    assert odd.headers["X-Sort"] == "ASC"
    assert ids(odd) == [f"ev{i:05d}" for i in range(5)]


def test_skip_is_an_offset(server: DIApiServer) -> None:
    server.add_events(event(i, 100 - i) for i in range(5))
    assert ids(post(server, query(skip=3))) == ["ev00003", "ev00004"]


def test_events_out_of_order_are_served_in_order(server: DIApiServer) -> None:
    server.add_events([event(2, 10)])
    server.add_events([event(1, 20), event(3, 5)])
    assert ids(post(server, query())) == ["ev00001", "ev00002", "ev00003"]


def test_service_filter(server: DIApiServer) -> None:
    server.add_events([event(1, 30, service="sso"), event(2, 20, service="radius"), event(3, 10)])
    assert ids(post(server, {"service": ["sso", "radius"], "start_time": START})) == [
        "ev00001",
        "ev00002",
    ]
    assert len(post(server, {"service": ["all", "sso"], "start_time": START}).json()) == 3


def test_retention_is_90_days(server: DIApiServer) -> None:
    server.add_events([event(1, 91 * 86400), event(2, 89 * 86400)])
    old_start = format_timestamp((NOW - 100 * 86400) * NS)
    assert ids(post(server, {"service": ["all"], "start_time": old_start})) == ["ev00002"]


# ---------------------------------------------------------------------------- fields + search


def test_fields_projects_dot_paths(server: DIApiServer) -> None:
    server.add_events(
        [event(1, 10, initiated_by={"id": "u1", "type": "user", "username": "alice"})]
    )
    r = post(server, query(fields=["event_type", "initiated_by.username", "nope"]))
    assert r.json() == [{"event_type": "user_login_attempt", "initiated_by": {"username": "alice"}}]


LOGINS = [
    event(1, 60, username="root", success=False, client_ip="1.2.3.4"),
    event(2, 50, username="Admin", success=True, client_ip="1.2.3.4"),
    event(3, 40, username="paul", success=False, initiated_by={"username": "Paul"}),
    event(4, 30, username="bob", success=False, service="radius", outer={"eap_type": "PEAP"}),
    event(5, 20, username="carol", success=True, event_type="admin_login_attempt"),
]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ({"and": [{"username": "root"}, {"client_ip": "1.2.3.4"}]}, [1]),
        ({"and": {"username": "root", "client_ip": "1.2.3.4"}}, [1]),  # single-map form
        ({"and": {"username": ["root", "admin"]}}, [1, 2]),  # list value = OR; lower-case
        ({"or": [{"username": "root"}, {"username": "bob"}]}, [1, 4]),
        ({"and": [{"success": "false"}]}, [1, 3, 4]),  # booleans as strings
        ({"and": [{"success": False}, {"service": "directory"}]}, [1, 3]),
        ({"and": {"outer.eap_type": "peap"}}, [4]),  # dot path, case-insensitive
        (
            {
                "and": [
                    {"success": "false"},
                    {"or": [{"initiated_by.username": "paul"}, {"username": "paul"}]},
                ]
            },
            [3],
        ),
        ({"not": {"event_type": "user_login_attempt"}}, [5]),
        ({"not": [{"username": "root"}, {"username": "bob"}]}, [2, 3, 5]),
        ({"and": {"username": "nobody"}}, []),
    ],
)
def test_search_term(server: DIApiServer, term: dict[str, Any], expected: list[int]) -> None:
    server.add_events(LOGINS)
    r = post(server, query(search_term=term))
    assert r.status_code == 200, r.text
    assert ids(r) == [f"ev{n:05d}" for n in expected]
    count = post(server, query(search_term=term), path=f"{API_PREFIX}/events/count")
    assert count.json() == {"count": len(expected)}


def test_count_ignores_paging_fields(server: DIApiServer) -> None:
    server.add_events(event(i, 100 - i) for i in range(30))
    r = post(server, query(limit=5, sort="DESC"), path=f"{API_PREFIX}/events/count")
    assert r.json() == {"count": 30}


def test_distinct_buckets(server: DIApiServer) -> None:
    server.add_events(LOGINS)
    r = post(server, query(field="success"), path=f"{API_PREFIX}/events/distinct")
    assert r.json() == {
        "buckets": [{"key": "false", "doc_count": 3}, {"key": "true", "doc_count": 2}],
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": 0,
    }
    missing = post(server, query(), path=f"{API_PREFIX}/events/distinct")
    assert missing.status_code == 400


def test_interval_buckets_fill_gaps(server: DIApiServer) -> None:
    minute = (NOW // 60) * 60  # align to a minute boundary
    server.add_events(
        [
            {"id": "a", "timestamp": format_timestamp((minute - 170) * NS)},
            {"id": "b", "timestamp": format_timestamp((minute - 150) * NS)},
            {"id": "c", "timestamp": format_timestamp((minute - 30) * NS)},
        ]
    )
    r = post(server, query(interval_unit="m"), path=f"{API_PREFIX}/events/interval")
    buckets = r.json()["buckets"]
    assert [b["doc_count"] for b in buckets] == [2, 0, 1]
    assert [b["key"] for b in buckets] == [(minute - 180 + 60 * i) * 1000 for i in range(3)]
    assert buckets[0]["key_as_string"].endswith("+00:00")
    bad = post(server, query(interval_unit="y"), path=f"{API_PREFIX}/events/interval")
    assert bad.status_code == 400


# ---------------------------------------------------------------------------- faults


def test_rate_limit_every_nth_with_and_without_retry_after(server: DIApiServer) -> None:
    server.faults = Faults(rate_limit_every=3, retry_after=7)
    statuses = [post(server, query()).status_code for _ in range(6)]
    assert statuses == [200, 200, 429, 200, 200, 429]
    limited = post(server, query(), headers=[("x-api-key", DEMO_API_KEY)])
    server.faults.retry_after = None
    post(server, query())
    r = post(server, query())
    assert r.status_code == 429
    assert "Retry-After" not in r.headers
    assert limited.status_code == 200


def test_retry_after_header_value(server: DIApiServer) -> None:
    server.faults = Faults(fail_next=[429], retry_after=7)
    r = post(server, query())
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert post(server, query()).status_code == 200


def test_fail_next_then_normal_and_error_every(server: DIApiServer) -> None:
    server.faults.fail_next = [503, 500]
    assert [post(server, query()).status_code for _ in range(3)] == [503, 500, 200]
    server.faults = Faults(error_every=2, error_status=500)
    codes = [post(server, query()).status_code for _ in range(4)]
    assert codes.count(500) == 2
    assert server.requests[-1].status in (200, 500)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "Unauthorized (Invalid API Key)"),
        (402, "Directory Insights is not enabled for your organization"),
        (403, "Forbidden: admin API key required"),
    ],
)
def test_forced_status(server: DIApiServer, status: int, message: str) -> None:
    server.faults.status = status
    r = post(server, query())
    assert r.status_code == status
    assert r.json() == {"message": message}


def test_ingestion_delay_hides_recent_events(server: DIApiServer, clock: ManualClock) -> None:
    server.faults.ingestion_delay = 60
    server.add_events([event(1, 90), event(2, 30)])
    assert ids(post(server, query())) == ["ev00001"]
    clock.advance(31)
    assert ids(post(server, query())) == ["ev00001", "ev00002"]


def test_duplicates_reserve_the_previous_last_event(server: DIApiServer) -> None:
    server.faults.duplicate_ids = True
    server.add_events(event(i, 100 - i) for i in range(5))
    first = post(server, query(limit=2))
    second = post(server, query(limit=2, search_after=json.loads(first.headers["X-Search_after"])))
    assert ids(first) == ["ev00000", "ev00001"]
    assert ids(second) == ["ev00001", "ev00002", "ev00003"]
    # the cursor still follows the real results, so paging does not stall
    assert json.loads(second.headers["X-Search_after"])[1] == "ev00003"


def test_malformed_every_rotates_through_shapes(server: DIApiServer) -> None:
    server.faults.malformed_every = 2
    server.add_events(event(i, 100 - i) for i in range(6))
    body = post(server, query()).json()
    good = [body[0], body[2], body[4]]
    assert all(isinstance(e, dict) and "timestamp" in e for e in good)
    bad = [body[1], body[3], body[5]]
    assert isinstance(bad[0], dict)
    assert "timestamp" not in bad[0]
    assert bad[1]["timestamp"] == "not-a-timestamp"
    assert not isinstance(bad[2], dict)


def test_event_feed_extends_traffic_up_to_now(server: DIApiServer, clock: ManualClock) -> None:
    calls: list[int] = []

    def feed(now_ns: int) -> None:
        calls.append(now_ns)
        server.add_events([{"id": f"fed{len(calls)}", "timestamp": format_timestamp(now_ns - NS)}])

    server.event_feed = feed
    assert ids(post(server, query())) == ["fed1"]
    clock.advance(10)
    assert ids(post(server, query())) == ["fed1", "fed2"]
    assert calls == [NOW * NS, (NOW + 10) * NS]


def test_a_failing_feed_hook_is_a_500_not_a_dead_server(server: DIApiServer) -> None:
    def broken(now_ns: int) -> None:
        raise ValueError("generator bug")

    server.event_feed = broken
    r = post(server, query())
    assert r.status_code == 500
    assert r.json() == {"message": "Technical difficulties processing your request"}
    server.event_feed = None
    assert post(server, query()).status_code == 200


def test_requests_are_recorded(server: DIApiServer) -> None:
    post(server, query(limit=5), headers=[("x-api-key", DEMO_API_KEY), ("x-org-id", "o1")])
    record = server.requests[-1]
    assert record.path == EVENTS
    assert record.status == 200
    assert record.json()["limit"] == 5
    assert record.header("X-ORG-ID") == "o1"


def test_unknown_path_and_method(server: DIApiServer) -> None:
    assert post(server, query(), path="/insights/directory/v2/events").status_code == 404
    r = HTTP.get(server.url + EVENTS, headers={"x-api-key": DEMO_API_KEY})
    assert r.status_code == 405


def test_add_events_rejects_events_without_timestamp(clock: ManualClock) -> None:
    with pytest.raises(AlertingError, match="no 'timestamp'"):
        DIApiServer([{"id": "x"}], clock=clock)


# ---------------------------------------------------------------------------- fault names


def test_parse_faults_names_and_values() -> None:
    faults = parse_faults(
        ["rate-limit", "errors", "ingestion-delay=300", "duplicates", "malformed=10"]
    )
    assert faults.rate_limit_every == 5
    assert faults.retry_after == 1.0
    assert faults.error_every == 7
    assert faults.error_status == 503
    assert faults.ingestion_delay == 300
    assert faults.duplicate_ids
    assert faults.malformed_every == 10
    assert parse_faults(["rate-limit-no-retry-after"]).retry_after is None
    assert parse_faults(["slow"]).slow_seconds > 0
    assert parse_faults(["trickle=3"]).trickle_seconds == 3
    assert parse_faults(["short-read"]).empty_page_every == 2
    assert parse_faults(["no-plan"]).status == 402
    assert parse_faults(["forbidden"]).status == 403
    assert parse_faults(["unauthorized"]).status == 401
    assert parse_faults([]) == Faults()


def test_parse_faults_rejects_unknown_names_with_a_suggestion() -> None:
    with pytest.raises(
        AlertingError, match=r"--fault rate-limt: unknown fault \(did you mean 'rate-limit'\?\)"
    ):
        parse_faults(["rate-limt"])
    with pytest.raises(AlertingError, match="positive number"):
        parse_faults(["slow=fast"])
