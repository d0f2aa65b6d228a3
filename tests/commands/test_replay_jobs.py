"""``replay --jobs N``: the rules over N forked workers give the alerts and the summary
of one process, byte for byte, whatever the input's order."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from alerting import cli, jsonutil
from alerting.engine.loader import load_rules
from alerting.replay_parallel import can_fork, split_rules

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not can_fork(), reason="--jobs forks its workers")


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of simulator traffic, every attack scenario, as `simulate --export`."""
    path = tmp_path_factory.mktemp("days") / "days.jsonl"
    assert cli.main(["simulate", "--export", str(path), "--hours", "48", "--seed", "11"]) == 0
    return path


def _replay(
    events: Path, output: Path, jobs: int, capsys: pytest.CaptureFixture[str]
) -> tuple[bytes, str]:
    code = cli.main(
        [
            "replay",
            "--events",
            str(events),
            "--rules",
            str(REPO / "rules"),
            "--output",
            str(output),
            "--jobs",
            str(jobs),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return output.read_bytes(), captured.out


@pytest.mark.parametrize("form", ["sorted", "shuffled", "every event twice"])
def test_jobs_give_the_alerts_and_summary_of_one_process(
    days: Path, tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if form == "sorted":
        events = days
    else:
        lines = days.read_bytes().splitlines()
        if form == "shuffled":
            random.Random(3).shuffle(lines)
        else:
            lines = lines + lines
        events = tmp_path / "events.jsonl"
        events.write_bytes(b"\n".join(lines) + b"\n")
    one = _replay(events, tmp_path / "one.jsonl", 1, capsys)
    assert one[0].count(b"\n") > 50  # the pack fires on these days: the comparison means something
    for jobs in (2, 3) if form == "sorted" else (2,):
        assert _replay(events, tmp_path / f"jobs{jobs}.jsonl", jobs, capsys) == one


def test_jobs_read_stdin_once_for_all_workers(
    days: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _replay(days, tmp_path / "file.jsonl", 1, capsys)
    with open(days, encoding="utf-8") as stdin:  # a real file: workers close theirs
        monkeypatch.setattr("sys.stdin", stdin)
        got = _replay(Path("-"), tmp_path / "stdin.jsonl", 2, capsys)
    assert got[0] == expected[0]


def test_a_worker_that_cannot_read_gives_one_line_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "alerts.jsonl"
    code = cli.main(
        ["replay", "--events", str(tmp_path / "missing.jsonl"), "--output", str(output),
         "--rules", str(REPO / "rules"), "--jobs", "2"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "missing.jsonl" in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not output.exists()


@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_jobs_must_be_a_positive_number(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", "--events", "x.jsonl", "--jobs", bad])
    assert exc.value.code == 2
    assert "is not a number of processes (1 or more)" in capsys.readouterr().err


def test_split_keeps_every_rule_once_in_order_and_balances_the_heavy_ones() -> None:
    rules = load_rules([REPO / "rules"])
    shares = split_rules(rules, 2)
    assert len(shares) == 2
    assert sorted(r.id for share in shares for r in share) == sorted(r.id for r in rules)
    order = {r.id: i for i, r in enumerate(rules)}
    for share in shares:
        assert [order[r.id] for r in share] == sorted(order[r.id] for r in share)
    travel = [r.id for r in rules if type(r.aggregation).__name__ == "TravelSpec"]
    sequence = [r.id for r in rules if type(r.aggregation).__name__ == "SequenceSpec"]
    if travel and sequence:  # the two costliest kinds do not pile into one worker
        where = {r.id: n for n, share in enumerate(shares) for r in share}
        assert where[travel[0]] != where[sequence[0]]
    assert split_rules(rules[:1], 4) == [rules[:1]]


def test_the_summary_json_is_the_same_with_jobs(
    days: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summaries = []
    for jobs in (1, 2):
        path = tmp_path / f"summary{jobs}.json"
        code = cli.main(
            ["replay", "--events", str(days), "--rules", str(REPO / "rules"),
             "--summary-json", str(path), "--jobs", str(jobs)]
        )  # fmt: skip
        assert code == 0
        summaries.append(jsonutil.loads(path.read_bytes()))
    capsys.readouterr()
    assert summaries[0] == summaries[1]
