"""The config file: what a user writes, what the service gets, and what every mistake says.

Expected positions are computed from the YAML text of each test (``at(text, needle)``: the
1-based line and column where ``needle`` starts), so each assertion states which token
the error must point at.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerting.config import (
    Config,
    config_notes,
    config_warnings,
    load_config,
    parse_listen,
)
from alerting.errors import ConfigError
from alerting.notify.settings import (
    ConsoleChannel,
    EmailChannel,
    FileChannel,
    SlackChannel,
    WebhookChannel,
)

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = "source:\n  kind: simulator\n"


def at(text: str, needle: str, nth: int = 1) -> str:
    """``line:col`` (1-based) of the ``nth`` occurrence of ``needle`` in ``text``."""
    start = -1
    for _ in range(nth):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return f"{line}:{col}"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The error lines a user sees for ``text`` (which must be invalid)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    lines = str(info.value).splitlines()
    assert lines == [str(p) for p in info.value.problems]
    return lines


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ=environ or {})


# --------------------------------------------------------------------------- shipped file


def test_shipped_config_loads_offline_without_any_environment() -> None:
    config = load_config(ROOT / "config.yaml", environ={})
    assert config.source.kind == "simulator"
    assert config.path == ROOT / "config.yaml"
    assert config.base_dir == ROOT
    assert config.state.path == ROOT / "state" / "alerting.db"
    assert config.rules.paths == [ROOT / "rules"]
    assert config.templates.path == ROOT / "templates"
    assert isinstance(config.channels["console"], ConsoleChannel)
    alerts_file = config.channels["alerts-file"]
    assert isinstance(alerts_file, FileChannel)
    assert alerts_file.path == str(ROOT / "state" / "alerts.jsonl")
    # One catch-all route to both active channels: nothing defined is left unused.
    assert [r.channels for r in config.routes] == [["console", "alerts-file"]]
    assert config.routes[0].match.rule == []
    assert config.routes[0].match.severity == []
    assert config.unused_channels() == []
    assert config.silences == []
    assert (config.server.host, config.server.port) == ("127.0.0.1", 9108)


def test_shipped_config_documents_the_real_channels_and_source_as_comments() -> None:
    text = (ROOT / "config.yaml").read_text()
    for needle in (
        "# source:",
        "#   kind: jumpcloud",
        "${JUMPCLOUD_API_KEY}",
        "${JUMPCLOUD_ORG_ID:-}",
        "#   type: slack",
        "${SLACK_WEBHOOK_URL}",
        "#   type: email",
        "password_file:",
        "#   type: webhook",
        "${WEBHOOK_SECRET}",
        "# silences:",
    ):
        assert needle in text, needle


def test_uncommented_examples_in_shipped_config_are_valid(tmp_path: Path) -> None:
    """The commented Slack/email/webhook/jumpcloud examples work once uncommented."""
    text = (ROOT / "config.yaml").read_text()
    lines = text.splitlines()
    # Take the active file and swap in the commented jumpcloud source and channels.
    source_start = lines.index("# source:")
    jumpcloud = []
    for line in lines[source_start:]:
        if not line.startswith("#"):
            break
        jumpcloud.append(line[2:])
    active = "\n".join(lines)
    active = active.replace(
        active[active.index("source:\n") : active.index("# The real JumpCloud")],
        "\n".join(jumpcloud) + "\n\n",
        1,
    )
    for block in ("oncall", "security-email", "siem"):
        start = active.index(f"  # {block}:\n")
        end = start
        body = []
        for line in active[start:].splitlines():
            if not line.startswith("  # "):
                break
            body.append("  " + line[4:])
            end += len(line) + 1
        active = active[:start] + "\n".join(body) + "\n" + active[end:]
    active = active.replace(
        "  # - match: {severity: [high, critical]}", "  - match: {severity: [high, critical]}"
    )
    active = active.replace("  #   channels: [oncall, siem]", "    channels: [oncall, siem]")
    active = active.replace("  #   continue: true", "    continue: true")
    (tmp_path / "smtp").write_text("smtp-pass\n")
    active = active.replace("/run/secrets/smtp", str(tmp_path / "smtp"))
    env = {
        "JUMPCLOUD_API_KEY": "jc-key-1234567890",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
        "WEBHOOK_SECRET": "whsec-0987654321",
    }
    config = load(tmp_path, active, env)
    assert config.source.kind == "jumpcloud"
    assert config.source.api_key is not None
    assert config.source.api_key.get_secret_value() == "jc-key-1234567890"
    assert config.source.org_id == []  # JUMPCLOUD_ORG_ID unset -> no x-org-id header
    assert isinstance(config.channels["oncall"], SlackChannel)
    email = config.channels["security-email"]
    assert isinstance(email, EmailChannel)
    assert email.password is not None
    assert email.password.get_secret_value() == "smtp-pass"
    assert isinstance(config.channels["siem"], WebhookChannel)
    assert [r.channels for r in config.routes] == [["oncall", "siem"], ["console", "alerts-file"]]


# --------------------------------------------------------------------------- defaults


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    src = config.source
    assert src.base_url == "https://api.jumpcloud.com"
    assert src.services == ["all"]
    assert src.poll_interval == timedelta(seconds=60)
    assert src.lag == timedelta(minutes=2)
    assert src.overlap == timedelta(minutes=5)
    assert src.start_from == timedelta(hours=1)
    assert src.rate_limit == 10
    assert src.timeout == timedelta(seconds=30)
    assert src.max_retries == 5
    assert src.simulator.seed == 7
    assert src.simulator.history == timedelta(hours=2)
    assert src.simulator.scenarios is None
    assert src.simulator.users == 60
    assert src.simulator.unenrolled_mfa == 0.0
    assert config.state.path == tmp_path / "state" / "alerting.db"
    assert config.rules.paths == [tmp_path / "rules"]
    assert config.templates.path == tmp_path / "templates"
    assert config.channels == {}
    assert config.routes == []
    assert config.silences == []
    assert config.server.listen == "127.0.0.1:9108"
    assert config.logging.level == "info"
    assert config.logging.format == "auto"


def test_health_max_age_defaults_to_three_poll_intervals(tmp_path: Path) -> None:
    config = load(tmp_path, "source: {kind: simulator, poll_interval: 20s}\n")
    assert config.health_max_age == timedelta(seconds=60)
    assert config.server.health_max_age == timedelta(seconds=60)
    config = load(tmp_path, "source: {kind: simulator}\nserver: {health_max_age: 10m}\n")
    assert config.health_max_age == timedelta(minutes=10)


def test_empty_sections_mean_none(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "channels:\nroutes:\nsilences:\n")
    assert config.channels == {}
    assert config.routes == []
    assert config.silences == []


# --------------------------------------------------------------------------- YAML errors


def test_unknown_key_is_located_with_a_suggestion(tmp_path: Path) -> None:
    text = "source:\n  kind: simulator\n  pol_interval: 30s\n"
    assert problems(tmp_path, text) == [
        f"{tmp_path / 'config.yaml'}:{at(text, 'pol_interval')}: unknown key 'pol_interval' "
        "(did you mean 'poll_interval'?)"
    ]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = MINIMAL + "channel:\n  console: {type: console}\n"
    (line,) = problems(tmp_path, text)
    assert f":{at(text, 'channel:')}: unknown key 'channel' (did you mean 'channels'?)" in line


def test_wrong_type_is_located_at_the_value(tmp_path: Path) -> None:
    text = "source:\n  kind: simulator\n  rate_limit: fast\n  max_retries: [1]\n"
    lines = problems(tmp_path, text)
    assert len(lines) == 2
    assert f":{at(text, 'fast')}: source.rate_limit:" in lines[0]
    assert "number" in lines[0]
    assert f":{at(text, '[1]')}: source.max_retries:" in lines[1]


def test_bad_duration_says_how_to_write_one(tmp_path: Path) -> None:
    text = "source:\n  kind: simulator\n  lag: 5 minutes\n"
    (line,) = problems(tmp_path, text)
    assert f":{at(text, '5 minutes')}: source.lag: invalid duration '5 minutes'" in line
    assert "30s, 5m, 2h, 7d" in line


def test_bad_enum_suggests_the_closest_value(tmp_path: Path) -> None:
    text = "source:\n  kind: jumpclod\nlogging: {level: WARN}\n"
    lines = problems(tmp_path, text)
    assert lines[0].endswith(
        f":{at(text, 'jumpclod')}: source.kind: 'jumpclod' is not one of simulator, "
        "jumpcloud, file (did you mean 'jumpcloud'?)"
    )
    assert f":{at(text, 'WARN')}: logging.level: 'warn' is not one of" in lines[1]
    assert "(did you mean 'warning'?)" in lines[1]


def test_bad_channel_type_suggests_the_closest_type(tmp_path: Path) -> None:
    text = MINIMAL + "channels:\n  oncall:\n    type: slak\n    webhook_url: x\n"
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        f":{at(text, 'slak')}: channels.oncall.type: 'slak' is not one of slack, email, "
        "webhook, console, file (did you mean 'slack'?)"
    )


def test_missing_required_keys(tmp_path: Path) -> None:
    text = "state: {path: x.db}\n"
    (line,) = problems(tmp_path, text)
    assert line.endswith(":1:1: missing required key 'source'")

    text = MINIMAL + "channels:\n  mail:\n    type: email\n    to: [a@example.com]\n"
    lines = problems(tmp_path, text)
    assert any("missing required key 'host'" in x for x in lines)
    assert any("missing required key 'from'" in x for x in lines)

    text = MINIMAL + "channels:\n  c:\n    color: never\n"
    (line,) = problems(tmp_path, text)
    assert line.endswith(f":{at(text, 'color')}: channels.c: missing required key 'type'")


def test_tab_indentation_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("source:\n\tkind: simulator\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == (
        f"{path}:2:1: tab character: YAML indents with spaces only, replace the tab with spaces"
    )


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    text = MINIMAL + "channels:\n  c: {type: console}\n  c: {type: console}\n"
    (line,) = problems(tmp_path, text)
    assert f":{at(text, 'c:', 2)}: duplicate key 'c' (first defined at line 4)" in line


def test_list_where_a_mapping_belongs(tmp_path: Path) -> None:
    text = MINIMAL + "server:\n  - listen: 127.0.0.1:1\n"
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        f":{at(text, '- listen')}: server: expected a mapping (key: value), got a list"
    )


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "- source\n- state\n")
    assert "expected a mapping (key: value) at the top level, got a list" in line


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n  # another\n"])
def test_empty_file_says_so(tmp_path: Path, text: str) -> None:
    (line,) = problems(tmp_path, text)
    assert line.endswith(":1:1: file is empty: it must hold a YAML mapping")


def test_python_tag_is_named_and_refused(tmp_path: Path) -> None:
    text = MINIMAL + "state:\n  path: !!python/object/apply:os.system ['echo hi']\n"
    (line,) = problems(tmp_path, text)
    assert "unsupported tag" in line
    assert "python/object/apply:os.system" in line
    assert f":{at(text, '!!python')}:" in line


def test_missing_config_file_is_one_line_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: config file not found: copy config.yaml from the project or pass --config"
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
    source:
      kind: simulator
      poll_interval: soon
      api_kye: x
    state: [a]
    channels:
      c: {type: console, colour: never}
    routes:
      - channels: [d]
    logging: {format: yaml}
    server: {listen: nowhere}
    """
    lines = problems(tmp_path, text)
    text = textwrap.dedent(text)
    expected = [
        (at(text, "soon"), "source.poll_interval: invalid duration 'soon'"),
        (at(text, "api_kye"), "unknown key 'api_kye' (did you mean 'api_key'?)"),
        (at(text, "[a]"), "state: expected a mapping"),
        (at(text, "colour"), "unknown key 'colour' (did you mean 'color'?)"),
        (at(text, "d]"), "routes.0.channels: unknown channel 'd'"),
        (at(text, "yaml"), "logging.format: 'yaml' is not one of auto, json, text"),
        (at(text, "nowhere"), "server.listen: listen 'nowhere' is not host:port"),
    ]
    assert len(lines) == len(expected)
    for line, (pos, message) in zip(lines, expected, strict=True):
        assert f":{pos}: {message}" in line


