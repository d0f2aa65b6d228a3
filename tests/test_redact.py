"""One secrets walk and one minimum length, for config error messages and log records."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from alerting.config import load_config
from alerting.errors import ConfigError
from alerting.logs import Redactor
from alerting.redact import MIN_SECRET_LENGTH, maskable, secret_values


class _Inner(BaseModel):
    password: SecretStr
    host: str


class _Outer(BaseModel):
    items: list[_Inner]
    named: dict[str, _Inner]


def test_walk_finds_secretstr_in_models_and_raw_strings_under_secret_keys() -> None:
    model = _Outer(
        items=[_Inner(password=SecretStr("pw-in-list"), host="smtp.example")],
        named={"a": _Inner(password=SecretStr("pw-in-dict"), host="mx.example")},
    )
    assert secret_values(model) == {"pw-in-list", "pw-in-dict"}
    raw = {"source": {"api_key": "jc-raw-key", "region": "us"}, "channels": [{"token": "t0k3n"}]}
    assert secret_values(raw) == {"jc-raw-key", "t0k3n"}


def test_one_minimum_length_for_both_maskers() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    just = "y" * MIN_SECRET_LENGTH
    assert maskable([short, just, ""]) == [just]
    assert Redactor([short, just])(f"a {short} b {just}") == f"a {short} b ***"


def test_config_secrets_feed_log_redaction(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "source:\n  kind: jumpcloud\n  api_key: ${JC_KEY}\n"
        "channels:\n  mail:\n    type: email\n    host: smtp.example.com\n"
        "    sender: a@example.com\n    to: [b@example.com]\n    username: u\n"
        "    password: ${SMTP_PW}\n"
    )
    config = load_config(path, environ={"JC_KEY": "jc-key-1234567890", "SMTP_PW": "pw42"})
    assert config.secrets() >= {"jc-key-1234567890", "pw42"}
    redact = Redactor(config.secrets())
    assert redact("login pw42 with jc-key-1234567890") == "login *** with ***"


def test_config_error_masks_a_short_secret_too(tmp_path: Path) -> None:
    # A secret of MIN_SECRET_LENGTH characters echoed in an error is masked as in logs.
    path = tmp_path / "config.yaml"
    path.write_text("source:\n  kind: jumpcloud\n  api_key: ${K}\n  lag: ${K}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"K": "abcd"})
    assert "source.lag: invalid duration '***'" in str(caught.value)
    assert "abcd" not in str(caught.value)
