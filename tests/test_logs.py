"""Logs: JSON lines for machines, text for people, and no secret ever written out."""

from __future__ import annotations

import io
import json
import logging

import pytest

from alerting.logs import setup_logging
from tests.support.logs import restore_logging

__all__ = ["restore_logging"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_level_logger_message_and_fields() -> None:
    out = io.StringIO()
    setup_logging("info", "json", stream=out)
    logging.getLogger("alerting.service").info("poll ok", extra={"events": 12, "lag_s": 121.5})
    logging.getLogger("alerting.service").debug("not shown at info")
    [record] = _lines(out)
    assert record["level"] == "info"
    assert record["logger"] == "alerting.service"
    assert record["message"] == "poll ok"
    assert record["events"] == 12
    assert record["lag_s"] == 121.5
    assert str(record["time"]).endswith("Z")


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_is_text_on_a_terminal_and_json_otherwise() -> None:
    tty = _Tty()
    setup_logging("info", "auto", stream=tty)
    logging.getLogger("alerting.service").info("poll ok", extra={"events": 3})
    line = tty.getvalue().strip()
    assert "INFO" in line
    assert "alerting.service: poll ok events=3" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)

    pipe = io.StringIO()
    setup_logging("info", "auto", stream=pipe)
    logging.getLogger("alerting.service").info("second")
    assert _lines(pipe)[0]["message"] == "second"
    # The second setup replaced the first handler instead of adding another one.
    assert "second" not in tty.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_configured_secrets_and_secret_shapes_are_masked_everywhere() -> None:
    out = io.StringIO()
    key = "jc_live_5f3a9c0d2e7b41a8"
    setup_logging("info", "json", secrets=[key], stream=out)
    log = logging.getLogger("alerting.source")
    log.info("request with key %s failed", key)
    log.warning("headers: {'x-api-key': 'abcdef0123456789', 'accept': 'application/json'}")
    log.warning("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig sent")
    log.error(
        "slack post failed", extra={"url": "https://hooks.slack.com/services/T000/B000/XXXXSECRET"}
    )
    try:
        raise RuntimeError(f"boom while sending to api_key={key}")
    except RuntimeError:
        log.exception("internal error")
    text = out.getvalue()
    for secret in (key, "abcdef0123456789", "eyJhbGciOiJIUzI1NiJ9", "XXXXSECRET", "T000/B000"):
        assert secret not in text
    records = _lines(out)
    assert len(records) == 5  # redaction never drops a record
    assert records[0]["message"] == "request with key *** failed"
    assert "'accept': 'application/json'" in str(records[1]["message"])  # the rest survives
    assert "Bearer ***" in str(records[2]["message"])
    assert records[3]["url"] == "https://hooks.slack.com/***"
    assert "RuntimeError" in str(records[4]["exception"])


@pytest.mark.usefixtures("restore_logging")
def test_chatty_libraries_are_quiet_below_warning() -> None:
    out = io.StringIO()
    setup_logging("debug", "json", stream=out)
    logging.getLogger("httpx").info('HTTP Request: POST https://api.jumpcloud.com "200 OK"')
    logging.getLogger("apscheduler.executors.default").info("Running job poll")
    logging.getLogger("apscheduler.scheduler").warning("Run time of job poll was missed")
    messages = [r["message"] for r in _lines(out)]
    assert messages == ["Run time of job poll was missed"]