# --------------------------------------------------------------------------- ${ENV}


def test_env_variable_is_substituted(tmp_path: Path) -> None:
    text = MINIMAL.rstrip() + "\n  poll_interval: ${POLL}\n  services: ['${SVC}', sso]\n"
    config = load(tmp_path, text, {"POLL": "15s", "SVC": "radius"})
    assert config.source.poll_interval == timedelta(seconds=15)
    assert config.source.services == ["radius", "sso"]


def test_unquoted_reference_in_flow_style_says_to_quote_it(tmp_path: Path) -> None:
    text = MINIMAL + "channels:\n  oncall: {type: slack, webhook_url: ${SLACK_WEBHOOK_URL}}\n"
    (line,) = problems(tmp_path, text)
    assert line.startswith(f"{tmp_path / 'config.yaml'}:4:")
    assert "invalid YAML" in line
    assert line.endswith("inside [...] or {...} quote a ${VAR} value: '${VAR}'")
    quoted = text.replace("${SLACK_WEBHOOK_URL}", "'${SLACK_WEBHOOK_URL}'")
    config = load(tmp_path, quoted, {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/x"})
    assert isinstance(config.channels["oncall"], SlackChannel)


def test_missing_env_variable_names_variable_key_and_place(tmp_path: Path) -> None:
    text = (
        "source:\n  kind: jumpcloud\n  api_key: ${JUMPCLOUD_API_KEY}\n"
        "channels:\n  hook: {type: webhook, url: 'https://${SIEM_HOST}/x'}\n"
    )
    path = tmp_path / "config.yaml"
    lines = problems(tmp_path, text)
    assert lines == [
        f"{path}:{at(text, '${JUMPCLOUD')}: source.api_key: environment variable "
        "JUMPCLOUD_API_KEY is not set (export it, or write ${JUMPCLOUD_API_KEY:-} to make "
        "it optional)",
        f"{path}:{at(text, chr(39) + 'https')}: channels.hook.url: environment variable "
        "SIEM_HOST is not set (export it, or write ${SIEM_HOST:-} to make it optional)",
    ]


def test_env_default_applies_when_unset_or_empty(tmp_path: Path) -> None:
    text = "source:\n  kind: simulator\n  lag: ${LAG:-30s}\n  overlap: ${OVERLAP:-7m}\n"
    config = load(tmp_path, text, {"OVERLAP": ""})
    assert config.source.lag == timedelta(seconds=30)
    assert config.source.overlap == timedelta(minutes=7)
    config = load(tmp_path, text, {"LAG": "1m", "OVERLAP": "2m"})
    assert (config.source.lag, config.source.overlap) == (
        timedelta(minutes=1),
        timedelta(minutes=2),
    )


def test_optional_empty_org_id_and_api_key_mean_none(tmp_path: Path) -> None:
    text = (
        "source:\n  kind: jumpcloud\n  api_key: ${JUMPCLOUD_API_KEY}\n"
        "  org_id: ${JUMPCLOUD_ORG_ID:-}\n"
    )
    config = load(tmp_path, text, {"JUMPCLOUD_API_KEY": "k" * 40})
    assert config.source.org_id == []
    config = load(tmp_path, text, {"JUMPCLOUD_API_KEY": "k" * 40, "JUMPCLOUD_ORG_ID": "abc123"})
    assert config.source.org_id == ["abc123"]


def test_dollar_dollar_escapes_a_literal_reference(tmp_path: Path) -> None:
    text = MINIMAL + "channels:\n  c:\n    type: webhook\n    url: https://x.example/hook\n"
    text += "    headers: {X-Literal: '$${NOT_A_VAR} and pa$$word'}\n"
    config = load(tmp_path, text)
    hook = config.channels["c"]
    assert isinstance(hook, WebhookChannel)
    assert hook.headers == {"X-Literal": "${NOT_A_VAR} and pa$$word"}


def test_substitution_happens_in_values_never_in_yaml_text(tmp_path: Path) -> None:
    """A variable holding YAML syntax stays one string; comments are not data."""
    text = (
        "source:\n  kind: simulator\n  # api_key: ${NEVER_SET}\n"
        "channels:\n  c: {type: file, path: '${P}'}\n"
    )
    config = load(tmp_path, text, {"P": "x.jsonl\nrouting: {evil: true}"})
    channel = config.channels["c"]
    assert isinstance(channel, FileChannel)
    assert channel.path.endswith("x.jsonl\nrouting: {evil: true}")


def test_malformed_reference_is_an_error(tmp_path: Path) -> None:
    text = "source:\n  kind: simulator\n  lag: ${1BAD}\n  overlap: ${OPEN\n"
    lines = problems(tmp_path, text)
    assert f":{at(text, '${1BAD')}: source.lag: invalid variable reference '${{1BAD}}'" in lines[0]
    assert f":{at(text, '${OPEN')}: source.overlap: unterminated '${{'" in lines[1]


# --------------------------------------------------------------------------- *_file secrets


def test_secret_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "jc").write_text("jc-key-from-file\n")
    text = "source:\n  kind: jumpcloud\n  api_key_file: secrets/jc\n"
    config = load(tmp_path, text)
    assert config.source.api_key is not None
    assert config.source.api_key.get_secret_value() == "jc-key-from-file"


def test_secret_file_path_can_come_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "slack").write_text("https://hooks.slack.com/services/T/B/C\r\n")
    text = MINIMAL + "channels:\n  s: {type: slack, webhook_url_file: '${SECRETS}/slack'}\n"
    config = load(tmp_path, text, {"SECRETS": str(tmp_path)})
    slack = config.channels["s"]
    assert isinstance(slack, SlackChannel)
    assert slack.webhook_url is not None
    assert slack.webhook_url.get_secret_value() == "https://hooks.slack.com/services/T/B/C"


