"""Service accounts: the client-credentials token, against the simulator's token endpoint.

What a deployer relies on: the service signs in with ``client_id`` + ``client_secret``,
keeps the token while it is valid, fetches a new one before it runs out and once after a
401, says in one line when the secret is wrong, and never shows the secret.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from alerting import cli
from alerting.clock import ManualClock, SystemClock
from alerting.config import load_config
from alerting.errors import ConfigError
from alerting.redact import secret_values
from alerting.simulator.di_api import DIApiServer
from alerting.source.jumpcloud import DIClient, SourceAuthError, SourceUnavailable
from alerting.source.oauth import ClientCredentials
from alerting.source.settings import DEFAULT_TOKEN_URL
from tests.support.di import NOW, NS, raw_event
from tests.support.notify import closed_port

CLIENT_ID = "4f1c2c0e-sa-jc-alerting"
CLIENT_SECRET = "sa_Secret_Value_do_not_show_0123456789"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``alerting run`` installs log handlers on the root logger: take them off again."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


@pytest.fixture
def server(clock: ManualClock) -> Any:
    with DIApiServer(
        clock=clock, oauth_clients={CLIENT_ID: CLIENT_SECRET}, token_lifetime=600
    ) as srv:
        srv.add_events([raw_event("ev1", (NOW - 100) * NS)])
        yield srv


def sign_in(server: DIApiServer, clock: ManualClock, secret: str = CLIENT_SECRET) -> DIClient:
    tokens = ClientCredentials(server.token_url, CLIENT_ID, secret, clock=clock, timeout=5)
    return DIClient(
        server.url,
        token_source=tokens,
        org_ids=["org-a"],
        clock=clock,
        rate_limit=None,
        timeout=5,
        max_retries=0,
    )


def token_requests(server: DIApiServer) -> list[Any]:
    return [r for r in server.requests if r.path == "/oauth2/token"]


def api_requests(server: DIApiServer) -> list[Any]:
    return [r for r in server.requests if r.path != "/oauth2/token"]


def count(client: DIClient) -> int:
    return client.count((NOW - 600) * NS, NOW * NS)


def test_the_token_request_is_the_client_credentials_grant(
    server: DIApiServer, clock: ManualClock
) -> None:
    client = sign_in(server, clock)
    assert count(client) == 1
    assert count(client) == 1
    (grant,) = token_requests(server)  # one token serves both calls
    scheme, _, encoded = (grant.header("Authorization") or "").partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{CLIENT_ID}:{CLIENT_SECRET}"
    assert parse_qs(grant.body.decode()) == {"grant_type": ["client_credentials"], "scope": ["api"]}
    assert grant.header("Content-Type") == "application/x-www-form-urlencoded"
    issued = next(iter(server.tokens))
    for call in api_requests(server):
        assert call.status == 200
        assert call.header("Authorization") == f"Bearer {issued}"
        assert call.header_values("x-org-id") == ["org-a"]
        assert call.header("x-api-key") is None


def test_the_token_is_refreshed_before_it_expires(server: DIApiServer, clock: ManualClock) -> None:
    client = sign_in(server, clock)
    count(client)
    first = next(iter(server.tokens))
    clock.advance(530)  # valid 600 s, refreshed 60 s before the end: still the same
    count(client)
    assert len(token_requests(server)) == 1
    clock.advance(15)  # 545 s: inside the margin, a new one is fetched, none refused
    count(client)
    assert len(token_requests(server)) == 2
    assert api_requests(server)[-1].header("Authorization") != f"Bearer {first}"
    assert all(r.status == 200 for r in server.requests)


def test_a_refused_token_is_fetched_again_once_then_the_call_succeeds(
    server: DIApiServer, clock: ManualClock
) -> None:
    client = sign_in(server, clock)
    count(client)
    server.revoke_tokens()  # rotated on the JumpCloud side while the token was cached
    assert count(client) == 1
    assert [r.status for r in api_requests(server)] == [200, 401, 200]
    assert len(token_requests(server)) == 2
    assert clock.sleeps == []  # no backoff: a new token is all it took


def test_a_token_refused_even_when_fresh_stops_in_one_line(
    server: DIApiServer, clock: ManualClock
) -> None:
    client = sign_in(server, clock)
    count(client)
    server.token_lifetime = 0  # every token it issues is already expired
    server.revoke_tokens()
    with pytest.raises(SourceAuthError, match="even after fetching a new one") as caught:
        count(client)
    assert [r.status for r in api_requests(server)] == [200, 401, 401]  # one refresh only
    assert "\n" not in str(caught.value)


def test_a_wrong_secret_is_one_clear_line_without_the_secret(
    server: DIApiServer, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sa_Wrong_Secret_value_0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    client = sign_in(server, clock, secret=wrong)
    with pytest.raises(SourceAuthError) as caught:
        count(client)
    message = str(caught.value)
    assert message == (
        f"JumpCloud refused the service account's credentials at {server.token_url} "
        "(401: invalid_client client authentication failed): check source.client_id and "
        "source.client_secret (or client_secret_file)"
    )
    assert api_requests(server) == []  # the DI API was never called without a token
    assert wrong not in caplog.text
    assert CLIENT_SECRET not in caplog.text


def test_an_unreachable_token_endpoint_waits_for_the_next_poll(
    server: DIApiServer, clock: ManualClock
) -> None:
    tokens = ClientCredentials(
        f"http://127.0.0.1:{closed_port()}/oauth2/token", CLIENT_ID, CLIENT_SECRET, clock=clock
    )
    client = DIClient(server.url, token_source=tokens, org_ids=["org-a"], clock=clock)
    with pytest.raises(SourceUnavailable, match=r"token endpoint .* is unreachable") as caught:
        count(client)
    assert "the next poll retries" in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)
    assert api_requests(server) == []


# ---------------------------------------------------------------------------- config + service


RULE = """\
id: failed-login
title: Failed login
severity: high
detection:
  failed: {event_type: user_login_attempt, success: false}
  condition: failed
