"""Escaping for every place an attacker-controlled value can land.

Event fields (usernames, user agents, error messages) are written by whoever sends the
login request, so each target gets its own escaper: Slack mrkdwn (``& < >``, so
``<!channel>`` never pings), JSON (``tojson``), HTML (Jinja autoescape), e-mail headers
(one line, no CR/LF) and terminals (no ANSI control sequences). ``cap`` and
``truncate_middle`` keep a 100 KB value from blowing a channel's size limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from alerting import jsonutil

ELLIPSIS = "…"
ZWJ = "\u200d"

# Slack Block Kit limits (docs.slack.dev/reference/block-kit): section text 3000,
# header 150, a field 2000; we cap after escaping so entities are never cut in half.
SLACK_SECTION_MAX = 3000
SLACK_HEADER_MAX = 150
SLACK_FIELD_MAX = 2000

_SLACK_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")
# C0 controls except tab/newline, DEL, C1 controls, and bidi overrides that reorder text.
_TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def cap(value: Any, limit: int = SLACK_SECTION_MAX) -> str:
    """At most ``limit`` characters, ending in an ellipsis when cut.

    An HTML/Slack entity (``&amp;``) cut in half at the end is dropped whole.
    """
    text = _text(value)
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    head = _ENTITY_TAIL.sub("", head)
    result = head + ELLIPSIS
    # Cutting already-escaped text keeps it escaped (the entity tail was dropped above).
    return Markup(result) if isinstance(value, Markup) else result  # noqa: S704


def truncate_middle(value: Any, limit: int = 200) -> str:
    """Keep the start and end of a long value (``abcd…wxyz``): ids and paths stay legible."""
    text = _text(value)
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    keep = limit - 1
    front = keep - keep // 2
    return text[:front] + ELLIPSIS + text[len(text) - keep // 2 :]


def slack_escape(value: Any, limit: int | None = None) -> Markup:
    """Escape a value for Slack mrkdwn/plain_text and mark it safe (no double escaping).

    ``&``, ``<`` and ``>`` become entities, so ``<!channel>``, ``<@U123>`` and
    ``<https://evil|click>`` show as text; ``@channel``/``@here``/``@everyone`` get a
    zero-width joiner after the ``@`` so no client turns them into a broadcast.
    """
    if isinstance(value, Markup):
        text = str(value)
    else:
        text = _text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = _SLACK_BROADCAST.sub(lambda m: "@" + ZWJ + m.group(1), text)
    if limit is not None:
        text = cap(text, limit)
    return Markup(text)  # noqa: S704 - escaped above; Markup only stops double escaping


def slack_code(value: Any) -> Markup:
    """``value`` as inline code in Slack mrkdwn, escaped; plain escaped text when it holds
    a backtick (mrkdwn has no way to escape one inside code, and the text must stay exact).
    A list gives one code span per line."""
    if isinstance(value, list | tuple):
        return Markup("\n").join(slack_code(v) for v in value)
    text = _text(value)
    escaped = slack_escape(text)
    if "`" in text or "\n" in text:
        return escaped
    return Markup("`") + escaped + Markup("`")


def _slack_safe_tree(value: Any) -> Any:
    """Slack-escape every string (not already escaped) inside a JSON-like value."""
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, str):
        return str(slack_escape(value))
    if isinstance(value, Mapping):
        return {str(k): _slack_safe_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_slack_safe_tree(v) for v in value]
    return value


def json_dumps(value: Any) -> str:
    """Compact JSON that is valid whatever the value (non-JSON types become strings)."""
    return jsonutil.dumps(value)


def tojson(value: Any) -> str:
    """JSON for a template (valid JSON whatever the value, quotes and backslashes included)."""
    return json_dumps(value)


def html_tojson(value: Any) -> Markup:
    """JSON safe inside HTML: ``< > & '`` become ``\\u`` escapes (still the same JSON)."""
    text = (
        json_dumps(value)
        .replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("'", "\\u0027")
    )
    return Markup(text)  # noqa: S704 - no HTML metacharacter is left in the text


def slack_tojson(value: Any) -> Markup:
    """``tojson`` for Slack templates: strings are mrkdwn-escaped first unless already
    escaped by the ``slack`` filter, so forgetting ``| slack`` cannot let a value ping."""
    # Every string inside was mrkdwn-escaped; JSON syntax itself has no & < >.
    return Markup(json_dumps(_slack_safe_tree(value)))  # noqa: S704


def header_line(value: Any, limit: int = 200) -> str:
    """One line for an e-mail header: any line break becomes a space (no header injection)."""
    text = _LINE_BREAKS.sub(" ", _text(value))
    text = "".join(ch if ch >= " " or ch == "\t" else " " for ch in text)
    return cap(" ".join(text.split()), limit)


def terminal_escape(value: Any) -> str:
    """Show control characters as ``\\x1b`` text so an event cannot drive the terminal."""
    if isinstance(value, Markup):  # template-authored text is trusted
        return str(value)
    text = _text(value)
    return _TERMINAL_CONTROL.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"
        ),
        text,
    )


def one_line(value: Any, limit: int = 300) -> str:
    """Collapse a value to one capped line (for list items and table cells)."""
    return cap(" ".join(_text(value).split()), limit)