def test_unreadable_secret_file_is_located(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    text = (
        MINIMAL
        + "channels:\n  mail:\n    type: email\n    host: smtp.example.com\n"
        + "    from: a@example.com\n    to: b@example.com\n    password_file: /no/such/file\n"
        + "  hook: {type: webhook, url: 'https://x.example', secret_file: empty}\n"
    )
    lines = problems(tmp_path, text)
    assert lines == [
        f"{tmp_path / 'config.yaml'}:{at(text, '/no/such')}: channels.mail.password_file: "
        "secret file '/no/such/file' cannot be read: No such file or directory",
        f"{tmp_path / 'config.yaml'}:{at(text, 'empty}')}: channels.hook.secret_file: "
        f"secret file '{tmp_path / 'empty'}' is empty",
    ]


def test_unset_variable_in_a_secret_file_path_is_reported_once(tmp_path: Path) -> None:
    text = "source:\n  kind: jumpcloud\n  api_key_file: ${SECRETS_DIR}/jc\n"
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        f":{at(text, '${SECRETS')}: source.api_key_file: environment variable SECRETS_DIR is "
        "not set (export it, or write ${SECRETS_DIR:-} to make it optional)"
    )


def test_both_secret_and_secret_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("xoxb-file")
    text = (
        MINIMAL + "channels:\n  s:\n    type: slack\n    channel: '#sec'\n"
        "    token: xoxb-inline-value\n    token_file: tok\n"
    )
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        f":{at(text, 'token_file')}: channels.s.token_file: set either token or token_file, "
        "not both"
    )
    assert "xoxb" not in line


