"""Selections: every modifier, wildcards and escapes, case, booleans, null, lists."""

from __future__ import annotations

import pytest

from alerting.engine.matchers import SelectionError, compile_selection


def matches(selection, event):
    return compile_selection("sel", selection).predicate(event)


# (selection, event, expected)
CASES = [
    # plain values: case-insensitive equality
    ({"event_type": "user_login_attempt"}, {"event_type": "USER_Login_Attempt"}, True),
    ({"event_type": "user_login_attempt"}, {"event_type": "user_login"}, False),
    ({"event_type": "user_login_attempt"}, {}, False),
    # wildcards
    ({"event_type": "user_*"}, {"event_type": "user_create"}, True),
    ({"event_type": "*_create"}, {"event_type": "user_create"}, True),
    ({"event_type": "*login*"}, {"event_type": "admin_login_attempt"}, True),
    ({"event_type": "user_?reate"}, {"event_type": "user_create"}, True),
    ({"event_type": "user_?reate"}, {"event_type": "user_ccreate"}, False),
    ({"event_type": "a*b*c"}, {"event_type": "AxxBxxC"}, True),
    ({"event_type": "a*b*c"}, {"event_type": "axxbxxd"}, False),
    # escapes: \* and \? are literal; other backslashes stay literal
    ({"msg": r"50\% off\*"}, {"msg": r"50\% off*"}, True),
    ({"msg": r"off\*"}, {"msg": "offX"}, False),
    ({"msg": r"what\?"}, {"msg": "what?"}, True),
    ({"msg": r"what\?"}, {"msg": "whatX"}, False),
    ({"msg": r"C:\Windows\*"}, {"msg": r"C:\Windows*"}, True),
    # string modifiers (wildcards still apply inside)
    (
        {"initiated_by.email|endswith": "@example.com"},
        {"initiated_by": {"email": "A@Example.COM"}},
        True,
    ),
    ({"initiated_by.email|startswith": "admin"}, {"initiated_by": {"email": "Admin1@x.io"}}, True),
    (
        {"initiated_by.email|startswith": "admin"},
        {"initiated_by": {"email": "x-admin@x.io"}},
        False,
    ),
    (
        {"error_message|contains": "INCORRECT"},
        {"error_message": "mschap: response is incorrect"},
        True,
    ),
    ({"error_message|contains": "a*c"}, {"error_message": "xxabbbcxx"}, True),
    ({"error_message|contains": ""}, {"error_message": "anything"}, True),
    # cased
    ({"application.name|cased": "Slack"}, {"application": {"name": "slack"}}, False),
    ({"application.name|cased": "Slack"}, {"application": {"name": "Slack"}}, True),
    ({"application.name|contains|cased": "Sla"}, {"application": {"name": "Slack"}}, True),
    # booleans: JSON false and the string "false", never 0 or null
    ({"success": False}, {"success": False}, True),
    ({"success": False}, {"success": "FALSE"}, True),
    ({"success": False}, {"success": True}, False),
    ({"success": False}, {"success": 0}, False),
    ({"success": False}, {"success": None}, False),
    ({"success": False}, {}, False),
    ({"success": "false"}, {"success": False}, True),  # a quoted "false" reads JSON false too
    # numbers compare by value, also against numeric strings
    ({"port": 443}, {"port": 443}, True),
    ({"port": 443}, {"port": 443.0}, True),
    ({"port": 443}, {"port": "443"}, True),
    ({"port": 443}, {"port": True}, False),
    ({"port": "443"}, {"port": 443}, True),
    # null: JSON null or a missing field
    ({"provider": None}, {"provider": None}, True),
    ({"provider": None}, {}, True),
    ({"provider": None}, {"provider": ""}, False),
    ({"provider": ""}, {"provider": ""}, True),
    ({"provider": ""}, {}, False),
    # exists
    ({"geoip|exists": True}, {"geoip": None}, True),
    ({"geoip|exists": True}, {}, False),
    ({"geoip|exists": False}, {}, True),
    ({"geoip.country_code|exists": False}, {"geoip": {"country_code": "US"}}, False),
    # lists of values are OR; a map is AND
    ({"event_type": ["a", "b"]}, {"event_type": "b"}, True),
    ({"event_type": ["a", "b"]}, {"event_type": "c"}, False),
    ({"event_type": "a", "success": True}, {"event_type": "a", "success": False}, False),
    ({"event_type": "a", "success": True}, {"event_type": "a", "success": True}, True),
    # |all: every value must match
    (
        {"useragent|contains|all": ["mozilla", "linux"]},
        {"useragent": "Mozilla/5.0 (X11; Linux)"},
        True,
    ),
    (
        {"useragent|contains|all": ["mozilla", "windows"]},
        {"useragent": "Mozilla/5.0 (X11; Linux)"},
        False,
    ),
    # list-valued fields match when any element matches
    ({"groups": "admins"}, {"groups": ["users", "Admins"]}, True),
    ({"groups": "admins"}, {"groups": ["users"]}, False),
    ({"groups|all": ["admins", "users"]}, {"groups": ["users", "admins"]}, True),
    ({"groups|all": ["admins", "ops"]}, {"groups": ["users", "admins"]}, False),
    (
        {"$.changes[*].field": "password"},
        {"changes": [{"field": "email"}, {"field": "password"}]},
        True,
    ),
    ({"$.changes[*].field": "password"}, {"changes": [{"field": "email"}]}, False),
    # `..` finds the field whether `changes` is a list or (as DI sometimes sends) an object
    ({"$.changes..field": "password"}, {"changes": {"field": "password"}}, True),
    # a mapping value never equals a string
    ({"initiated_by": "x"}, {"initiated_by": {"x": 1}}, False),
    # re: case-sensitive search unless (?i)
    ({"useragent|re": r"curl/\d+"}, {"useragent": "curl/8.1"}, True),
    ({"useragent|re": r"^curl"}, {"useragent": "CURL/8"}, False),
    ({"useragent|re": r"(?i)^curl"}, {"useragent": "CURL/8"}, True),
    ({"port|re": r"^44\d$"}, {"port": 443}, True),
    # cidr v4 and v6, including IPv4-mapped IPv6
    ({"client_ip|cidr": "10.0.0.0/8"}, {"client_ip": "10.20.30.40"}, True),
    ({"client_ip|cidr": "10.0.0.0/8"}, {"client_ip": "11.0.0.1"}, False),
    ({"client_ip|cidr": ["192.168.0.0/16", "10.0.0.0/8"]}, {"client_ip": "192.168.1.1"}, True),
    ({"client_ip|cidr": "2001:db8::/32"}, {"client_ip": "2001:DB8::1"}, True),
    ({"client_ip|cidr": "2001:db8::/32"}, {"client_ip": "2001:db9::1"}, False),
    ({"client_ip|cidr": "10.0.0.0/8"}, {"client_ip": "::ffff:10.1.2.3"}, True),
    ({"client_ip|cidr": "10.0.0.0/8"}, {"client_ip": "not-an-ip"}, False),
    ({"client_ip|cidr": "10.0.0.0/8"}, {"client_ip": None}, False),
    ({"client_ip|cidr": "10.0.0.5"}, {"client_ip": "10.0.0.5"}, True),  # a host is a /32
    # numeric comparisons
    ({"attempts|gt": 5}, {"attempts": 6}, True),
    ({"attempts|gt": 5}, {"attempts": 5}, False),
    ({"attempts|gte": 5}, {"attempts": 5}, True),
    ({"attempts|lt": 5}, {"attempts": "4.5"}, True),
    ({"attempts|lte": 5}, {"attempts": 5.0}, True),
    ({"attempts|lt": 5}, {"attempts": "many"}, False),
    ({"attempts|lt": 5}, {"attempts": False}, False),
    ({"attempts|gt": 5}, {}, False),
    # a list of maps is an OR of the maps
    (
        [{"event_type": "a", "success": False}, {"event_type": "b"}],
        {"event_type": "b", "success": True},
        True,
    ),
    (
        [{"event_type": "a", "success": False}, {"event_type": "b"}],
        {"event_type": "a", "success": True},
        False,
    ),
]


