"""Kill -9 at the worst moments, restart, and nothing is lost or enqueued twice.

``alerting run`` runs as a real subprocess against a DI API server and a webhook receiver
in this process. The kills are deterministic: the ALERTING_FAILPOINT test hook makes the
process SIGKILL itself inside a poll (before and after its commit), and the receiver holds
a delivery until the test kills the sender (between a send and its "sent" mark).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from alerting.clock import SystemClock
from alerting.simulator.di_api import DIApiServer
from alerting.store import Store
from tests.service.test_service import (
    API_KEY,
    Receiver,
    expected_fingerprints,
    login,
    run_alerting,
    write_config,
)

NS = 1_000_000_000
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
        alerts = store._exec("SELECT COUNT(*) FROM alerts").fetchone()[0]
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