"""


def write_config(tmp_path: Path, server: DIApiServer, *, secret_line: str) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "failed-login.yaml").write_text(RULE)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
source:
  kind: jumpcloud
  base_url: {server.url}
  client_id: {CLIENT_ID}
  {secret_line}
  token_url: {server.token_url}
  org_id: org-a
  lag: 0s
  max_retries: 0
rules: {{paths: [rules]}}
templates: {{path: {Path(__file__).resolve().parent.parent / "templates"}}}
channels:
  out: {{type: file, path: alerts.jsonl}}
routes:
  - channels: [out]
logging: {{level: debug, format: json}}
"""
    )
    return config


@pytest.mark.usefixtures("restore_logging")
def test_run_once_signs_in_with_a_secret_file_and_never_logs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    with DIApiServer(clock=SystemClock(), oauth_clients={CLIENT_ID: CLIENT_SECRET}) as api:
        api.add_events([raw_event("ev1", int((time.time() - 60) * NS), success=False)])
        (tmp_path / "sa-secret").write_text(CLIENT_SECRET + "\n")
        config = write_config(tmp_path, api, secret_line="client_secret_file: sa-secret")
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
        token = next(iter(api.tokens))
    (alert,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert alert["rule"] == "failed-login"
    err = capsys.readouterr().err
    assert "signed in as service account" in err
    assert CLIENT_SECRET not in err
    assert token not in err
    assert "Traceback" not in err


def test_config_checks_the_service_account_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"source: {{kind: jumpcloud, client_id: {CLIENT_ID}, org_id: org-a}}\n")
    with pytest.raises(ConfigError, match="client_id needs client_secret too"):
        load_config(path)
    path.write_text(
        f"source: {{kind: jumpcloud, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}\n"
    )
    with pytest.raises(ConfigError, match=r"client_id \(service account\) needs org_id") as caught:
        load_config(path)
    assert CLIENT_SECRET not in str(caught.value)
    path.write_text(
        "source: {kind: jumpcloud, api_key: jc_key_0123456789, "
        f"client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}, org_id: org-a}}\n"
    )
    with pytest.raises(ConfigError, match="set only one of api_key or client_id/client_secret"):
        load_config(path)
    path.write_text(
        f"source: {{kind: jumpcloud, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}, "
        "org_id: org-a, token_url: 'http://oauth.example.com/token'}\n"
    )
    with pytest.raises(ConfigError, match=r"token_url .* must be an https:// URL"):
        load_config(path)
    path.write_text(
        f"source: {{kind: jumpcloud, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}, "
        "org_id: org-a}\n"
    )
    config = load_config(path)
    assert config.source.token_url == DEFAULT_TOKEN_URL
    assert CLIENT_SECRET not in repr(config.source)
    assert CLIENT_SECRET in config.secrets()  # masked in every log line
    # Raw YAML under client_secret counts as a secret too (masked in config errors).
    assert secret_values({"source": {"client_secret": CLIENT_SECRET}}) == {CLIENT_SECRET}
