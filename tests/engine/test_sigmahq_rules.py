"""Real SigmaHQ rules for identity and cloud audit sources load and run as written.

The rules are copied unchanged from SigmaHQ/sigma (tests/engine/fixtures/sigmahq/README.md
names each source path and the licence). SigmaHQ ships no regression events for these
log sources, so each rule meets a hand-made event in its source's shape that it must
match and a near miss it must not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import build_test_events

FIXTURES = Path(__file__).parent / "fixtures" / "sigmahq"

# file -> (an event the rule must match, a near miss it must not)
EVENTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "okta_password_in_alternateid_field.yml": (
        {"legacyEventType": "core.user_auth.login_failed", "actor": {"alternateId": "Hunter2!x"}},
        {
            "legacyEventType": "core.user_auth.login_failed",
            "actor": {"alternateId": "amy@example.com"},
        },
    ),
    "okta_user_account_locked_out.yml": (
        {"eventType": "user.account.lock", "displayMessage": "Max sign in attempts exceeded"},
        {"eventType": "user.account.lock", "displayMessage": "Max sign in attempts"},
    ),
    "okta_mfa_reset_or_deactivated.yml": (
        {"eventType": "user.mfa.factor.reset_all", "actor": {"alternateId": "amy@example.com"}},
        {"eventType": "user.mfa.factor.activate", "actor": {"alternateId": "amy@example.com"}},
    ),
    "onelogin_user_account_locked.yml": (
        {"event_type_id": 553, "user_name": "amy"},
        {"event_type_id": 5, "user_name": "amy"},
    ),
    "onelogin_assumed_another_user.yml": (
        {"event_type_id": 3, "actor_user_name": "admin", "user_name": "amy"},
        {"event_type_id": 30, "actor_user_name": "admin", "user_name": "amy"},
    ),
    "azure_ad_users_added_to_device_admin_roles.yml": (
        {
            "Category": "RoleManagement",
            "OperationName": "Add eligible member to role in PIM completed",
            "TargetResources": "[{'id': '62e90394-69f5-4237-9190-012177145e10', "
            "'modifiedProperties': [{'newValue': '9f06204d-73c1-4d4c-880a-6edb90606fd8'}]}]",
        },
        {
            "Category": "RoleManagement",
            "OperationName": "Remove member from role",
            "TargetResources": "9f06204d-73c1-4d4c-880a-6edb90606fd8",
        },
    ),
    "azure_ad_sign_ins_from_unknown_devices.yml": (
        {
            "AuthenticationRequirement": "singleFactorAuthentication",
            "ResultType": 0,
            "NetworkLocationDetails": "[]",
            "DeviceDetail": {"deviceId": "", "operatingSystem": "Windows10"},
        },
        {
            "AuthenticationRequirement": "multiFactorAuthentication",
            "ResultType": 0,
            "NetworkLocationDetails": "[]",
            "DeviceDetail": {"deviceId": ""},
        },
    ),
    "microsoft365_disabling_mfa.yml": (
        {"Operation": "Disable Strong Authentication.", "Workload": "AzureActiveDirectory"},
        {"Operation": "Enable Strong Authentication.", "Workload": "AzureActiveDirectory"},
    ),
    "microsoft365_pst_export_alert_using_new_compliancesearchaction.yml": (
        {
            "eventSource": "SecurityComplianceCenter",
            "Payload": "New-ComplianceSearchAction -SearchName s1 -Export -Format FxStream "
            "-ExchangeArchiveFormat PerUserPst",
        },
        {"eventSource": "SecurityComplianceCenter", "Payload": "New-ComplianceSearch -Name s1"},
    ),
    "gcp_gworkspace_mfa_disabled.yml": (
        {
            "eventService": "admin.googleapis.com",
            "eventName": "ENFORCE_STRONG_AUTHENTICATION",
            "new_value": "false",
        },
        {
            "eventService": "admin.googleapis.com",
            "eventName": "ENFORCE_STRONG_AUTHENTICATION",
            "new_value": "true",
        },
    ),
    "github_new_org_member.yml": (
        {"action": "org.add_member", "actor": "octocat", "org": "acme"},
        {"action": "org.remove_member", "actor": "octocat", "org": "acme"},
    ),
    "aws_update_login_profile.yml": (  # |fieldref: someone else's console password
        {
            "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateLoginProfile",
            "userIdentity": {"arn": "arn:aws:iam::111122223333:user/mallory"},
            "requestParameters": {"userName": "alice"},
        },
        {
            "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateLoginProfile",
            "userIdentity": {"arn": "alice"},
            "requestParameters": {"userName": "alice"},
        },
    ),
    "aws_console_getsignintoken.yml": (
        {
            "eventSource": "signin.amazonaws.com",
            "eventName": "GetSigninToken",
            "userAgent": "python-requests/2.31",
        },
        {
            "eventSource": "signin.amazonaws.com",
            "eventName": "GetSigninToken",
            "userAgent": "Jersey/${project.version}",
        },
    ),
}


def test_every_fixture_rule_has_events():
    assert sorted(p.name for p in FIXTURES.glob("*.yml")) == sorted(EVENTS)


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_sigmahq_rule_loads_and_matches(name):
    (rule,) = load_rules([FIXTURES / name])
    hit, miss = EVENTS[name]
    assert rule.condition(hit) is True
    assert rule.condition(miss) is False
    # Sigma's own keys are kept for convert: a UUID id, level, status, logsource
    meta = rule.meta
    assert meta.id is not None
    assert rule.id == meta.id.lower()
    assert meta.level is not None
    assert meta.status is not None
    assert rule.logsource.product is not None


def test_the_pack_of_fixtures_loads_as_one_directory():
    rules = load_rules([FIXTURES])
    assert len(rules) == len(EVENTS)
    assert {r.severity for r in rules} <= {"info", "low", "medium", "high", "critical"}


def _events(raws: list[dict[str, Any]], every: int = 30) -> list[Any]:
    """The events ``every`` seconds apart."""
    return build_test_events([{"event": r, "offset": f"{i * every}s"} for i, r in enumerate(raws)])


def test_spec_example_failed_logins_then_success_fires_once():
    """The specification's chained example: event_count (10 failures) inside a
    temporal_ordered with a success, per User, within 10 minutes."""
    rules = load_rules([FIXTURES / "spec" / "mr_failed_logins_then_success.yml"])
    by_id = {r.id: r for r in rules}
    outer = by_id["b180ead8-d58f-40b2-ae54-c8940995b9b6"]
    assert outer.enabled
    # Referenced rules do not alert on their own (generate defaults to false)
    assert not by_id["multiple_failed_login"].enabled
    assert not by_id["failed_login"].enabled
    assert not by_id["successful_login"].enabled

    failures = [{"EventID": 4625, "User": "amy"}] * 10
    attack = [*failures, {"EventID": 4624, "User": "amy"}]
    alerts = Engine(rules).process_many(_events(attack))
    assert [a.rule for a in alerts] == [outer.id]
    assert alerts[0].severity == "high"
    assert alerts[0].group == {"User": "amy"}
    assert alerts[0].count == 11

    nine = [*failures[:9], {"EventID": 4624, "User": "amy"}]
    assert Engine(rules).process_many(_events(nine)) == []
    other_user = [*failures, {"EventID": 4624, "User": "bob"}]
    assert Engine(rules).process_many(_events(other_user)) == []
    too_slow = [*failures, {"EventID": 4624, "User": "amy"}]
    assert Engine(rules).process_many(_events(too_slow, every=61)) == []


def test_spec_example_aliases_group_across_fields():
    rules = load_rules([FIXTURES / "spec" / "mr_aliases.yml"])
    (outer,) = [r for r in rules if r.enabled]
    error = {
        "http": {"response": {"status_code": 500}},
        "source": {"ip": "198.51.100.7"},
        "destination": {"ip": "10.0.0.5"},
    }
    conn = {
        "event": {"category": "network", "type": "connection", "outcome": "success"},
        "source": {"ip": "10.0.0.5"},
        "destination": {"ip": "198.51.100.7"},
    }
    alerts = Engine(rules).process_many(_events([error, conn], every=2))
    assert [a.rule for a in alerts] == [outer.id]
    assert alerts[0].group == {"internal_ip": "10.0.0.5", "remote_ip": "198.51.100.7"}

    elsewhere = {**conn, "source": {"ip": "10.0.0.6"}}
    assert Engine(rules).process_many(_events([error, elsewhere], every=2)) == []