@pytest.mark.parametrize(("selection", "event", "expected"), CASES)
def test_selection_matching(selection, event, expected):
    assert matches(selection, event) is expected


# (selection, message fragment)
ERRORS = [
    (
        {"event_type|startwith": "x"},
        "unknown modifier 'startwith' in 'event_type|startwith' (did you mean 'startswith'?)",
    ),
    ({"client_ip|cidr": "10.0.0.0/33"}, "invalid network '10.0.0.0/33'"),
    ({"client_ip|cidr": "10.1.2.3/16"}, "(did you mean '10.1.0.0/16'?)"),
    ({"client_ip|cidr": 10}, "|cidr needs a network"),
    ({"useragent|re": "curl(["}, "invalid regular expression 'curl(['"),
    ({"attempts|gt": "five"}, "|gt needs a number"),
    ({"x|exists": "yes"}, "|exists needs true or false"),
    ({"x|contains|startswith": "a"}, "cannot be combined"),
    ({"x|contains|contains": "a"}, "repeated"),
    ({"x|all": "a"}, "|all needs a list"),
    ({"x": []}, "empty list"),
    ({"x": {"y": 1}}, "dotted path"),
    ({}, "empty selection"),
    ({"provider": [None, "okta"]}, "null cannot be part of a list of values"),
    ([{"a": 1}, ["nested"]], "a keyword must be text or a number"),
    (True, "must be a mapping"),
    ({"a..b": 1}, "empty part between dots"),
    ({"|cidr": "10.0.0.0/8"}, "does not apply to a keyword search"),
    ({"x|i": "a"}, "write field|re|i"),
]