# --------------------------------------------------------------------------- secrets stay secret


def test_secrets_never_appear_in_errors(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-secret-5678")
    text = (
        "source:\n  kind: jumpcloud\n  api_key: inline-secret-1234\n  bearer_token: ${TOKEN}\n"
        "channels:\n"
        "  oncall: ${SLACK_WEBHOOK_URL}\n"  # a secret where a mapping belongs
        "  mail:\n    type: email\n    host: h\n    port: notaport\n"
        "    from: a@b\n    to: [c@d]\n    password_file: pw\n    tls: true\n"
    )
    env = {"TOKEN": "env-token-abcd", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/SECRETPATH"}
    lines = problems(tmp_path, text, env)
    output = "\n".join(lines)
    assert len(lines) >= 3  # api_key+bearer_token, oncall, port, tls+starttls
    for secret in ("inline-secret-1234", "env-token-abcd", "SECRETPATH", "file-secret-5678"):
        assert secret not in output
    assert "set only one of api_key or bearer_token" in output


def test_secrets_never_appear_in_repr_or_dump(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-secret-5678")
    text = (
        "source:\n  kind: jumpcloud\n  api_key: ${KEY}\n"
        "channels:\n  mail: {type: email, host: h, from: a@b, to: c@d, password_file: pw}\n"
        "  hook: {type: webhook, url: 'https://x.example', secret: inline-hmac-secret}\n"
        "routes: [{channels: [mail, hook]}]\n"
    )
    config = load(tmp_path, text, {"KEY": "env-api-key-9999"})
    shown = repr(config) + str(config) + config.model_dump_json() + repr(config.model_dump())
    for secret in ("env-api-key-9999", "file-secret-5678", "inline-hmac-secret"):
        assert secret not in shown
    assert config.source.api_key is not None
    assert config.source.api_key.get_secret_value() == "env-api-key-9999"


# --------------------------------------------------------------------------- source checks


def test_jumpcloud_needs_credentials_and_says_which(tmp_path: Path) -> None:
    text = "source:\n  kind: jumpcloud\n"
    (line,) = problems(tmp_path, text)
    assert f":{at(text, 'kind')}: source: kind jumpcloud needs credentials" in line
    assert "JUMPCLOUD_API_KEY" in line


def test_bearer_token_needs_an_org_id(tmp_path: Path) -> None:
    text = "source:\n  kind: jumpcloud\n  bearer_token: tok-1234567\n"
    (line,) = problems(tmp_path, text)
    assert "bearer_token (service account) needs org_id" in line
    config = load(tmp_path, text + "  org_id: [org-a, org-b]\n")
    assert config.source.org_id == ["org-a", "org-b"]


def test_file_source_needs_a_path_resolved_against_the_config(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "source: {kind: file}\n")
    assert "kind file needs path" in line
    config = load(tmp_path, "source: {kind: file, path: data/events.jsonl}\n")
    assert config.source.path == tmp_path / "data" / "events.jsonl"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://api.eu.jumpcloud.com/", "https://api.eu.jumpcloud.com"),
        ("eu", "https://api.eu.jumpcloud.com"),
        ("IN", "https://api.in.jumpcloud.com"),
        ("http://127.0.0.1:8089", "http://127.0.0.1:8089"),
        ("http://localhost:8089/", "http://localhost:8089"),
    ],
)
def test_base_url_forms(tmp_path: Path, value: str, expected: str) -> None:
    config = load(tmp_path, f"source: {{kind: simulator, base_url: '{value}'}}\n")
    assert config.source.base_url == expected


@pytest.mark.parametrize("value", ["http://api.jumpcloud.com", "api.jumpcloud.com", "ftp://x"])
def test_base_url_must_be_https_off_loopback(tmp_path: Path, value: str) -> None:
    (line,) = problems(tmp_path, f"source: {{kind: simulator, base_url: '{value}'}}\n")
    assert "must be an https:// URL" in line
    assert "api.eu.jumpcloud.com" in line


def test_request_deadline_defaults_to_the_timeout_and_must_cover_it(tmp_path: Path) -> None:
    assert load(tmp_path, MINIMAL).source.request_deadline is None  # = source.timeout
    config = load(tmp_path, "source: {kind: simulator, timeout: 10s, request_deadline: 2m}\n")
    assert config.source.request_deadline == timedelta(minutes=2)
    text = "source:\n  kind: simulator\n  timeout: 10s\n  request_deadline: 5s\n"
    (line,) = problems(tmp_path, text)
    assert line == (
        f"{tmp_path / 'config.yaml'}:{at(text, '5s')}: source.request_deadline: "
        "request_deadline (5s) is shorter than timeout (10s), which bounds each connect and "
        "read of the same request: make it at least the timeout, or leave it out (it is then "
        "the timeout)"
    )
    (line,) = problems(tmp_path, "source: {kind: simulator, request_deadline: 0s}\n")
    assert "source.request_deadline: request_deadline must be longer than 0s" in line


def test_poll_interval_must_be_positive_and_numbers_are_seconds(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "source: {kind: simulator, poll_interval: 0s}\n")
    assert "source.poll_interval: poll_interval must be longer than 0s" in line
    config = load(tmp_path, "source: {kind: simulator, poll_interval: 90, overlap: 0s}\n")
    assert config.source.poll_interval == timedelta(seconds=90)
    assert config.source.overlap == timedelta(0)


def test_services_accept_one_name_or_a_list(tmp_path: Path) -> None:
    config = load(tmp_path, "source: {kind: simulator, services: Directory}\n")
    assert config.source.services == ["directory"]
    (line,) = problems(tmp_path, "source: {kind: simulator, services: []}\n")
    assert "source.services" in line


# --------------------------------------------------------------------------- server


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9000", ("::1", 9000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9108", ":9108", "host:", "host:99999", "::1:80", "[::1]80"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"host:port|valid port|no host"):
        parse_listen(text)


