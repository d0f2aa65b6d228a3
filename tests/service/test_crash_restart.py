"""Kill -9 at the worst moments, restart, and nothing is lost or enqueued twice.

``alerting run`` runs as a real subprocess against a DI API server and a webhook receiver
in this process. The kills are deterministic: the ALERTING_FAILPOINT test hook makes the
process SIGKILL itself inside a poll (before and after its commit), and the receiver holds
a delivery until the test kills the sender (between a send and its "sent" mark).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from alerting.clock import SystemClock
from alerting.simulator.di_api import DIApiServer
from alerting.store import Store
from tests.support.notify import HttpReceiver, Reply, SmtpServer
from tests.support.service import (
    API_KEY,
    NS,
    Lines,
    Receiver,
    expected_fingerprints,
    http_get,
    login,
    run_alerting,
    write_config,
)

pytestmark = pytest.mark.slow


def _alerting(config: Path, *args: str, failpoint: str | None = None) -> subprocess.Popen[str]:
    env = {"JUMPCLOUD_API_KEY": API_KEY}
    if failpoint:
        env["ALERTING_FAILPOINT"] = failpoint
    return run_alerting(config, *args, env=env)


def _finish(proc: subprocess.Popen[str], timeout: float = 15) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _state(tmp_path: Path) -> tuple[int | None, dict[str, int], int]:
    store = Store(tmp_path / "state" / "alerting.db")
    try:
        alerts = store.alert_count()
        return store.get_cursor("jumpcloud"), store.outbox_counts(), int(alerts)
    finally:
        store.close()


def test_kills_mid_poll_and_mid_delivery_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    t0 = time.time()
    first = [login(t0 - 2400 + i * 30, "alice") for i in range(3)]  # a burst
    first += [login(t0 - 1200, "bob"), login(t0 - 240, "carol"), login(t0 - 180, "carol")]
    with (
        DIApiServer(first, api_key=API_KEY, clock=SystemClock()) as api,
        Receiver(block_first=True) as hook,
    ):
        config = write_config(
            tmp_path,
            base_url=api.url,
            webhook_url=hook.url,
            api_key="${JUMPCLOUD_API_KEY}",
            delivery_interval="1s",
        )

        # 1. Killed after computing alerts, before committing: nothing happened.
        code, err = _finish(_alerting(config, "--once", failpoint="before_commit"))
        assert code == -signal.SIGKILL, err
        assert _state(tmp_path) == (None, {"pending": 0, "sent": 0, "dead": 0, "held": 0}, 0)

        # 2. Killed right after the commit: alerts queued, cursor moved, nothing sent.
        code, err = _finish(_alerting(config, "--once", failpoint="after_commit"))
        assert code == -signal.SIGKILL, err
        expected_first = expected_fingerprints(tmp_path / "rules", first)
        cursor, outbox, alerts = _state(tmp_path)
        assert cursor is not None
        assert (outbox["pending"], alerts) == (len(expected_first), len(expected_first))
        assert hook.alerts() == []

        # Late events arrive behind the cursor (inside the 5m overlap). Carol's third
        # failure completes a burst whose first two events only the rebuilt window holds.
        late = [login(cursor / NS - 60, "carol"), login(cursor / NS - 30, "dave")]
        api.add_events(late)
        expected = expected_fingerprints(tmp_path / "rules", first + late)
        assert len(expected) == len(expected_first) + 3  # carol, dave, carol's burst

        # 3. Killed while the receiver holds the first delivery (sent, not yet marked).
        proc = _alerting(config, "--once")
        assert hook.first_arrived.wait(15), proc.communicate(timeout=5)[1]
        proc.kill()
        proc.wait(10)
        hook.release.set()
        in_flight = hook.fingerprints()[0]

        # 4. The service proper delivers the rest; SIGTERM stops it cleanly.
        proc = _alerting(config)
        deadline = time.monotonic() + 15
        while not expected <= set(hook.fingerprints()) and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        code, err = _finish(proc, timeout=10)
        assert code == 0, err
        assert time.monotonic() - stopped < 5
        assert "Traceback" not in err
        assert API_KEY not in err

    received = Counter(hook.fingerprints())
    assert set(received) == expected  # every alert arrived, and nothing else
    # At-least-once: only the delivery cut off between send and mark came twice, with
    # the same fingerprint and the same body, so the receiver can drop it.
    assert {fp for fp, n in received.items() if n > 1} == {in_flight}
    assert received[in_flight] == 2
    bodies = [a for a in hook.alerts() if a["fingerprint"] == in_flight]
    assert bodies[0] == bodies[1]
    hook.verify_signatures()
    burst = [a for a in hook.alerts() if a["rule"] == "test-failed-burst"]
    assert sorted(a["group"]["initiated_by.username"] for a in burst) == ["alice", "carol"]
    carol = next(a for a in burst if a["group"]["initiated_by.username"] == "carol")
    assert carol["event_ids"] == [first[4]["id"], first[5]["id"], late[0]["id"]]
    # Each alert was enqueued once; every delivery ended as sent.
    _, outbox, alerts = _state(tmp_path)
    assert alerts == len(expected)
    assert outbox == {"pending": 0, "sent": len(expected), "dead": 0, "held": 0}


# ---------------------------------------------------------------------- Slack and email

SLACK_PATH = "/services/T0001/B0001/sEcReTwEbHoOkPaTh"


def _slack_and_email_config(tmp_path: Path, api_url: str, slack_url: str, smtp_port: int) -> Path:
    """The service's config with its webhook channel replaced by Slack and email."""
    config = write_config(tmp_path, base_url=api_url, webhook_url="http://127.0.0.1:9/unused")
    text = config.read_text()
    start = text.index("channels:")
    end = text.index("delivery:")
    channels = f"""channels:
  oncall: {{type: slack, webhook_url: "{slack_url}"}}
  mail:
    type: email
    host: 127.0.0.1
    port: {smtp_port}
    starttls: false
    from: alerts@example.com
    to: [soc@example.com]
    timeout: 5s
routes:
  - channels: [oncall, mail]
"""
    text = text[:start] + channels + text[end:]
    # One user per alert: each is its own incident, sent without the incident's group_wait.
    text = text.replace("delivery: {", "delivery: {group_wait: 0s, incidents: {group_wait: 0s}, ")
    config.write_text(text)
    return config