@pytest.mark.parametrize(("selection", "fragment"), ERRORS, ids=[e[1][:30] for e in ERRORS])
def test_selection_errors(selection, fragment):
    with pytest.raises(SelectionError) as info:
        compile_selection("sel", selection)
    assert fragment in info.value.message


def test_error_path_points_at_the_bad_list_item():
    with pytest.raises(SelectionError) as info:
        compile_selection("sel", {"client_ip|cidr": ["10.0.0.0/8", "300.0.0.0/8"]})
    assert info.value.path == ("client_ip|cidr", 1)


def test_event_types_are_extracted_for_indexing():
    assert compile_selection("s", {"event_type": ["A", "b"], "x": 1}).event_types == {"a", "b"}
    assert compile_selection("s", {"event_type": "user_*"}).event_types is None
    assert compile_selection("s", {"event_type|contains": "user"}).event_types is None
    assert compile_selection("s", {"x": 1}).event_types is None
    both = compile_selection("s", [{"event_type": "a"}, {"event_type": "b"}])
    assert both.event_types == {"a", "b"}
    assert compile_selection("s", [{"event_type": "a"}, {"x": 1}]).event_types is None


def test_a_nested_deny_list_matches_any_spelling_every_time():
    """The verdict per value is remembered: asking again, or in another case, or after
    other values, gives the same answer as the first time."""
    denied = compile_selection("s", {"geoip.country_code": ["IR", "kp"]}).predicate
    countries = ["US", "ir", "IR", "Ir", "KP", "us", "kP", "FR", "ir", "US"]
    got = [denied({"geoip": {"country_code": c}}) for c in countries * 2]
    assert got == [c.lower() in ("ir", "kp") for c in countries * 2]
    assert denied({"geoip": {"country_code": ["FR", "IR"]}})  # a list: any element
    assert not denied({"geoip": {"country_code": None}})
    assert not denied({"geoip": "IR"})
    assert not denied({})
