"""Render alerts through the Jinja templates, with per-rule overrides and a safe fallback.

Lookup order for a template ``name``: ``templates/rules/<rule-id>/<name>``, then
``templates/<name>``. Each target has its own environment so escaping is automatic where
it matters: Slack (``tojson`` mrkdwn-escapes strings, bare ``{{ }}`` output too), HTML
e-mail (autoescape), console (control characters shown as text). A template that fails
at render time never loses the alert: the caller gets a plain built-in message and the
log names the template file and line.

Template context: ``alert`` (the first alert: its JSON fields plus ``group_text``,
``source_ips``, ``countries``, ``places`` (each IP with its own country), ``users``,
``event_types``, ``events_text`` ("1 event"), ``samples`` (each sample event as
``key: value`` lines), ``changes`` (``field: old → new``), ``next_steps`` (``{text,
url, label}``: runbook, references, JumpCloud console links), ``org_text``, ``emoji``,
``color``), ``alerts`` (all alerts of a grouped burst, at most 20), ``count``,
``grouped``, ``more``, ``alert_json`` (the exact alert JSON contract), ``alerts_json``
(every alert's), and ``incident`` (None, or for an incident message: ``id``,
``entity_kind``, ``entity``, ``severity``, ``rules`` (every rule of the incident so far,
highest severity first, each with ``rule``, ``title``, ``severity``, ``alerts``, ``state``
new/sent/held), ``rule_ids``, ``follow_up``, ``held``) and ``silence_commands`` (the
exact ``alerting silence add ...`` lines for the message's rule and groups; each alert
also has ``silence_command``). Filters: ``slack(limit)``, ``slack_code``,
``slack_link(text)`` (a Slack link from a checked URL),
``slack_steps(heading)`` (the ``next_steps`` as Slack lines), ``tojson``,
``json_text``, ``cap(limit)``, ``truncate_middle(limit)``, ``one_line(limit)``,
``plural(noun)``, ``header`` (one e-mail header line), ``term`` (terminal-safe).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import FileSystemLoader, Template, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from alerting import jsonutil
from alerting.alert import Alert
from alerting.errors import AlertingError, Location, Problem
from alerting.jinja_env import make_environment
from alerting.notify import escape
from alerting.notify.details import (
    DEFAULT_CONSOLE_URL,
    change_lines,
    is_url,
    next_steps,
    places,
    plural,
    sample_lines,
)
from alerting.notify.incidents import IncidentView, RuleLine
from alerting.notify.silences import silence_command, silence_commands
from alerting.yamlfile import suggest

log = logging.getLogger(__name__)

SLACK = "slack.json.j2"
EMAIL_SUBJECT = "email_subject.txt.j2"
EMAIL_TEXT = "email.txt.j2"
EMAIL_HTML = "email.html.j2"
WEBHOOK = "webhook.json.j2"
CONSOLE = "console.txt.j2"
DEFAULT_TEMPLATES = (SLACK, EMAIL_SUBJECT, EMAIL_TEXT, EMAIL_HTML, WEBHOOK, CONSOLE)

SEVERITY_EMOJI = {
    "info": ":information_source:",
    "low": ":large_blue_circle:",
    "medium": ":large_yellow_circle:",
    "high": ":red_circle:",
    "critical": ":rotating_light:",
}
SEVERITY_COLOR = {
    "info": "#439FE0",
    "low": "#2EB67D",
    "medium": "#ECB22E",
    "high": "#E01E5A",
    "critical": "#8B0000",
}
MAX_LISTED_ALERTS = 20  # a grouped message lists this many, then "+N more"
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Tried in this order when a configured template name has no ``.j2`` (``template: siem``).
_EXTENSIONS = (".json.j2", ".txt.j2", ".html.j2", ".j2")


class TemplateError(AlertingError):
    """A template failed to compile or render; ``location`` is its file and line."""

    def __init__(self, location: Location, message: str) -> None:
        self.location = location
        self.reason = message
        super().__init__(f"{location}: {message}")


# ---------------------------------------------------------------------------- context


def _values(events: Iterable[dict[str, Any]], *paths: tuple[str, ...]) -> list[str]:
    """Distinct non-empty values at the first path present in each event, in order."""
    seen: dict[str, None] = {}
    for event in events:
        for path in paths:
            value: Any = event
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value not in (None, ""):
                seen.setdefault(str(value), None)
                break
    return list(seen)


def alert_view(alert: Alert, console_url: str = DEFAULT_CONSOLE_URL) -> dict[str, Any]:
    """The alert as templates see it: the JSON contract plus helpers for humans."""
    view = alert.to_dict()
    events = [e for e in alert.events if isinstance(e, dict)]
    # The org is worth a line when it is named (org_names) or tells groups apart (MSP).
    org = ""
    if alert.organization_name:
        org = alert.organization_name
        if alert.organization:
            org = f"{org} ({alert.organization})"
    elif "organization" in alert.group and alert.organization:
        org = alert.organization
    view.update(
        group_text=alert.group_text,
        source_ips=_values(events, ("client_ip",), ("src_ip",)),
        countries=_values(events, ("geoip", "country_code"), ("src_geoip", "country_code")),
        places=places(events),
        events_text=plural(alert.count, "event"),
        samples=[sample_lines(e) for e in events],
        changes=change_lines(events),
        next_steps=next_steps(alert.runbook, alert.references, events, console_url),
        org_text=org,
        users=_values(
            events,
            ("initiated_by", "username"),
            ("initiated_by", "email"),
            ("resource", "username"),
        ),
        event_types=_values(events, ("event_type",)),
        emoji=SEVERITY_EMOJI.get(alert.severity, ":warning:"),
        color=SEVERITY_COLOR.get(alert.severity, "#888888"),
        silence_command=silence_command(alert),
    )
    return view


def render_context(
    alerts: Sequence[Alert],
    incident: IncidentView | None = None,
    console_url: str = DEFAULT_CONSOLE_URL,
) -> dict[str, Any]:
    """``alert`` (the first), ``alerts`` (a grouped burst), ``count``, ``grouped``, ``more``;
    ``alert_json`` is the first alert's JSON contract exactly (the webhook body);
    ``incident`` describes an incident message (None otherwise)."""
    views = [alert_view(a, console_url) for a in alerts[:MAX_LISTED_ALERTS]]
    return {
        "alert": views[0],
        "alert_json": alerts[0].to_dict(),
        "alerts_json": [a.to_dict() for a in alerts],
        "alerts": views,
        "count": len(alerts),
        "grouped": len(alerts) > 1,
        "more": max(0, len(alerts) - MAX_LISTED_ALERTS),
        "incident": None if incident is None else incident.to_dict(),
        "silence_commands": silence_commands(alerts),
    }


def sample_alert(rule: str = "sample-rule") -> Alert:
    """A realistic alert used to test-render every template (``validate``)."""
    event = {
        "id": "648c6c758c2ac07fa1fdee94",
        "timestamp": "2026-11-20T10:00:01.123Z",
        "event_type": "user_login_attempt",
        "service": "directory",
        "success": False,
        "client_ip": "203.0.113.7",
        "geoip": {"country_code": "RU"},
        "initiated_by": {"type": "user", "username": "alice", "id": "5ee8dbcb03231715576d73cc"},
        "useragent": {"name": "curl"},
        "organization": "641b3db57090821c0b2f8183",
    }
    change = {
        "id": "6490f0f5a2d539837a30aaad",
        "timestamp": "2026-11-20T10:03:40Z",
        "event_type": "user_update",
        "service": "directory",
        "client_ip": "198.51.100.9",
        "geoip": {"country_code": "BR"},
        "initiated_by": {
            "type": "admin",
            "email": "ann@example.com",
            "id": "603e0c284295c570a179ef4a",
        },
        "resource": {"type": "user", "username": "alice", "id": "5ee8dbcb03231715576d73cc"},
        "changes": [{"field": "suspended", "from": False, "to": True}],
        "organization": "641b3db57090821c0b2f8183",
    }
    return Alert(
        rule=rule,
        title="Sample alert",
        severity="high",
        group={"initiated_by.username": "alice"},
        count=12,
        first_event_time="2026-11-20T10:00:01.123Z",
        last_event_time="2026-11-20T10:03:40Z",
        event_ids=["648c6c758c2ac07fa1fdee94", "6490f0f5a2d539837a30aaad"],
        fingerprint="0" * 32,
        summary="12 failed logins for alice from 203.0.113.7 (RU), 198.51.100.9 (BR)",
        events=[event, change],
        tags=["attack.credential_access"],
        description="A sample alert for template checks.",
        references=["https://attack.mitre.org/techniques/T1110/"],
        runbook="https://wiki.example.com/runbooks/failed-logins",
        organization="641b3db57090821c0b2f8183",
        organization_name="Example Org",
        incident="inc-0123456789abcdef",
    )


def sample_incident(alerts: Sequence[Alert]) -> IncidentView:
    """A realistic incident over ``alerts`` (plus one held rule) for template checks."""
    lines = [RuleLine(a.rule, a.title, a.severity, 1, "new") for a in alerts]
    lines.append(RuleLine("unusual-geoip-login", "Login from a new country", "medium", 1, "held"))
    return IncidentView(
        id="inc-0123456789abcdef",
        entity_kind="user",
        entity="alice",
        rules=tuple(lines),
        follow_up=False,
        held=1,
    )


# ---------------------------------------------------------------------------- environments


def _slack_finalize(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Markup):
        return escape.slack_escape(value)
    return value


def slack_link(url: Any, text: Any = "") -> Markup:
    """``<url|text>`` for a checked http(s) URL (text escaped); else the escaped text."""
    label = escape.slack_escape(text or url)
    if isinstance(url, str) and url and is_url(url):
        return Markup(f"<{url}|{label}>")  # noqa: S704 - URL checked, label escaped
    return label


def slack_steps(steps: Any, heading: str = "Next steps") -> Markup:
    """``*heading*`` then one ``• <url|text>`` line per ``{text, url}`` step, escaped."""
    lines = [f"*{escape.slack_escape(heading)}*"]
    for step in steps if isinstance(steps, list | tuple) else []:
        if isinstance(step, dict):
            text = escape.one_line(step.get("label") or step.get("text", ""), 300)
            lines.append(f"• {slack_link(step.get('url') or '', text)}")
    return escape.slack_escape(Markup("\n".join(lines)), escape.SLACK_SECTION_MAX)  # noqa: S704


def _console_finalize(value: Any) -> Any:
    return escape.terminal_escape(value) if isinstance(value, str) else value


def _environment(loader: FileSystemLoader, kind: str) -> ImmutableSandboxedEnvironment:
    env = make_environment(loader, html_autoescape=kind == "html")
    env.filters.update(
        cap=escape.cap,
        truncate_middle=escape.truncate_middle,
        one_line=escape.one_line,
        slack=escape.slack_escape,
        slack_code=escape.slack_code,
        tojson=escape.tojson,
        json_text=escape.json_dumps,
        header=escape.header_line,
        term=escape.terminal_escape,
        plural=plural,
        slack_link=slack_link,
        slack_steps=slack_steps,
    )
    env.globals.update(severity_emoji=SEVERITY_EMOJI, severity_color=SEVERITY_COLOR)
    if kind == "slack":
        env.filters["tojson"] = escape.slack_tojson
        env.finalize = _slack_finalize
    elif kind == "console":
        env.finalize = _console_finalize
    elif kind == "html":
        env.filters["tojson"] = escape.html_tojson
    return env


def _kind(name: str) -> str:
    if name.startswith("slack"):
        return "slack"
    if name.startswith("console"):
        return "console"
    if name.lower().endswith((".html.j2", ".htm.j2", ".html", ".htm")):
        return "html"
    return "text"


def _error_line(exc: BaseException, filename: str | None) -> int | None:
    """The template line a runtime error happened on (Jinja maps frames to templates)."""
    line = getattr(exc, "lineno", None)
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if filename and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class Renderer:
    """Finds and renders templates; one instance per Notifier (templates are cached)."""

    def __init__(self, templates_dir: Path, console_url: str = DEFAULT_CONSOLE_URL) -> None:
        self.templates_dir = Path(templates_dir)
        self.console_url = console_url
        loader = FileSystemLoader(str(self.templates_dir))
        self._envs = {k: _environment(loader, k) for k in ("slack", "console", "html", "text")}

    def candidates(self, name: str, rule: str) -> list[str]:
        """Template names to try, most specific first."""
        names = [name]
        if not name.endswith(".j2"):
            names = [name + ext for ext in _EXTENSIONS] + [name]
        out: list[str] = []
        if _RULE_ID.fullmatch(rule) and ".." not in rule:
            out.extend(f"rules/{rule}/{n}" for n in names)
        out.extend(names)
        return out

    def load(self, path: str, kind: str) -> Template:
        """The compiled template at ``path`` (relative to the templates folder).

        Raises ``TemplateNotFound``, or ``TemplateError`` (file and line) for a syntax error.
        """
        try:
            return self._envs[kind].get_template(path)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                Location(exc.filename or path, exc.lineno), exc.message or str(exc)
            ) from None

    def find(self, name: str, rule: str) -> Template | None:
        for candidate in self.candidates(name, rule):
            try:
                return self.load(candidate, _kind(name))
            except TemplateNotFound:
                continue
        return None

    def render(
        self, name: str, alerts: Sequence[Alert], incident: IncidentView | None = None
    ) -> str | None:
        """Render ``name`` for ``alerts``; None when no such template exists.

        Raises ``TemplateError`` (file and line) when the template fails.
        """
        template = self.find(name, alerts[0].rule)
        if template is None:
            return None
        return self.render_template(template, render_context(alerts, incident, self.console_url))

    @staticmethod
    def render_template(template: Template, context: dict[str, Any]) -> str:
        try:
            return template.render(context)
        except Exception as exc:  # noqa: BLE001 - any template failure is reported, not raised
            filename = template.filename
            where = filename or template.name or "<template>"
            raise TemplateError(
                Location(where, _error_line(exc, filename)), f"{type(exc).__name__}: {exc}"
            ) from None


# ---------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]
    attachments: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str


def headline(alerts: Sequence[Alert], incident: IncidentView | None = None) -> str:
    """``[HIGH] title`` or ``5 alerts: title``: the one-line gist of a message."""
    first = alerts[0]
    if incident is not None:
        about = f"{incident.entity_kind} {incident.entity}".strip()
        update = "update: " if incident.follow_up else ""
        return (
            f"[{incident.severity.upper()}] Incident {update}{len(incident.rules)} "
            f"rule{'' if len(incident.rules) == 1 else 's'} "
            f"for {escape.one_line(about, 200)}: {first.title}"
        )
    if len(alerts) > 1:
        return f"{len(alerts)} alerts: {first.title}"
    return f"[{first.severity.upper()}] {first.title}"


def plain_text(alerts: Sequence[Alert], incident: IncidentView | None = None) -> str:
    """The built-in message used when a template is missing or broken."""
    lines = [headline(alerts, incident)]
    if incident is not None:
        lines.append(f"incident {incident.id}, every rule so far, highest severity first:")
        lines.extend(
            f"  {r.severity.upper()} {r.rule} ({r.alerts} alert{'s' if r.alerts != 1 else ''}, {r.state})"
            for r in incident.rules
        )
    for alert in alerts[:MAX_LISTED_ALERTS]:
        lines.append(
            f"- {escape.one_line(alert.summary or alert.title)} "
            f"(rule {alert.rule}, {plural(alert.count, 'event')}, "
            f"group {escape.one_line(alert.group_text, 200)}, "
            f"{alert.first_event_time} .. {alert.last_event_time}, fingerprint {alert.fingerprint})"
        )
    if len(alerts) > MAX_LISTED_ALERTS:
        lines.append(f"+{len(alerts) - MAX_LISTED_ALERTS} more")
    first = alerts[0]
    for step in next_steps(first.runbook, first.references, []):
        text = escape.one_line(step["text"], 300)
        lines.append(f"next: {text}: {step['url']}" if step["url"] else f"next: {text}")
    return "\n".join(lines)


class MessageBuilder:
    """Builds each channel's message, falling back to ``plain_text`` on template errors."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    def _try(
        self,
        name: str,
        alerts: Sequence[Alert],
        parse: Callable[[str], Any] | None = None,
        incident: IncidentView | None = None,
    ) -> Any:
        """The rendered (and parsed) template, or None after logging why not."""
        try:
            text = self.renderer.render(name, alerts, incident)
            if text is None:
                return None
            return parse(text) if parse else text
        except TemplateError as exc:
            log.error(
                "template %s line %s failed (%s); sending the built-in message for rule %s",
                exc.location.path,
                exc.location.line,
                exc.reason,
                alerts[0].rule,
            )
        except OSError as exc:
            log.error(
                "template %s for rule %s cannot be read (%s); sending the built-in message",
                name,
                alerts[0].rule,
                exc,
            )
        except (ValueError, TypeError) as exc:
            log.error(
                "template %s for rule %s produced an invalid message (%s); "
                "sending the built-in message",
                name,
                alerts[0].rule,
                exc,
            )
        return None

    def slack(
        self,
        alerts: Sequence[Alert],
        template: str | None = None,
        incident: IncidentView | None = None,
    ) -> SlackMessage:
        data = self._try(template or SLACK, alerts, _parse_slack, incident)
        if data is not None:
            assert isinstance(data, SlackMessage)
            return data
        text = escape.slack_escape(plain_text(alerts, incident), escape.SLACK_SECTION_MAX)
        return SlackMessage(
            text=escape.cap(str(escape.slack_escape(headline(alerts, incident))), 3000),
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": str(text)}}],
            attachments=[],
        )

    def email(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> EmailContent:
        subject = self._try(EMAIL_SUBJECT, alerts, None, incident) or headline(alerts, incident)
        text = self._try(EMAIL_TEXT, alerts, None, incident) or plain_text(alerts, incident)
        body_html = self._try(EMAIL_HTML, alerts, None, incident)
        if body_html is None:
            body_html = f"<pre>{html.escape(text)}</pre>"
        return EmailContent(escape.header_line(subject, 200), text, body_html)

    def webhook(
        self,
        alerts: Sequence[Alert],
        template: str | None = None,
        incident: IncidentView | None = None,
    ) -> bytes:
        body = self._try(template or WEBHOOK, alerts, _parse_json_text, incident)
        if body is None:
            if incident is not None:
                body = jsonutil.dumps(
                    {"incident": incident.to_dict(), "alerts": [a.to_dict() for a in alerts]}
                )
            elif len(alerts) == 1:
                body = alerts[0].to_json()
            else:
                body = jsonutil.dumps([a.to_dict() for a in alerts])
        return str(body).encode()

    def console(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> str:
        text = self._try(CONSOLE, alerts, None, incident)
        if text is None:
            text = escape.terminal_escape(plain_text(alerts, incident))
        return str(text)


def _parse_json_text(text: str) -> str:
    """Check a JSON template rendered valid JSON; returns the text unchanged."""
    jsonutil.loads(text)
    return text


def _parse_slack(text: str) -> SlackMessage:
    data = jsonutil.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the Slack template must render a JSON object")
    blocks = data.get("blocks", [])
    attachments = data.get("attachments", [])
    if not isinstance(blocks, list) or not isinstance(attachments, list):
        raise ValueError("'blocks' and 'attachments' must be lists")
    fallback = data.get("text")
    if not isinstance(fallback, str) or not fallback.strip():
        raise ValueError("the Slack template must set a non-empty top-level 'text'")
    # Slack rejects more than 50 blocks; keep the first 49 and say how many were cut.
    if len(blocks) > 50:
        cut = len(blocks) - 49
        blocks = [
            *blocks[:49],
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"+{cut} more blocks"}]},
        ]
    return SlackMessage(text=escape.cap(fallback, 3000), blocks=blocks, attachments=attachments)


