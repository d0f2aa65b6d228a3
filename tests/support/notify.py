"""Loopback fakes and fixtures for the notification tests (no mocks, no sleeping).

- ``HttpReceiver``: a real HTTP server on 127.0.0.1 (port 0) that records every request
  and answers from a script: it stands in for Slack (webhook URL and Web API base_url)
  and for webhook receivers.
- ``tls_cert``: a self-signed certificate for 127.0.0.1 made with the ``openssl`` command.
- ``SmtpServer``: an aiosmtpd Controller (plain or STARTTLS + AUTH) collecting messages.
- ``make_alert`` and ``make_notifier`` build the objects under test with a ManualClock.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerting.alert import Alert, make_fingerprint
from alerting.clock import ManualClock
from alerting.notify.pipeline import Notifier
from alerting.notify.settings import DeliveryConfig, RouteConfig, SilenceConfig
from alerting.store import Store

PROJECT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
START = 1_800_000_000.0


# ---------------------------------------------------------------------------- HTTP


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class Reply:
    status: int = 200
    body: str | bytes = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the test ends): a receiver that times out


class HttpReceiver:
    """A scripted HTTP server: ``replies`` are used in order, then ``default``.

    With ``tls`` it speaks HTTPS only (``url`` starts with https://); a client that does
    not trust the certificate fails the handshake and the request is never recorded.
    """

    def __init__(self, default: Reply | None = None, *, tls: TlsCert | None = None) -> None:
        self.requests: list[Request] = []
        self.replies: list[Reply] = []
        self.default = default or Reply()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(
                    Request("POST", self.path, dict(self.headers.items()), body)
                )
                reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                if reply.hang:
                    receiver._release.wait(30)
                    return
                data = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.server_context().wrap_socket(
                self.server.socket, server_side=True
            )
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port() -> int:
    return closed_port()


# ---------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsCert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    """A self-signed certificate for 127.0.0.1/localhost (its own CA: use as ca_file)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return TlsCert(cert, key)


# ---------------------------------------------------------------------------- SMTP


class Collector:
    """aiosmtpd handler: keeps every message; ``fail_rcpt``/``fail_data`` script errors."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.data_replies: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"


USER, PASSWORD = "alerts", "s3cret-smtp"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    """``tls`` alone: STARTTLS required + AUTH; with ``implicit``: TLS from the first byte."""

    def __init__(self, tls: TlsCert | None = None, *, implicit: bool = False) -> None:
        from aiosmtpd.controller import Controller

        self.handler = Collector()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls is not None and implicit:
            kwargs = {"ssl_context": tls.server_context()}
        elif tls is not None:
            kwargs = {
                "tls_context": tls.server_context(),
                "require_starttls": True,
                "authenticator": _auth,
            }
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=5, **kwargs
        )
        self.controller.start()

    @property
    def messages(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.handler.messages

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp_plain() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


@pytest.fixture
def smtps(tls_cert: TlsCert) -> Iterator[SmtpServer]:
    server = SmtpServer(tls_cert, implicit=True)
    yield server
    server.close()


@pytest.fixture
def smtp_starttls(tls_cert: TlsCert) -> Iterator[SmtpServer]:
    server = SmtpServer(tls_cert)
    yield server
    server.close()


# ---------------------------------------------------------------------------- alerts


_counter = iter(range(1, 10**9))


def make_alert(
    rule: str = "failed-login-burst",
    *,
    severity: str = "high",
    group: dict[str, Any] | None = None,
    tags: Sequence[str] = ("attack.credential_access",),
    username: str = "alice",
    summary: str | None = None,
    events: list[dict[str, Any]] | None = None,
    title: str = "Failed login burst",
) -> Alert:
    n = next(_counter)
    group = {"initiated_by.username": username} if group is None else group
    event_id = f"648c6c758c2ac07fa1f{n:05x}"
    if events is None:
        events = [
            {
                "id": event_id,
                "timestamp": "2026-11-20T10:00:01.123Z",
                "event_type": "user_login_attempt",
                "success": False,
                "client_ip": "203.0.113.7",
                "geoip": {"country_code": "RU"},
                "initiated_by": {"type": "user", "username": username},
            }
        ]
    return Alert(
        rule=rule,
        title=title,
        severity=severity,
        group=group,
        count=12,
        first_event_time="2026-11-20T10:00:01.123Z",
        last_event_time="2026-11-20T10:03:40Z",
        event_ids=[event_id],
        fingerprint=make_fingerprint(rule, group, event_id),
        summary=summary if summary is not None else f"12 failed logins for {username}",
        events=events,
        tags=list(tags),
    )


def delivery(**kwargs: Any) -> DeliveryConfig:
    """Small, exact backoff numbers: 10s, 20s, 40s... capped at 60s."""
    base: dict[str, Any] = {
        "max_attempts": 3,
        "initial_backoff": timedelta(seconds=10),
        "max_backoff": timedelta(seconds=60),
    }
    base.update(kwargs)
    return DeliveryConfig(**base)


def make_notifier(
    store: Store,
    clock: ManualClock,
    channels: dict[str, Any],
    *,
    routes: list[dict[str, Any]] | None = None,
    silences: list[dict[str, Any]] | None = None,
    delivery_config: DeliveryConfig | None = None,
    templates_dir: Path = PROJECT_TEMPLATES,
    **kwargs: Any,
) -> Notifier:
    """A Notifier from plain dicts (validated like the config file would be)."""
    from pydantic import TypeAdapter

    from alerting.notify.settings import ChannelConfig

    adapter: TypeAdapter[Any] = TypeAdapter(ChannelConfig)
    # Channel tests see every alert as it comes; incident tests pass their own routes.
    default_routes = [{"channels": list(channels), "incidents": False}]
    route_models = [RouteConfig.model_validate(r) for r in (routes or default_routes)]
    return Notifier(
        channels={name: adapter.validate_python(cfg) for name, cfg in channels.items()},
        routes=route_models,
        silences=[SilenceConfig.model_validate(s) for s in (silences or [])],
        delivery=delivery_config or delivery(),
        templates_dir=templates_dir,
        store=store,
        clock=clock,
        rng=random.Random(1),
        **kwargs,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def states(store: Store) -> dict[str, int]:
    """Outbox rows by state: the 'never lost' check (every row is somewhere)."""
    return store.outbox_counts()