def test_listen_as_a_bare_port_says_to_add_the_host(tmp_path: Path) -> None:
    text = MINIMAL + "server: {listen: 9108}\n"
    (line,) = problems(tmp_path, text)
    assert line.endswith(
        f":{at(text, '9108')}: server.listen: listen 9108 needs a host too: write 127.0.0.1:9108"
    )


# --------------------------------------------------------------------------- routes, paths


def test_route_to_unknown_channel_suggests_the_defined_one(tmp_path: Path) -> None:
    text = MINIMAL + (
        "channels:\n  security-email: {type: console}\n  console: {type: console}\n"
        "routes:\n  - channels: [console, security-mail]\n  - channels: slack\n"
    )
    lines = problems(tmp_path, text)
    assert lines[0].endswith(
        f":{at(text, 'security-mail]')}: routes.0.channels: unknown channel 'security-mail' "
        "(did you mean 'security-email'?) (defined: security-email, console)"
    )
    assert f":{at(text, 'slack')}: routes.1.channels: unknown channel 'slack'" in lines[1]


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = (
        "source: {kind: simulator}\nstate: {path: var/db.sqlite}\n"
        "rules: {paths: [rules, /abs/rules]}\ntemplates: {path: ../tpl}\n"
        "channels:\n  f: {type: file, path: out/alerts.jsonl}\n"
        "  m: {type: email, host: h, from: a@b, to: c@d, ca_file: ca.pem}\n"
        "  w: {type: webhook, url: 'https://x.example', ca_file: /etc/ssl/ca.pem}\n"
        "routes: [{channels: [f, m, w]}]\n"
    )
    (conf_dir / "config.yaml").write_text(text)
    config = load_config(Path("..") / "etc" / "config.yaml", environ={})
    base = (elsewhere / ".." / "etc").absolute()
    assert config.base_dir == base
    assert config.state.path == base / "var" / "db.sqlite"
    assert config.rules.paths == [base / "rules", Path("/abs/rules")]
    assert config.templates.path == base / ".." / "tpl"
    f, m, w = config.channels["f"], config.channels["m"], config.channels["w"]
    assert isinstance(f, FileChannel)
    assert f.path == str(base / "out" / "alerts.jsonl")
    assert isinstance(m, EmailChannel)
    assert m.ca_file == str(base / "ca.pem")
    assert isinstance(w, WebhookChannel)
    assert w.ca_file == "/etc/ssl/ca.pem"
    assert config.state.path.is_absolute()