# ---------------------------------------------------------------------------- validate


def check_templates(templates_dir: Path, rule_ids: Sequence[str]) -> list[Problem]:
    """Compile and test-render every template and per-rule override.

    Returns problems as ``file:line: message``: syntax errors, unknown variables
    (StrictUndefined), Slack/webhook templates that do not produce valid JSON, and
    override folders for rules that do not exist.
    """
    root = Path(templates_dir)
    if not root.is_dir():
        return [Problem(Location(str(root)), "templates directory not found: set templates.path")]
    renderer = Renderer(root)
    problems: list[Problem] = []
    known = set(rule_ids)
    files = sorted(p for p in root.rglob("*.j2") if p.is_file())
    for path in files:
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        rule = "sample-rule"
        if parts[0] == "rules":
            if len(parts) != 3:
                problems.append(
                    Problem(
                        Location(str(path)),
                        "per-rule templates go in templates/rules/<rule-id>/<name>",
                    )
                )
                continue
            rule = parts[1]
            if rule not in known:
                problems.append(
                    Problem(
                        Location(str(path)),
                        f"no rule has id {rule!r}{suggest(rule, sorted(known))}: "
                        "rename the folder or remove it",
                    )
                )
                continue
        problems.extend(_check_one(renderer, rel, rule))
    return problems


def _check_one(renderer: Renderer, rel: str, rule: str) -> list[Problem]:
    name = Path(rel).name
    try:
        template = renderer.load(rel, _kind(name))
    except TemplateError as exc:
        return [Problem(exc.location, exc.reason)]
    alert = sample_alert(rule)
    cases: list[tuple[list[Alert], IncidentView | None]] = [
        ([alert], None),
        ([alert, sample_alert(rule)], None),
        ([alert], sample_incident([alert])),
    ]
    for alerts, incident in cases:
        try:
            text = Renderer.render_template(template, render_context(alerts, incident))
        except TemplateError as exc:
            return [Problem(exc.location, exc.reason)]
        if name.endswith(".json.j2"):
            try:
                if _kind(name) == "slack":
                    _parse_slack(text)
                else:
                    _parse_json_text(text)
            except (ValueError, TypeError) as exc:
                return [
                    Problem(
                        Location(template.filename or rel),
                        f"does not render valid JSON ({exc}): build values with | tojson",
                    )
                ]
    return []
