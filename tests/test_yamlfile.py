"""Every YAML problem a rule author or operator can make is one located, readable line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

from alerting.durations import Duration
from alerting.errors import ValidationFailed
from alerting.yamlfile import MAX_FILE_BYTES, load_yaml, validate


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int
    within: Duration


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    severity: Literal["info", "low", "medium", "high", "critical"]
    threshold: Window | None = None
    tags: list[str] = []


def problems(text: str) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate(Doc, load_yaml("rule.yaml", text=text))
    return [str(p) for p in caught.value.problems]


def test_valid_document_loads() -> None:
    doc = validate(
        Doc,
        load_yaml("rule.yaml", text="id: a\nseverity: high\nthreshold: {count: 3, within: 5m}\n"),
    )
    assert doc.threshold is not None
    assert doc.threshold.within.total_seconds() == 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "id: a\nseverity: hgih\n",
            "rule.yaml:2:11: severity: 'hgih' is not one of info, low, medium, high, critical (did you mean 'high'?)",
        ),
        (
            "id: a\nseverity: low\nthreshold: {count: 3, windw: 5m, within: 1m}\n",
            "rule.yaml:3:23: unknown key 'windw' (did you mean 'within'?)",
        ),
        (
            "id: a\nseverity: low\nthreshold: {count: 3, within: 5 minutes}\n",
            "rule.yaml:3:31: threshold.within: invalid duration '5 minutes'",
        ),
        (
            "id: a\nseverity: low\nthreshold: [1, 2]\n",
            "rule.yaml:3:12: threshold: expected a mapping (key: value), got a list",
        ),
        ("severity: low\n", "rule.yaml:1:1: missing required key 'id'"),
        (
            "id: a\nid: b\nseverity: low\n",
            "rule.yaml:2:1: duplicate key 'id' (first defined at line 1): remove one of them",
        ),
        (
            "id: a\nseverity: low\ntags:\n\t- x\n",
            "rule.yaml:4:1: tab character: YAML indents with spaces only",
        ),
        (
            "id: !!python/object/apply:os.system ['true']\n",
            "rule.yaml:1:5: unsupported tag tag:yaml.org,2002:python/object/apply:os.system",
        ),
        ("# only a comment\n", "rule.yaml:1:1: file is empty"),
        (
            "- id: a\n",
            "rule.yaml:1:1: expected a mapping (key: value) at the top level, got a list",
        ),
        ("id: [a\n", "rule.yaml:2:1: invalid YAML:"),
    ],
)
def test_each_problem_is_one_located_line(text: str, expected: str) -> None:
    found = problems(text)
    assert any(line.startswith(expected) for line in found), found
    assert all("\n" not in line for line in found)


def test_all_problems_reported_together() -> None:
    found = problems("id: a\nseverity: hgih\nthreshold: {count: x, within: 5q}\n")
    assert [p.split(":")[1] for p in found] == ["2", "3", "3"]


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    with pytest.raises(ValidationFailed, match="too many values"):
        load_yaml("bomb.yaml", text="\n".join(lines) + "\n")


def test_size_limit_and_encoding(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (MAX_FILE_BYTES + 1) + "\n")
    with pytest.raises(ValidationFailed, match=r"over the .* byte limit"):
        load_yaml(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"id: a\ntitle: caf\xe9\n")
    with pytest.raises(ValidationFailed, match=r"latin.yaml:2: file is not valid UTF-8"):
        load_yaml(latin)
    with pytest.raises(ValidationFailed, match="cannot read file"):
        load_yaml(tmp_path / "missing.yaml")


def test_locate_points_at_keys_and_values() -> None:
    doc = load_yaml("r.yaml", text="detection:\n  sel:\n    event_type: [a, b]\n")
    assert str(doc.locate(("detection", "sel", "event_type", 1))) == "r.yaml:3:21"
    assert str(doc.locate(("detection", "sel", "event_type"), key=True)) == "r.yaml:3:5"
    assert str(doc.locate(("detection", "nope", "x"))) == "r.yaml:2:3"  # nearest ancestor
