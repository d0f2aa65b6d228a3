"""The ``store`` fixture: a real SQLite state database in the test's temp dir, closed after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "state.db")
    yield db
    db.close()
