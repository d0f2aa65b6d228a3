"""The fixed values of the DI API: its path, services, limits and status messages.

Shared by the query parsing, the event index, the endpoints and the HTTP server, and
kept together so that what the real API documents (reference section 6) reads as one list.
"""

from __future__ import annotations

API_PREFIX = "/insights/directory/v1"
#: The key the simulator accepts unless told otherwise (40 chars of [A-Za-z0-9_], the
#: shape JumpCloud's own tooling validates).
DEMO_API_KEY = "jcdemo_simulator_key_0123456789abcdefghi"

#: The ``service`` enum of the 2025-11 API spec.
SERVICES: tuple[str, ...] = (
    "alerts",
    "all",
    "directory",
    "ldap",
    "mdm",
    "notifications",
    "object_storage",
    "password_manager",
    "radius",
    "reports",
    "saas_app_management",
    "software",
    "sso",
    "systems",
    "access_management",
    "asset_management",
)

#: Fields every DI event may carry; ``fields`` entries are "known" if their first segment
#: is one of these or appears in a served event.
BASE_FIELDS = frozenset(
    {
        "id", "timestamp", "event_type", "service", "organization", "@version", "provider",
        "initiated_by", "resource", "changes", "client_ip", "geoip", "useragent", "user_agent",
        "success", "mfa", "mfa_meta", "auth_method", "error_message", "auth_context",
        "correlation", "message_chain", "association", "application", "system",
        "target_resource", "username", "src_ip", "src_geoip", "system_timestamp",
    }
)  # fmt: skip
NOT_SEARCHABLE = frozenset({"changes", "useragent", "system_timestamp"})

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
RETENTION_DAYS = 90.0
MAX_BODY = 1 << 20
MAX_RECORDED = 10_000  # ``requests`` keeps the newest records (a long ``simulate`` run)

AUTH_MESSAGES = {
    401: "Unauthorized (Invalid API Key)",
    402: "Directory Insights is not enabled for your organization",
    403: "Forbidden: admin API key required",
}
STATUS_MESSAGES = {
    429: "Too Many Requests",
    500: "Technical difficulties processing your request",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
