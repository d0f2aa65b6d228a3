"""`make bench` without ElastAlert's venv: the comparison says it was not measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import bench_elastalert
from benchmarks.common import NOT_MEASURED


def test_without_elastalerts_venv_the_ratio_is_not_measured_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_elastalert, "EA_READY", tmp_path / "absent" / ".installed")
    assert bench_elastalert.main(["--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert NOT_MEASURED in out
    assert "[FAIL]" not in out
    assert "elastalert" not in sys.modules  # ElastAlert only ever runs in its own venv