# --------------------------------------------------------------------------- warnings, notes


def test_expired_silence_is_a_located_warning(tmp_path: Path) -> None:
    text = MINIMAL + (
        "silences:\n"
        "  - match: {rule: [login-without-mfa]}\n    until: 2026-01-01T00:00:00Z\n"
        "    reason: svc account\n    owner: bob\n"
        "  - match: {rule: [failed-login-burst]}\n    until: 2026-03-01T00:00:00Z\n"
        "    reason: pen test\n    owner: carol\n"
    )
    config = load(tmp_path, text)
    now = datetime(2026, 2, 1, tzinfo=UTC)
    warnings = [str(w) for w in config_warnings(config, now)]
    assert warnings == [
        f"{tmp_path / 'config.yaml'}:{at(text, 'match')}: silence for rule login-without-mfa "
        "expired 2026-01-01 (owner bob): remove it"
    ]
    assert len(config_warnings(config, datetime(2026, 3, 2, tzinfo=UTC))) == 2


def test_route_after_a_catch_all_is_flagged(tmp_path: Path) -> None:
    text = MINIMAL + (
        "channels: {a: {type: console}, b: {type: console}}\n"
        "routes:\n  - channels: [a]\n  - match: {severity: high}\n    channels: [b]\n"
    )
    config = load(tmp_path, text)
    (warning,) = config_warnings(config, datetime(2026, 1, 1, tzinfo=UTC))
    assert "routes.1 is never used" in str(warning)
    assert str(warning.location).endswith(f":{at(text, 'match')}")
    # With continue: true the second route is reachable.
    config = load(
        tmp_path, text.replace("  - channels: [a]\n", "  - {channels: [a], continue: true}\n")
    )
    assert config_warnings(config, datetime(2026, 1, 1, tzinfo=UTC)) == []