def _slack_posts(receiver: HttpReceiver) -> Counter[bytes]:
    """Slack messages by body: one per alert here (group_wait 0s, one user per alert)."""
    return Counter(request.body for request in receiver.requests)


def test_kills_lose_and_duplicate_nothing_on_slack_and_email(tmp_path: Path) -> None:
    t0 = time.time()
    users = ("alice", "bob", "carol", "dave")
    events = [login(t0 - 1800 + i * 300, user) for i, user in enumerate(users)]
    slack = HttpReceiver()
    smtp = SmtpServer()
    try:
        slack.replies = [Reply(hang=True)]  # the first Slack post is never answered
        with DIApiServer(events, api_key=API_KEY, clock=SystemClock()) as api:
            config = _slack_and_email_config(tmp_path, api.url, slack.url + SLACK_PATH, smtp.port)
            expected = expected_fingerprints(tmp_path / "rules", events)

            code, err = _finish(_alerting(config, "--once", failpoint="before_commit"))
            assert code == -signal.SIGKILL, err
            assert _state(tmp_path) == (None, {"pending": 0, "sent": 0, "dead": 0, "held": 0}, 0)

            code, err = _finish(_alerting(config, "--once", failpoint="after_commit"))
            assert code == -signal.SIGKILL, err
            _, outbox, alerts = _state(tmp_path)
            assert (alerts, outbox["pending"]) == (len(expected), 2 * len(expected))
            assert slack.requests == []
            assert smtp.messages == []

            # Killed while Slack holds a post: sent, never marked sent.
            proc = _alerting(config, "--once")
            deadline = time.monotonic() + 15
            while not slack.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert slack.requests, proc.communicate(timeout=5)[1]
            proc.kill()
            proc.wait(10)
            in_flight = slack.requests[0].body

            code, err = _finish(_alerting(config, "--once"))
            assert code == 0, err
            assert "Traceback" not in err
    finally:
        slack.close()
        smtp.close()

    posts = _slack_posts(slack)
    assert len(posts) == len(expected) == len(users)  # every alert reached Slack
    # At-least-once: only the post cut off between send and mark came twice.
    assert {body for body, n in posts.items() if n > 1} == {in_flight}
    assert posts[in_flight] == 2
    mails = Counter(str(msg["X-Alerting-Fingerprint"]) for _, _, msg in smtp.messages)
    assert mails == Counter(dict.fromkeys(expected, 1))  # each alert mailed exactly once
    _, outbox, alerts = _state(tmp_path)
    assert alerts == len(expected)
    assert outbox == {"pending": 0, "sent": 2 * len(expected), "dead": 0, "held": 0}


# ---------------------------------------------------------------------- a key revoked


def _until(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_key_revoked_mid_run_is_one_line_health_503_no_hot_loop_then_recovery(
    tmp_path: Path,
) -> None:
    t0 = time.time()
    with (
        DIApiServer([login(t0 - 600, "alice")], api_key=API_KEY, clock=SystemClock()) as api,
        Receiver() as hook,
    ):
        config = write_config(
            tmp_path,
            base_url=api.url,
            webhook_url=hook.url,
            api_key="${JUMPCLOUD_API_KEY}",
            poll_interval="200ms",
            health_max_age="30s",
        )
        proc = _alerting(config)
        out = Lines(proc.stderr)
        try:
            assert _until(lambda: any(r["message"] == "started" for r in out.records()))
            health = next(r for r in out.records() if r["message"] == "started")["health_url"]
            assert _until(lambda: sum(r["message"] == "poll ok" for r in out.records()) >= 2)
            assert http_get(health)[0] == 200

            api.faults.status = 401  # the key is revoked in the JumpCloud console
            assert _until(lambda: http_get(health)[0] == 503)
            body = json.loads(http_get(health)[1])
            assert body["status"] == "error"
            assert "JumpCloud rejected the API key (401 Unauthorized)" in body["reason"]
            requests = len(api.requests)
            # Paused for 10 poll intervals (2 s): no request in the next second, where a
            # hot loop would have polled five times.
            assert not _until(lambda: len(api.requests) > requests, timeout=1.0)

            api.faults.status = None  # the key works again
            assert _until(lambda: http_get(health)[0] == 200, timeout=10)
            api.add_events([login(time.time() - 1, "bob")])
            assert _until(lambda: len(hook.alerts()) == 2, timeout=10)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(10)
            out.join()
    assert code == 0
    text = "".join(out.lines)
    assert "Traceback" not in text
    assert API_KEY not in text
    rejected = [r for r in out.records() if "rejected the API key" in r["message"]]
    assert len(rejected) == 1
    assert rejected[0]["level"] == "error"
    assert any(
        r["message"].startswith("the source accepts the service again") for r in out.records()
    )
