"""Fixtures for the engine tests: the project's rule pack, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="session")
def pack_rules() -> list[CompiledRule]:
    """Every rule in rules/ (compiled once: the pack is read-only in tests)."""
    return list(load_rules([RULES_DIR]))
