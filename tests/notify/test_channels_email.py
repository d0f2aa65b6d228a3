"""E-mail through smtplib to a real aiosmtpd server: plain, STARTTLS (verified), failures."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.notify.pipeline import Notifier
from alerting.notify.settings import DeliveryConfig
from alerting.store import Store
from tests.support.notify import (
    PASSWORD,
    USER,
    SmtpServer,
    TlsCert,
    closed_port,
    delivery,
    make_alert,
    make_notifier,
    states,
)

SENDER = "alerts@example.com"
RCPTS = ["sec@example.com", "soc@example.com"]


def email_notifier(
    store: Store,
    clock: ManualClock,
    port: int,
    *,
    delivery_config: DeliveryConfig | None = None,
    **cfg: Any,
) -> Notifier:
    channel: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from": SENDER,
        "to": RCPTS,
        "timeout": "5s",
    }
    channel.update(cfg)
    return make_notifier(store, clock, {"mail": channel}, delivery_config=delivery_config)


def starttls_notifier(
    store: Store, clock: ManualClock, server: SmtpServer, tls: TlsCert, password: str = PASSWORD
) -> Notifier:
    """STARTTLS with the test CA trusted, logging in as ``USER``."""
    return email_notifier(
        store,
        clock,
        server.port,
        starttls=True,
        ca_file=str(tls.cert),
        username=USER,
        password=password,
    )


def _part(msg: EmailMessage, subtype: str) -> str:
    body = msg.get_body((subtype,))
    assert body is not None, f"no text/{subtype} part"
    return str(body.get_content())


def test_plain_smtp_delivers_multipart_with_identifying_headers(
    store: Store, clock: ManualClock, smtp_plain: SmtpServer
) -> None:
    alert = make_alert(username="alice")
    notifier = email_notifier(store, clock, smtp_plain.port)
    notifier.enqueue([alert])
    assert notifier.deliver_due().sent == 1
    ((mail_from, rcpt_tos, msg),) = smtp_plain.messages
    assert mail_from == SENDER
    assert rcpt_tos == RCPTS
    assert msg["Subject"] == "[HIGH] Failed login burst: alice"
    assert msg["From"] == SENDER
    assert msg["To"] == ", ".join(RCPTS)
    assert msg["X-Alerting-Fingerprint"] == alert.fingerprint
    assert msg["Message-ID"] == f"<{alert.fingerprint}@example.com>"
    assert msg["Date"].datetime.timestamp() == int(clock.time())
    assert msg.get_content_type() == "multipart/alternative"
    text = _part(msg, "plain")
    html = _part(msg, "html")
    assert "12 failed logins for alice" in text
    assert "Where:     203.0.113.7 (RU)" in text
    assert "<td>203.0.113.7 (RU)</td>" in html
    assert states(store) == {"pending": 0, "sent": 1, "dead": 0, "held": 0}


def test_starttls_with_ca_file_and_login(
    store: Store, clock: ManualClock, smtp_starttls: SmtpServer, tls_cert: TlsCert
) -> None:
    notifier = starttls_notifier(store, clock, smtp_starttls, tls_cert)
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().sent == 1
    assert len(smtp_starttls.messages) == 1


def test_implicit_tls_port_465_style(
    store: Store, clock: ManualClock, smtps: SmtpServer, tls_cert: TlsCert
) -> None:
    notifier = email_notifier(store, clock, smtps.port, tls=True, ca_file=str(tls_cert.cert))
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().sent == 1
    assert len(smtps.messages) == 1


def test_untrusted_certificate_is_refused_not_ignored(
    store: Store, clock: ManualClock, smtp_starttls: SmtpServer
) -> None:
    notifier = email_notifier(
        store, clock, smtp_starttls.port, starttls=True, username=USER, password=PASSWORD
    )
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().dead == 1
    (row,) = store.list_deliveries(("dead",))
    assert "not trusted" in (row.last_error or "")
    assert "set ca_file" in (row.last_error or "")
    assert smtp_starttls.messages == []


def test_wrong_password_is_permanent_and_never_logged(
    store: Store,
    clock: ManualClock,
    smtp_starttls: SmtpServer,
    tls_cert: TlsCert,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = starttls_notifier(store, clock, smtp_starttls, tls_cert, password="wrong-pw-xyz")
    notifier.enqueue([make_alert()])
    with caplog.at_level(logging.DEBUG):
        assert notifier.deliver_due().dead == 1
    (row,) = store.list_deliveries(("dead",))
    assert (row.last_error or "").startswith("SMTP 535")
    assert "wrong-pw-xyz" not in caplog.text


def test_header_injection_through_event_values_is_impossible(
    store: Store, clock: ManualClock, smtp_plain: SmtpServer
) -> None:
    alert = make_alert(
        username="bob\r\nBcc: victim@evil.example\r\nX-Evil: yes", title="Login\nburst"
    )
    notifier = email_notifier(store, clock, smtp_plain.port)
    notifier.enqueue([alert])
    assert notifier.deliver_due().sent == 1
    ((_, rcpt_tos, msg),) = smtp_plain.messages
    assert rcpt_tos == RCPTS
    assert msg["Bcc"] is None
    assert msg["X-Evil"] is None
    assert msg["Subject"] == "[HIGH] Login burst: bob Bcc: victim@evil.example X-Evil: yes"


def test_html_part_escapes_markup_from_events(
    store: Store, clock: ManualClock, smtp_plain: SmtpServer
) -> None:
    notifier = email_notifier(store, clock, smtp_plain.port)
    notifier.enqueue([make_alert(username="<script>alert(1)</script>")])
    notifier.deliver_due()
    html = _part(smtp_plain.messages[0][2], "html")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_smtp_5xx_dead_letters_and_4xx_retries(
    store: Store, clock: ManualClock, smtp_plain: SmtpServer
) -> None:
    smtp_plain.handler.data_replies = ["451 4.3.0 try again later", "554 5.7.1 message rejected"]
    notifier = email_notifier(store, clock, smtp_plain.port)
    notifier.enqueue([make_alert()])
    first = notifier.deliver_due()
    assert (first.retried, first.dead) == (1, 0)
    clock.advance(10)
    second = notifier.deliver_due()
    assert (second.retried, second.dead) == (0, 1)
    (row,) = store.list_deliveries(("dead",))
    assert row.attempts == 2
    assert row.last_error == "SMTP 554: 5.7.1 message rejected"


def test_temporary_failure_then_delivered_after_backoff(
    store: Store, clock: ManualClock, smtp_plain: SmtpServer
) -> None:
    smtp_plain.handler.data_replies = ["421 4.7.0 busy"]
    notifier = email_notifier(store, clock, smtp_plain.port)
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().retried == 1
    assert notifier.deliver_due().sent == 0  # not due yet: the backoff holds it
    clock.advance(10)
    assert notifier.deliver_due().sent == 1
    assert len(smtp_plain.messages) == 1


def test_relay_down_retries_until_dead_and_keeps_the_row(store: Store, clock: ManualClock) -> None:
    notifier = email_notifier(store, clock, closed_port())
    notifier.enqueue([make_alert()])
    for _ in range(3):
        notifier.deliver_due()
        clock.advance(60)
    assert states(store) == {"pending": 0, "sent": 0, "dead": 1, "held": 0}
    (row,) = store.list_deliveries(("dead",))
    assert "ConnectionRefusedError" in (row.last_error or "")


def test_burst_is_one_email(store: Store, clock: ManualClock, smtp_plain: SmtpServer) -> None:
    notifier = email_notifier(
        store, clock, smtp_plain.port, delivery_config=delivery(group_wait="1m")
    )
    notifier.enqueue([make_alert(username=f"u{i}") for i in range(4)])
    clock.advance(60)
    assert notifier.deliver_due().grouped == 4
    ((_, _, msg),) = smtp_plain.messages
    assert msg["Subject"] == "[HIGH] 4 alerts: Failed login burst"
    assert msg["X-Alerting-Alert-Count"] == "4"
