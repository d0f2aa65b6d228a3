"""Conformance with the Sigma 2.1 specification: modifiers, values, conditions.

Each case is a Sigma detection, an event and the verdict the specification gives
(sigma-rules-specification.md, sigma-appendix-modifiers.md). Every case goes through the
front door (``compile_rule_document``: the position-keeping loader and the compiled
predicates). Events are the real admin login captured by Sekoia
(/work/shared/reference/real-events/sekoia-intake-formats.jsonl, line 1), changed only
where a case needs a value the capture lacks.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting.engine.loader import compile_rule_document
from alerting.engine.matchers import SelectionContext
from alerting.errors import ValidationFailed
from alerting.yamlfile import load_yaml

REAL = Path("/work/shared/reference/real-events/sekoia-intake-formats.jsonl")
_FALLBACK = {
    "initiated_by": {"id": "61e536ebdbbe784cb2e55fb5", "type": "admin", "email": "john.doe@sekoia.io"},
    "geoip": {"country_code": "FR", "timezone": "Europe/Paris", "latitude": 48.8323, "continent_code": "EU", "region_name": "Paris", "longitude": 2.4075, "region_code": "75"},
    "useragent": {"os": "Mac OS X", "os_full": "Mac OS X 10.15.7", "major": "114", "name": "Chrome", "device": "Mac"},
    "mfa": True,
    "event_type": "admin_login_attempt",
    "provider": None,
    "service": "directory",
    "success": True,
    "organization": "641b3db57090821c0b2f8183",
    "@version": "1",
    "client_ip": "1.2.3.4",
    "id": "648c6c758c2ac07fa1fdee94",
    "timestamp": "2023-06-16T14:06:45.921Z",
}  # fmt: skip


def _base() -> dict[str, Any]:
    if REAL.is_file():
        return json.loads(REAL.read_text(encoding="utf-8").splitlines()[0])
    return copy.deepcopy(_FALLBACK)  # the same event, for a checkout without the reference


BASE = _base()
PLACEHOLDERS = SelectionContext({"office_ips": ["1.2.3.4", "5.6.7.8"], "admins": ["john.*"]})


def event(**changes: Any) -> dict[str, Any]:
    """The captured event with ``a__b=value`` set at ``a.b`` (``None`` values kept)."""
    out = copy.deepcopy(BASE)
    for key, value in changes.items():
        parts = key.split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is _DROP:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return out


_DROP = object()


def rule_text(detection: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "title": "conformance case",
            "id": "929a690e-bef0-4204-a928-ef5e620d6fcc",
            "name": "case",
            "status": "test",
            "level": "low",
            "logsource": {"product": "jumpcloud", "service": "directory_insights"},
            "detection": detection,
        },
        sort_keys=False,
    )


def verdict(detection: dict[str, Any], raw: dict[str, Any]) -> bool:
    doc = load_yaml("case.yml", text=rule_text(detection))
    rule, _ = compile_rule_document(Path("case.yml"), doc, PLACEHOLDERS)
    return rule.condition(raw)


def sel(**entries: Any) -> dict[str, Any]:
    """A one-selection detection; ``a__b|mod`` keys are written ``a.b|mod``."""
    return {
        "selection": {k.replace("__", "."): v for k, v in entries.items()},
        "condition": "selection",
    }


def b64(text: str, enc: str = "utf-8") -> str:
    return base64.b64encode(text.encode(enc)).decode()


# (case id, detection, event, expected verdict)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # -- values: strings, wildcards, escaping
    ("string equality ignores case", sel(event_type="ADMIN_Login_Attempt"), event(), True),
    ("string equality is whole-value", sel(event_type="admin_login"), event(), False),
    ("* matches any run", sel(useragent__name="Ch*e"), event(), True),
    ("* matches the empty run", sel(useragent__name="Chrome*"), event(), True),
    ("? matches one character", sel(useragent__name="Chrom?"), event(), True),
    ("? needs exactly one character", sel(useragent__name="Chro?"), event(), False),
    ("\\* is a literal star", sel(service="dir\\*"), event(service="dir*"), True),
    ("\\* does not match other text", sel(service="dir\\*"), event(service="directory"), False),
    ("\\? is a literal question mark", sel(service="dir\\?"), event(service="dirx"), False),
    (
        "backslash before a letter is literal",
        sel(service="C:\\Windows"),
        event(service="C:\\Windows"),
        True,
    ),
    ("\\\\ is one backslash", sel(service="a\\\\*"), event(service="a\\xyz"), True),
    ("empty string matches empty value", sel(service=""), event(service=""), True),
    ("empty string does not match a missing field", sel(service=""), event(service=_DROP), False),
    ("empty string does not match text", sel(service=""), event(), False),
    # -- values: numbers, booleans, null
    ("number matches a numeric string", sel(useragent__major=114), event(), True),
    ("number matches a number", sel(geoip__latitude=48.8323), event(), True),
    ("number mismatch", sel(useragent__major=115), event(), False),
    ("numeric string matches a number", sel(mfa_count="3"), event(mfa_count=3), True),
    ("boolean true", sel(mfa=True), event(), True),
    ("boolean false mismatch", sel(mfa=False), event(), False),
    ("null matches a JSON null", sel(provider=None), event(), True),
    ("null matches a missing field", sel(provider=None), event(provider=_DROP), True),
    ("null does not match a value", sel(provider=None), event(provider="okta"), False),
    ("null does not match an empty string", sel(provider=None), event(provider=""), False),
    ("missing field matches nothing else", sel(nonexistent="x"), event(), False),
    # -- lists and maps
    (
        "a value list is OR",
        sel(event_type=["user_login_attempt", "admin_login_attempt"]),
        event(),
        True,
    ),
    (
        "a value list with no match",
        sel(event_type=["user_login_attempt", "sso_auth"]),
        event(),
        False,
    ),
    ("a map is AND (both hold)", sel(event_type="admin_login_attempt", mfa=True), event(), True),
    ("a map is AND (one fails)", sel(event_type="admin_login_attempt", mfa=False), event(), False),
    (
        "a list of maps is OR",
        {"s": [{"mfa": False}, {"geoip.country_code": "FR"}], "condition": "s"},
        event(),
        True,
    ),
    ("a list field matches any element", sel(tags="b"), event(tags=["a", "b"]), True),
    # -- generic modifiers
    (
        "contains (case-insensitive)",
        {"s": {"useragent.os_full|contains": "OS X 10"}, "condition": "s"},
        event(),
        True,
    ),
    (
        "startswith",
        {"s": {"initiated_by.email|startswith": "JOHN."}, "condition": "s"},
        event(),
        True,
    ),
    (
        "startswith mismatch",
        {"s": {"initiated_by.email|startswith": "doe"}, "condition": "s"},
        event(),
        False,
    ),
    (
        "endswith",
        {"s": {"initiated_by.email|endswith": "@sekoia.io"}, "condition": "s"},
        event(),
        True,
    ),
    (
        "contains keeps inner wildcards",
        {"s": {"useragent.os_full|contains": "X*7"}, "condition": "s"},
        event(),
        True,
    ),
    (
        "contains|all needs every value",
        {"s": {"useragent.os_full|contains|all": ["mac", "10.15"]}, "condition": "s"},
        event(),
        True,
    ),
    (
        "contains|all fails on one",
        {"s": {"useragent.os_full|contains|all": ["mac", "windows"]}, "condition": "s"},
        event(),
        False,
    ),
    (
        "cased is case-sensitive",
        {"s": {"useragent.name|cased": "chrome"}, "condition": "s"},
        event(),
        False,
    ),
    ("cased exact", {"s": {"useragent.name|cased": "Chrome"}, "condition": "s"}, event(), True),
    (
        "contains|cased",
        {"s": {"useragent.os_full|contains|cased": "mac"}, "condition": "s"},
        event(),
        False,
    ),
    ("exists true", {"s": {"geoip|exists": True}, "condition": "s"}, event(), True),
    (
        "exists true on a null value",
        {"s": {"provider|exists": True}, "condition": "s"},
        event(),
        True,
    ),
    (
        "exists false on a missing field",
        {"s": {"auth_method|exists": False}, "condition": "s"},
        event(),
        True,
    ),
    (
        "exists false on a present field",
        {"s": {"mfa|exists": False}, "condition": "s"},
        event(),
        False,
    ),
    (
        "neq differs",
        {"s": {"event_type|neq": "user_login_attempt"}, "condition": "s"},
        event(),
        True,
    ),
    (
        "neq equal",
        {"s": {"event_type|neq": "ADMIN_LOGIN_ATTEMPT"}, "condition": "s"},
        event(),
        False,
    ),
    (
        "neq list: different from every value",
        {"s": {"event_type|neq": ["a", "b"]}, "condition": "s"},
        event(),
        True,
    ),
    (
        "neq list: equal to one",
        {"s": {"event_type|neq": ["a", "admin_login_attempt"]}, "condition": "s"},
        event(),
        False,
    ),
    ("neq on a number", {"s": {"useragent.major|neq": 114}, "condition": "s"}, event(), False),
    # -- regular expressions
    ("re searches (unanchored)", {"s": {"client_ip|re": "2\\.3"}, "condition": "s"}, event(), True),
    ("re anchors", {"s": {"client_ip|re": "^2\\.3"}, "condition": "s"}, event(), False),
    (
        "re is case-sensitive",
        {"s": {"useragent.name|re": "^chrome$"}, "condition": "s"},
        event(),
        False,
    ),
    (
        "re|i ignores case",
        {"s": {"useragent.name|re|i": "^chrome$"}, "condition": "s"},
        event(),
        True,
    ),
    (
        "re without m: ^ is the text start",
        {"s": {"error_message|re": "^denied$"}, "condition": "s"},
        event(error_message="auth\ndenied"),
        False,
    ),
    (
        "re|m: ^ and $ per line",
        {"s": {"error_message|re|m": "^denied$"}, "condition": "s"},
        event(error_message="auth\ndenied"),
        True,
    ),
    (
        "re without s: . stops at newline",
        {"s": {"error_message|re": "auth.denied"}, "condition": "s"},
        event(error_message="auth\ndenied"),
        False,
    ),
    (
        "re|s: . matches newline",
        {"s": {"error_message|re|s": "auth.denied"}, "condition": "s"},
        event(error_message="auth\ndenied"),
        True,
    ),
    (
        "re alternation and classes",
        {"s": {"useragent.os_full|re": "(Windows|Mac) OS [A-Z] [0-9]+"}, "condition": "s"},
        event(),
        True,
    ),
    # -- numeric comparisons
    ("gt", {"s": {"geoip.latitude|gt": 48}, "condition": "s"}, event(), True),
    ("gt is strict", {"s": {"geoip.latitude|gt": 48.8323}, "condition": "s"}, event(), False),
    ("gte at the bound", {"s": {"geoip.latitude|gte": 48.8323}, "condition": "s"}, event(), True),
    ("lt", {"s": {"geoip.longitude|lt": 2.5}, "condition": "s"}, event(), True),
    ("lte below", {"s": {"geoip.longitude|lte": 2}, "condition": "s"}, event(), False),
    ("gt on a numeric string", {"s": {"useragent.major|gt": 100}, "condition": "s"}, event(), True),
    ("gt on text never holds", {"s": {"useragent.name|gt": 1}, "condition": "s"}, event(), False),
    # -- time parts (UTC, as the spec: no zone conversion)
    ("minute", {"s": {"timestamp|minute": 6}, "condition": "s"}, event(), True),
    ("hour", {"s": {"timestamp|hour": 14}, "condition": "s"}, event(), True),
    ("hour mismatch", {"s": {"timestamp|hour": 15}, "condition": "s"}, event(), False),
    ("day", {"s": {"timestamp|day": 16}, "condition": "s"}, event(), True),
    ("week (ISO)", {"s": {"timestamp|week": 24}, "condition": "s"}, event(), True),
    ("month", {"s": {"timestamp|month": 6}, "condition": "s"}, event(), True),
    ("year", {"s": {"timestamp|year": 2023}, "condition": "s"}, event(), True),
    ("hour|gte", {"s": {"timestamp|hour|gte": 18}, "condition": "s"}, event(), False),
    ("hour|lt", {"s": {"timestamp|hour|lt": 15}, "condition": "s"}, event(), True),
    ("hour list is OR", {"s": {"timestamp|hour": [1, 14]}, "condition": "s"}, event(), True),
    ("time part of a non-date", {"s": {"service|hour": 1}, "condition": "s"}, event(), False),
    # -- cidr
    ("cidr v4 inside", {"s": {"client_ip|cidr": "1.2.0.0/16"}, "condition": "s"}, event(), True),
    ("cidr v4 outside", {"s": {"client_ip|cidr": "10.0.0.0/8"}, "condition": "s"}, event(), False),
    (
        "cidr list is OR",
        {"s": {"client_ip|cidr": ["10.0.0.0/8", "1.0.0.0/8"]}, "condition": "s"},
        event(),
        True,
    ),
    (
        "cidr v6",
        {"s": {"client_ip|cidr": "2001:db8::/32"}, "condition": "s"},
        event(client_ip="2001:db8::1"),
        True,
    ),
    (
        "cidr on a non-address",
        {"s": {"client_ip|cidr": "0.0.0.0/0"}, "condition": "s"},
        event(client_ip="n/a"),
        False,
    ),
    # -- windash
    (
        "windash: - matches /",
        {"s": {"error_message|windash|contains": " -force"}, "condition": "s"},
        event(error_message="run /force now"),
        True,
    ),
    (
        "windash: - matches en dash",
        {"s": {"error_message|windash|contains": " -force"}, "condition": "s"},
        event(error_message="run \u2013force"),
        True,
    ),
    (
        "windash: - matches em dash",
        {"s": {"error_message|windash|contains": " -force"}, "condition": "s"},
        event(error_message="run \u2014force"),
        True,
    ),
    (
        "windash: - matches horizontal bar",
        {"s": {"error_message|windash|contains": " -force"}, "condition": "s"},
        event(error_message="run \u2015force"),
        True,
    ),
    (
        "windash: / matches -",
        {"s": {"error_message|windash|contains": " /force"}, "condition": "s"},
        event(error_message="run -force"),
        True,
    ),
    (
        "without windash / is not -",
        {"s": {"error_message|contains": " /force"}, "condition": "s"},
        event(error_message="run -force"),
        False,
    ),
    # -- encodings
    (
        "base64",
        {"s": {"error_message|base64": "admin"}, "condition": "s"},
        event(error_message=b64("admin")),
        True,
    ),
    (
        "base64 is exact",
        {"s": {"error_message|base64": "admin"}, "condition": "s"},
        event(error_message=b64("admins")),
        False,
    ),
    (
        "base64|contains",
        {"s": {"error_message|base64|contains": "abc"}, "condition": "s"},
        event(error_message="x" + b64("abc") + "y"),
        True,
    ),
    (
        "base64offset|contains at offset 0",
        {"s": {"error_message|base64offset|contains": "secret"}, "condition": "s"},
        event(error_message=b64("secret token")),
        True,
    ),
    (
        "base64offset|contains at offset 1",
        {"s": {"error_message|base64offset|contains": "secret"}, "condition": "s"},
        event(error_message=b64("a secret token")),
        True,
    ),
    (
        "base64offset|contains at offset 2",
        {"s": {"error_message|base64offset|contains": "secret"}, "condition": "s"},
        event(error_message=b64("ab secret token")),
        True,
    ),
    (
        "base64offset|contains absent",
        {"s": {"error_message|base64offset|contains": "secret"}, "condition": "s"},
        event(error_message=b64("no such token")),
        False,
    ),
    (
        "wide|base64offset|contains",
        {"s": {"error_message|wide|base64offset|contains": "cmd"}, "condition": "s"},
        event(error_message=b64("run cmd /c", "utf-16-le")),
        True,
    ),
    (
        "utf16le|base64",
        {"s": {"error_message|utf16le|base64": "cmd"}, "condition": "s"},
        event(error_message=b64("cmd", "utf-16-le")),
        True,
    ),
    (
        "utf16be|base64",
        {"s": {"error_message|utf16be|base64": "cmd"}, "condition": "s"},
        event(error_message=b64("cmd", "utf-16-be")),
        True,
    ),
    (
        "utf16 (BOM)|base64",
        {"s": {"error_message|utf16|base64": "cmd"}, "condition": "s"},
        event(error_message=base64.b64encode(b"\xff\xfe" + "cmd".encode("utf-16-le")).decode()),
        True,
    ),
    (
        "utf16le is not utf8",
        {"s": {"error_message|utf16le|base64": "cmd"}, "condition": "s"},
        event(error_message=b64("cmd")),
        False,
    ),
    (
        "base64 of an escaped star encodes the star",
        {"s": {"error_message|base64": "a\\*b"}, "condition": "s"},
        event(error_message=b64("a*b")),
        True,
    ),
    (
        "utf16le text keeps a star literal",
        {"s": {"error_message|utf16le|contains": "\\*"}, "condition": "s"},
        event(error_message="x*\x00y"),
        True,
    ),
    # -- fieldref
    (
        "fieldref equal",
        {"s": {"username|fieldref": "outer.username"}, "condition": "s"},
        event(username="john.doe", outer={"username": "JOHN.DOE"}),
        True,
    ),
    (
        "fieldref different",
        {"s": {"username|fieldref": "outer.username"}, "condition": "s"},
        event(username="john.doe", outer={"username": "amy"}),
        False,
    ),
    (
        "fieldref|neq",
        {"s": {"username|fieldref|neq": "outer.username"}, "condition": "s"},
        event(username="john.doe", outer={"username": "amy"}),
        True,
    ),
    (
        "fieldref missing field",
        {"s": {"username|fieldref": "outer.username"}, "condition": "s"},
        event(username="john.doe"),
        False,
    ),
    (
        "fieldref|startswith",
        {"s": {"initiated_by.email|fieldref|startswith": "username"}, "condition": "s"},
        event(username="john.doe"),
        True,
    ),
    # -- expand (placeholders)
    (
        "expand: a placeholder is its value list",
        {"s": {"client_ip|expand": "%office_ips%"}, "condition": "s"},
        event(),
        True,
    ),
    (
        "expand: no value matches",
        {"s": {"client_ip|expand": "%office_ips%"}, "condition": "s"},
        event(client_ip="9.9.9.9"),
        False,
    ),
    (
        "expand: wildcards in values",
        {"s": {"initiated_by.email|expand": "%admins%"}, "condition": "s"},
        event(),
        True,
    ),
    (
        "without expand %x% is literal",
        {"s": {"client_ip": "%office_ips%"}, "condition": "s"},
        event(client_ip="%office_ips%"),
        True,
    ),
    (
        "expand: \\% is a plain percent",
        {"s": {"service|expand": "100\\%"}, "condition": "s"},
        event(service="100%"),
        True,
    ),
    # -- keywords (full text over the event's values)
    (
        "keyword list is OR",
        {"keywords": ["Firefox", "Chrome"], "condition": "keywords"},
        event(),
        True,
    ),
    (
        "keyword ignores case and matches inside",
        {"keywords": ["sekoia.IO"], "condition": "keywords"},
        event(),
        True,
    ),
    ("keyword absent", {"keywords": ["Firefox"], "condition": "keywords"}, event(), False),
    (
        "keyword with a wildcard",
        {"keywords": ["Mac*10.15"], "condition": "keywords"},
        event(),
        True,
    ),
    ("keyword over a number", {"keywords": [48.8323], "condition": "keywords"}, event(), True),
    (
        "keywords '|all' needs every one",
        {"keywords": {"|all": ["Chrome", "Paris"]}, "condition": "keywords"},
        event(),
        True,
    ),
    (
        "keywords '|all' fails on one",
        {"keywords": {"|all": ["Chrome", "Tokyo"]}, "condition": "keywords"},
        event(),
        False,
    ),
    (
        "keywords and a selection",
        {"keywords": ["Chrome"], "s": {"mfa": True}, "condition": "keywords and s"},
        event(),
        True,
    ),
    # -- conditions
    (
        "and not",
        {"a": {"mfa": True}, "b": {"success": False}, "condition": "a and not b"},
        event(),
        True,
    ),
    (
        "not binds tighter than and",
        {"a": {"mfa": True}, "b": {"success": True}, "condition": "not b and a"},
        event(),
        False,
    ),
    (
        "and binds tighter than or",
        {
            "a": {"mfa": False},
            "b": {"success": True},
            "c": {"service": "x"},
            "condition": "a and b or c",
        },
        event(),
        False,
    ),
    (
        "or of and",
        {
            "a": {"mfa": False},
            "b": {"success": True},
            "c": {"service": "directory"},
            "condition": "a and b or c",
        },
        event(),
        True,
    ),
    (
        "parentheses",
        {
            "a": {"mfa": False},
            "b": {"success": True},
            "c": {"service": "directory"},
            "condition": "a and (b or c)",
        },
        event(),
        False,
    ),
    (
        "1 of pattern",
        {"sel_a": {"mfa": False}, "sel_b": {"mfa": True}, "condition": "1 of sel_*"},
        event(),
        True,
    ),
    (
        "all of pattern",
        {"sel_a": {"mfa": False}, "sel_b": {"mfa": True}, "condition": "all of sel_*"},
        event(),
        False,
    ),
    (
        "1 of them",
        {"a": {"mfa": False}, "b": {"mfa": True}, "condition": "1 of them"},
        event(),
        True,
    ),
    (
        "all of them skips _names",
        {"a": {"mfa": True}, "_b": {"mfa": False}, "condition": "all of them"},
        event(),
        True,
    ),
    (
        "1 of pattern and not 1 of filter",
        {
            "sel_a": {"mfa": True},
            "filter_x": {"service": "directory"},
            "condition": "1 of sel_* and not 1 of filter_*",
        },
        event(),
        False,
    ),
    (
        "condition list is OR",
        {"a": {"mfa": False}, "b": {"mfa": True}, "condition": ["a", "b"]},
        event(),
        True,
    ),
    (
        "keywords are case-insensitive in the condition",
        {"a": {"mfa": True}, "b": {"mfa": False}, "condition": "a AND NOT b"},
        event(),
        True,
    ),
]


@pytest.mark.parametrize(
    ("detection", "raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_verdict(detection, raw, expected):
    assert verdict(detection, raw) is expected


# (case id, detection, fragment of the located error the spec's refusal becomes)
REFUSED = [
    ("null inside a value list", sel(provider=[None, "okta"]), "null cannot be part of a list"),
    (
        "all on a single value",
        {"s": {"a|contains|all": "x"}, "condition": "s"},
        "|all needs a list",
    ),
    ("re flag without re", {"s": {"a|i": "x"}, "condition": "s"}, "write field|re|i"),
    (
        "unknown placeholder",
        {"s": {"a|expand": "%nope%"}, "condition": "s"},
        "unknown placeholder %nope%",
    ),
    (
        "wildcards cannot be base64-encoded",
        {"s": {"a|base64": "a*"}, "condition": "s"},
        "wildcards cannot be encoded",
    ),
    (
        "a time part takes a whole number",
        {"s": {"timestamp|hour": "14"}, "condition": "s"},
        "|hour needs a whole number",
    ),
    (
        "cidr with text",
        {"s": {"client_ip|cidr|contains": "10.0.0.0/8"}, "condition": "s"},
        "cannot be combined",
    ),
    (
        "Sigma 1 timeframe",
        {"s": {"a": 1}, "timeframe": "5m", "condition": "s"},
        "write a correlation rule",
    ),
    (
        "Sigma 1 pipe aggregation",
        {"s": {"a": 1}, "condition": "s | count() > 5"},
        "correlation rule",
    ),
    ("unknown selection", {"s": {"a": 1}, "condition": "t"}, "unknown selection 't'"),
]


@pytest.mark.parametrize(
    ("detection", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_with_a_located_error(detection, fragment):
    with pytest.raises(ValidationFailed) as info:
        verdict(detection, event())
    messages = [str(p) for p in info.value.problems]
    assert any(fragment in m for m in messages), messages
    assert all(m.startswith("case.yml:") and m.split(":")[1].isdigit() for m in messages)


def test_conformance_table_is_the_size_the_docs_quote():
    """docs/sigma.md quotes the case count; keep them in step."""
    assert len(CASES) + len(REFUSED) == 142
