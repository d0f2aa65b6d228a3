"""Structured logging for the service: JSON lines for machines, readable text for people.

Every record, including the ones httpx, APScheduler and slack-sdk emit, goes through one
handler on the root logger. A redaction filter on that handler masks configured secret
values and anything shaped like an API key header, a Bearer token, a Slack token or a
Slack webhook URL, so a secret that reaches a log record by accident (an exception text
quoting a URL or a header) is never written out.

Call sites log a short message and put numbers in ``extra=``; the JSON formatter emits
them as fields and the text formatter appends them as ``key=value``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any, Literal

from alerting import jsonutil
from alerting.redact import MASK, mask, maskable

LogFormat = Literal["auto", "json", "text"]


# Logger names that are chatty at INFO (one line per HTTP request or job run).
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "slack_sdk", "urllib3")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack incoming webhooks and workflow triggers carry their secret in the path.
    (
        re.compile(r"https://hooks\.slack(?:-gov)?\.com/[^\s\"'<>]+", re.I),
        "https://hooks.slack.com/" + MASK,
    ),
    # Slack bot/user/app tokens.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"), "xox?-" + MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), "xapp-" + MASK),
    # Authorization: Bearer <token>
    (re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\1" + MASK),
    # x-api-key: <key>, 'x-api-key': '<key>', api_key=<key>, "token": "<t>", secret=..., password=...
    (
        re.compile(
            r"""((?:x-api-key|api[_-]?key|access[_-]?token|token|secret|password|passwd)"""
            r"""["']?\s*[:=]\s*(?:b?["'])?)[^\s"',;}\])]+""",
            re.I,
        ),
        r"\1" + MASK,
    ),
)


class Redactor:
    """Masks secrets in text: exact configured values first, then secret-shaped patterns."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = maskable(secrets)

    def __call__(self, text: str) -> str:
        text = mask(text, self._secrets)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactionFilter(logging.Filter):
    """Rewrites a record so its message, exception text and extra fields are redacted.

    It sits on the handler (not a logger) so records propagated from every library are
    covered. It never drops a record.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self.redactor(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redactor(value))
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _utc(created: float) -> str:
    return (
        datetime.fromtimestamp(created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            data.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return jsonutil.dumps(_jsonable(data))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class TextFormatter(logging.Formatter):
    """``2026-11-29 17:30:01Z INFO  alerting.service: message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = _utc(record.created).replace("T", " ")[:19] + "Z"
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def _text_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
    text = str(value)
    return repr(text) if (" " in text or not text) else text


def choose_format(fmt: str, stream: IO[str]) -> Literal["json", "text"]:
    """``auto``: text on a terminal, JSON lines otherwise (journald, Docker, files)."""
    if fmt == "json":
        return "json"
    if fmt == "text":
        return "text"
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


_HANDLER_MARK = "_jc_alerting_handler"


def setup_logging(
    level: str | int = "INFO",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install the one root handler (replacing a previous one of ours) and return it.

    ``secrets`` are exact values to mask (API keys, tokens, passwords from the config).
    """
    out = stream if stream is not None else sys.stderr
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    handler = logging.StreamHandler(out)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter() if choose_format(fmt, out) == "json" else TextFormatter())
    handler.addFilter(RedactionFilter(Redactor(secrets)))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return handler
