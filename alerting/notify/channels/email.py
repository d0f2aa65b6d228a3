"""E-mail through smtplib: STARTTLS or implicit TLS with certificate verification on.

``smtplib`` without an explicit context does *not* verify certificates, so a context
from ``ssl.create_default_context(cafile=ca_file)`` is always passed. SMTP 4xx and
network errors are temporary; 5xx (including authentication failures) are permanent.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from alerting.alert import Alert
from alerting.clock import Clock
from alerting.notify.channels.errors import PermanentError, TemporaryError
from alerting.notify.incidents import IncidentView
from alerting.notify.render import MessageBuilder
from alerting.notify.settings import EmailChannel

log = logging.getLogger(__name__)


class EmailSender:
    groups_bursts = True

    def __init__(
        self, name: str, config: EmailChannel, messages: MessageBuilder, clock: Clock
    ) -> None:
        self.name = name
        self.config = config
        self.messages = messages
        self.clock = clock

    def _context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.config.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise PermanentError(
                f"cannot load ca_file {self.config.ca_file!r}: {exc}: point ca_file at a PEM bundle"
            ) from None

    def build(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> EmailMessage:
        """The multipart (text + HTML) message with identifying headers."""
        content = self.messages.email(alerts, incident)
        msg = EmailMessage()
        msg["Subject"] = content.subject  # already one line (escape.header_line)
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg["Date"] = formatdate(self.clock.time(), localtime=False, usegmt=True)
        address = parseaddr(self.config.sender)[1]
        domain = address.rpartition("@")[2] if "@" in address else "jc-alerting.local"
        # Stable per alert (a retried send keeps its id, so mail clients deduplicate) and
        # short enough that the header is never folded.
        suffix = f".{len(alerts)}" if len(alerts) > 1 else ""
        msg["Message-ID"] = f"<{alerts[0].fingerprint}{suffix}@{domain}>"
        msg["X-Alerting-Fingerprint"] = alerts[0].fingerprint
        msg["X-Alerting-Rule"] = alerts[0].rule
        if len(alerts) > 1:
            msg["X-Alerting-Alert-Count"] = str(len(alerts))
        if incident is not None:
            msg["X-Alerting-Incident"] = incident.id
            msg["References"] = f"<{incident.id}@{domain}>"  # threads an incident's messages
        msg.set_content(content.text)
        msg.add_alternative(content.html, subtype="html")
        return msg

    def send(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> None:
        msg = self.build(alerts, incident)
        cfg = self.config
        timeout = cfg.timeout.total_seconds()
        try:
            smtp: smtplib.SMTP
            if cfg.tls:
                smtp = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=timeout, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
            with smtp:
                if cfg.starttls and not cfg.tls:
                    smtp.starttls(context=self._context())
                if cfg.username:
                    password = cfg.password.get_secret_value() if cfg.password else ""
                    smtp.login(cfg.username, password)
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in exc.recipients.items())
            if all(code >= 500 for code in codes):
                raise PermanentError(f"SMTP server refused every recipient: {text}") from None
            raise TemporaryError(f"SMTP server deferred recipients: {text}") from None
        except smtplib.SMTPResponseException as exc:
            detail = _decode(exc.smtp_error)
            if exc.smtp_code >= 500:
                hint = " (check username/password)" if exc.smtp_code in (530, 534, 535) else ""
                raise PermanentError(f"SMTP {exc.smtp_code}: {detail}{hint}") from None
            raise TemporaryError(f"SMTP {exc.smtp_code}: {detail}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(
                f"SMTP server does not support a required extension ({exc}): "
                "check starttls/tls and port"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(
                f"TLS certificate of {cfg.host} not trusted ({exc.verify_message}): "
                "set ca_file to the relay's CA bundle"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryError(
                f"cannot send mail via {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}"
            ) from None
        if refused:
            # Some recipients accepted: the alert is delivered; the rest are reported.
            partial = ", ".join(f"{r} ({c})" for r, (c, _) in refused.items())
            log.warning("channel %s: SMTP server refused some recipients: %s", self.name, partial)

    def close(self) -> None:
        return None


def _decode(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:300]