def test_unused_channel_is_a_note_not_an_error(tmp_path: Path) -> None:
    text = MINIMAL + (
        "channels:\n  console: {type: console}\n  spare: {type: console}\n"
        "routes: [{channels: [console]}]\n"
    )
    config = load(tmp_path, text)
    assert config.unused_channels() == ["spare"]
    (note,) = config_notes(config)
    assert (
        str(note)
        == f"{tmp_path / 'config.yaml'}:{at(text, 'spare')}: channel 'spare' is used by no route"
    )


def test_public_listen_address_gets_a_note(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL + "server: {listen: '0.0.0.0:9108'}\n")
    (note,) = config_notes(config)
    assert "beyond this machine" in note.message


def test_incident_settings_are_validated_where_written(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + "channels:\n  console: {type: console}\n"
        + "routes:\n  - channels: [console]\n    incidents: sometimes\n"
        + "delivery:\n  incidents:\n    window: 0s\n    group_wiat: 1m\n"
    )
    lines = problems(tmp_path, text)
    assert len(lines) == 3
    assert f":{at(text, 'sometimes')}: routes.0.incidents:" in lines[0]
    assert "boolean" in lines[0]
    assert lines[1].endswith(
        f":{at(text, '0s')}: delivery.incidents.window: window must be longer than 0s, e.g. 30m"
    )
    assert lines[2].endswith(
        f":{at(text, 'group_wiat')}: unknown key 'group_wiat' (did you mean 'group_wait'?)"
    )


def test_incident_defaults(tmp_path: Path) -> None:
    text = MINIMAL + "channels:\n  x: {type: console}\nroutes:\n  - channels: [x]\n"
    config = load(tmp_path, text)
    assert config.routes[0].incidents is None  # decided by the channel's type
    incidents = config.delivery.incidents
    assert (incidents.window, incidents.group_wait, incidents.group_interval) == (
        timedelta(minutes=30),
        timedelta(minutes=2),
        timedelta(minutes=5),
    )
