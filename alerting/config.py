"""The configuration file: one typed model, ``${ENV}`` substitution, ``*_file`` secrets.

``load_config`` reads ``config.yaml`` safely (``alerting.yamlfile``), substitutes
``${VAR}`` / ``${VAR:-default}`` inside string values (never in the raw text, so a value
can never inject YAML and columns never shift), reads ``*_file`` secrets, validates the
whole file against ``Config`` and runs the cross checks, collecting every problem as
``file:line:col: message`` before raising one ``ConfigError``. Relative paths are resolved
against the config file's directory, so the service behaves the same from any cwd.
Secret values never appear in errors or reprs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from alerting.durations import Duration
from alerting.errors import ConfigError, Location, Problem, ValidationFailed
from alerting.netutil import is_loopback_host
from alerting.notify.settings import (
    ChannelConfig,
    DeliveryConfig,
    EmailChannel,
    FileChannel,
    NotifySettings,
    RouteConfig,
    SilenceConfig,
    SlackChannel,
    WebhookChannel,
)
from alerting.notify.silences import expired_silences
from alerting.redact import SECRET_KEYS, mask, maskable, secret_values
from alerting.source.settings import SourceConfig
from alerting.timeintervals import NamedTimeInterval, TimeInterval, by_name
from alerting.yamlfile import (
    PathKey,
    YamlDocument,
    load_yaml,
    one_or_many,
    positive,
    pydantic_problems,
    suggest,
)

__all__ = [
    "Config",
    "LoggingConfig",
    "RulesConfig",
    "ServerConfig",
    "StateConfig",
    "TemplatesConfig",
    "channel_template_problems",
    "config_notes",
    "config_warnings",
    "load_config",
    "parse_listen",
]

_FILE_KEYS = {f"{k}_file": k for k in SECRET_KEYS}

MAX_SECRET_FILE_BYTES = 64 * 1024
_SECRETISH_VAR = re.compile(r"KEY|TOKEN|SECRET|PASSW|WEBHOOK|CREDENTIAL|AUTH", re.IGNORECASE)
# Stands in for a secret that could not be read, so no "missing key" error piles on.
_PLACEHOLDER = "unreadable"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- the rest


class StateConfig(_Model):
    """Where the SQLite state (cursor, seen ids, outbox, baselines) lives."""

    path: Path = Path("state/alerting.db")


class RulesConfig(_Model):
    """Directories (or single files) holding the YAML rules."""

    paths: list[Path] = Field(default_factory=lambda: [Path("rules")], min_length=1)

    _paths = field_validator("paths", mode="before")(one_or_many)


class TemplatesConfig(_Model):
    """The directory of Jinja notification templates."""

    path: Path = Path("templates")


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9108`` for IPv6) -> ``(host, port)``; ``ValueError`` if not."""
    hint = "write host:port, e.g. 127.0.0.1:9108"
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"listen {value!r} is not host:port: {hint} or [::1]:9108")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"listen {value!r} is not host:port: {hint}")
    if not host:
        raise ValueError(f"listen {value!r} has no host: {hint}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen {value!r} has no valid port (0-65535): {hint}")
    return host, int(port_text)


class ServerConfig(_Model):
    """The loopback health/metrics endpoint."""

    listen: str = "127.0.0.1:9108"
    health_max_age: Duration | None = None  # None = 3 x source.poll_interval

    @field_validator("listen", mode="before")
    @classmethod
    def _listen(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"listen {value} needs a host too: write 127.0.0.1:{value}")
        if isinstance(value, str):
            host, port = parse_listen(value)
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return value

    @field_validator("health_max_age")
    @classmethod
    def _age_positive(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else positive("health_max_age", value)

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


class LoggingConfig(_Model):
    """Log level and format (auto = text on a terminal, JSON lines otherwise)."""

    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["auto", "json", "text"] = "auto"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class Config(_Model):
    """The whole configuration file, validated, with paths resolved.

    Build it with ``load_config``; ``path`` is the file, ``base_dir`` its directory.
    """

    source: SourceConfig
    state: StateConfig = Field(default_factory=StateConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    silences: list[SilenceConfig] = Field(default_factory=list)
    # Alertmanager-style named intervals that routes and silences refer to.
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    # Values of the rules' ``field|expand: '%name%'`` placeholders (Sigma).
    placeholders: dict[str, list[str]] = Field(default_factory=dict)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    _path: Path = PrivateAttr(default=Path("config.yaml"))
    _marks: YamlDocument | None = PrivateAttr(default=None)

    @field_validator("channels", "routes", "silences", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any, info: ValidationInfo) -> Any:
        """``silences:`` with nothing after it means none, not an error."""
        if value is None:
            return {} if info.field_name == "channels" else []
        return value

    @property
    def path(self) -> Path:
        """The configuration file this was loaded from (absolute)."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the file are resolved against."""
        return self._path.parent

    @property
    def health_max_age(self) -> timedelta:
        """How old the last successful poll may be before /healthz says 503."""
        return self.server.health_max_age or 3 * self.source.poll_interval

    def locate(self, *path: str | int, key: bool = False) -> Location:
        """Where ``path`` (e.g. ``"silences", 0``) is written in the file."""
        if self._marks is None:
            return Location(str(self._path))
        return self._marks.locate(tuple(path), key=key)

    def used_channels(self) -> set[str]:
        return {name for route in self.routes for name in route.channels}

    def unused_channels(self) -> list[str]:
        """Channels defined but named by no route (not an error; ``validate`` notes them)."""
        used = self.used_channels()
        return [name for name in self.channels if name not in used]

    @property
    def intervals(self) -> dict[str, list[TimeInterval]]:
        """``time_intervals`` by name, for routes and silences."""
        return by_name(self.time_intervals)

    def expired_silences(self, now: datetime) -> list[tuple[int, SilenceConfig]]:
        """``(index, silence)`` for silences whose ``until`` has passed (index: for locating)."""
        expired = {id(s) for s in expired_silences(self.silences, now.timestamp())}
        return [(i, s) for i, s in enumerate(self.silences) if id(s) in expired]

    def notify_settings(self) -> NotifySettings:
        """The notify stage's part of the configuration (notify never sees the Config)."""
        return NotifySettings(
            channels=self.channels,
            routes=self.routes,
            silences=self.silences,
            delivery=self.delivery,
            templates_dir=self.templates.path,
            time_intervals=self.intervals,
            console_url=self.source.console_url,
        )

    def secrets(self) -> set[str]:
        """Every secret value in the configuration, for log redaction."""
        return secret_values(self)


# --------------------------------------------------------------------------- ${ENV}

_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def _dotted(path: PathKey) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _substitute(
    text: str, environ: Mapping[str, str], where: str
) -> tuple[str, list[str], list[str]]:
    """Expand ``${VAR}``/``${VAR:-default}`` and ``$${`` in one string.

    Returns the new text, the problem messages, and the names of the variables used.
    A missing variable leaves the reference in place so later checks do not pile on.
    """
    problems: list[str] = []
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":  # noqa: S105 - the escape for a literal "${", not a secret
            return "${"
        body = match.group("body")
        if body is None:
            problems.append(
                f"{where}: unterminated '${{' (no closing '}}'): write ${{NAME}}, "
                "or $${ for a literal '${'"
            )
            return token
        ref = _BODY.fullmatch(body)
        if ref is None:
            problems.append(
                f"{where}: invalid variable reference {token!r}: write ${{NAME}} or "
                "${NAME:-default}, or $${ for a literal '${'"
            )
            return token
        name, default = ref.group("name"), ref.group("default")
        used.append(name)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            problems.append(
                f"{where}: environment variable {name} is not set (export it, or write "
                f"${{{name}:-}} to make it optional)"
            )
            return token
        return value

    return _REFERENCE.sub(replace, text), problems, used


def _walk_strings(data: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, Any, str | int]]:
    """``(parent_path, container, key)`` for every string value (not mapping keys)."""
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return
    for key, value in items:
        if isinstance(value, str):
            yield path, data, key
        else:
            yield from _walk_strings(value, (*path, key))


def _substitute_env(
    doc: YamlDocument, environ: Mapping[str, str], secrets: set[str], *, need_secrets: bool = True
) -> list[Problem]:
    """Substitute variables in every string value of ``doc.data``, in place.

    ``need_secrets=False``: a secret value whose variable is unset becomes a placeholder
    instead of an error (commands that only read the state database need no secrets).
    """
    problems: list[Problem] = []
    for parent, container, key in list(_walk_strings(doc.data)):
        text = container[key]
        if "${" not in text:
            continue
        path = (*parent, key)
        new, messages, names = _substitute(text, environ, _dotted(path))
        if messages and not need_secrets and key in SECRET_KEYS:
            container[key] = _PLACEHOLDER
            continue
        problems.extend(doc.problem(path, m) for m in messages)
        container[key] = new
        if key in SECRET_KEYS or any(_SECRETISH_VAR.search(n) for n in names):
            secrets.update(environ[n] for n in names if environ.get(n))
        if key in SECRET_KEYS and not messages:
            secrets.add(new)
    return problems


# --------------------------------------------------------------------------- *_file


def _read_secret(path: Path) -> str:
    """The file's text without its trailing newline; ``ValueError`` saying why not."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SECRET_FILE_BYTES + 1)
    except IsADirectoryError:
        raise ValueError("is a directory, not a file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"is over {MAX_SECRET_FILE_BYTES} bytes: is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        raise ValueError("is empty")
    return text


def _mappings(data: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, dict[Any, Any]]]:
    if isinstance(data, dict):
        yield path, data
        for key, value in data.items():
            yield from _mappings(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _mappings(value, (*path, i))


def _read_secret_files(
    doc: YamlDocument,
    base_dir: Path,
    secrets: set[str],
    failed: set[Location],
    *,
    need_secrets: bool = True,
) -> list[Problem]:
    """Replace each ``x_file: path`` by ``x: <file content>``, in place.

    ``failed`` holds places already reported (an unset variable in the path): not re-read.
    """
    problems: list[Problem] = []
    for path, mapping in list(_mappings(doc.data)):
        for file_key, key in _FILE_KEYS.items():
            if file_key not in mapping:
                continue
            where = (*path, file_key)
            name = mapping.pop(file_key)
            if key in mapping:
                problems.append(
                    doc.problem(
                        where,
                        f"{_dotted(where)}: set either {key} or {file_key}, not both",
                        key=True,
                    )
                )
                continue
            if not isinstance(name, str) or not name.strip():
                problems.append(
                    doc.problem(where, f"{_dotted(where)}: expected the path of a file")
                )
                continue
            if doc.locate(where) in failed:
                mapping[key] = _PLACEHOLDER
                continue
            file_path = _resolve(base_dir, name)
            try:
                mapping[key] = _read_secret(file_path)
            except ValueError as exc:
                mapping[key] = _PLACEHOLDER
                if not need_secrets:
                    continue
                problems.append(
                    doc.problem(where, f"{_dotted(where)}: secret file '{file_path}' {exc}")
                )
                continue
            secrets.add(mapping[key])
            # Errors about the value point at the *_file line.
            target = (*path, key)
            if where in doc.value_marks:
                doc.value_marks[target] = doc.value_marks[where]
            if where in doc.key_marks:
                doc.key_marks[target] = doc.key_marks[where]
    return problems


# --------------------------------------------------------------------------- checks


def _resolve(base_dir: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def _route_problems(doc: YamlDocument) -> list[Problem]:
    """Routes naming a channel that is not defined (checked on the raw data, so this is
    reported even when other parts of the file are invalid)."""
    data = doc.data
    channels = data.get("channels")
    names = [str(n) for n in channels] if isinstance(channels, dict) else []
    routes = data.get("routes")
    if not isinstance(routes, list):
        return []
    problems = []
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        targets = route.get("channels")
        paths: list[PathKey]
        if isinstance(targets, str):
            targets, paths = [targets], [("routes", i, "channels")]
        elif isinstance(targets, list):
            paths = [("routes", i, "channels", j) for j in range(len(targets))]
        else:
            continue
        for target, where in zip(targets, paths, strict=True):
            if isinstance(target, str) and target not in names:
                defined = ", ".join(names) if names else "none"
                problems.append(
                    doc.problem(
                        where,
                        f"routes.{i}.channels: unknown channel {target!r}"
                        f"{suggest(target, names)} (defined: {defined})",
                    )
                )
    return problems


def _interval_problems(doc: YamlDocument) -> list[Problem]:
    """Routes and silences naming a time interval that ``time_intervals`` does not define."""
    data = doc.data
    named = data.get("time_intervals")
    names = (
        [str(n.get("name")) for n in named if isinstance(n, dict)]
        if isinstance(named, list)
        else []
    )
    problems = []
    for section, keys in (
        ("routes", ("mute_time_intervals", "active_time_intervals")),
        ("silences", ("active_time_intervals",)),
    ):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            for key in keys:
                refs = item.get(key)
                listed = refs if isinstance(refs, list) else [refs] if refs is not None else []
                for j, ref in enumerate(listed):
                    if isinstance(ref, str) and ref not in names:
                        where: PathKey = (
                            (section, i, key, j) if isinstance(refs, list) else (section, i, key)
                        )
                        defined = ", ".join(names) if names else "none"
                        problems.append(
                            doc.problem(
                                where,
                                f"{section}.{i}.{key}: unknown time interval {ref!r}"
                                f"{suggest(ref, names)} (defined in time_intervals: {defined})",
                            )
                        )
    return problems


def _resolve_paths(config: Config) -> None:
    """Make every relative path absolute against the config file's directory."""
    base = config.base_dir
    config.state.path = _resolve(base, config.state.path)
    config.rules.paths = [_resolve(base, p) for p in config.rules.paths]
    config.templates.path = _resolve(base, config.templates.path)
    if config.source.path is not None:
        config.source.path = _resolve(base, config.source.path)
    for channel in config.channels.values():
        if isinstance(channel, FileChannel):
            channel.path = str(_resolve(base, channel.path))
        if isinstance(channel, EmailChannel | WebhookChannel) and channel.ca_file:
            channel.ca_file = str(_resolve(base, channel.ca_file))


def _mask(problems: list[Problem], secrets: set[str]) -> list[Problem]:
    """Belt and braces: no secret value survives into a message."""
    values = maskable(secrets)
    if not values:
        return problems
    return [Problem(p.location, mask(p.message, values)) for p in problems]


# --------------------------------------------------------------------------- loading


def _flow_hint(problem: Problem, file: Path) -> Problem:
    """``{a: ${X}}`` is a YAML syntax error (``{`` opens a mapping): say to quote it."""
    line = problem.location.line
    if line is None or not problem.message.startswith("invalid YAML"):
        return problem
    try:
        text = file.read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, UnicodeDecodeError, IndexError):
        return problem
    if "${" not in text:
        return problem
    return Problem(
        problem.location,
        f"{problem.message}; inside [...] or {{...}} quote a ${{VAR}} value: '${{VAR}}'",
    )


def load_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None, need_secrets: bool = True
) -> Config:
    """Load, substitute, validate and cross-check a config file.

    Raises ``ConfigError`` carrying every problem found, each ``file:line:col: message``.
    ``need_secrets=False`` is for commands that never reach a channel or the API
    (``outbox list``, ``silence``, ``rules list``): unset or unreadable secrets are not
    errors there, and the loaded config must not be used to send anything.
    """
    env = os.environ if environ is None else environ
    file = Path(path)
    name = str(path)
    if not file.exists():
        raise ConfigError(
            [
                Problem(
                    Location(name),
                    "config file not found: copy config.yaml from the project or pass --config",
                )
            ]
        )
    if file.is_dir():
        raise ConfigError(
            [Problem(Location(name), "is a directory, not a config file: pass --config FILE")]
        )
    try:
        doc = load_yaml(file)
    except ValidationFailed as exc:
        raise ConfigError([_flow_hint(p, file) for p in exc.problems]) from None
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"{type(doc.data).__name__}"
        raise ConfigError(
            [doc.problem((), f"expected a mapping (key: value) at the top level, got {kind}")]
        )

    base_dir = file.absolute().parent
    secrets = {v for v in secret_values(doc.data) if "${" not in v}
    problems = _substitute_env(doc, env, secrets, need_secrets=need_secrets)
    problems += _read_secret_files(
        doc, base_dir, secrets, {p.location for p in problems}, need_secrets=need_secrets
    )
    problems += _route_problems(doc)
    problems += _interval_problems(doc)

    config: Config | None = None
    try:
        config = Config.model_validate(doc.data)
    except ValidationError as exc:
        # A scalar that already has a substitution problem gets no second message.
        taken = {p.location for p in problems}
        problems += [p for p in pydantic_problems(exc, doc, Config) if p.location not in taken]
    if problems or config is None:
        raise ConfigError(_mask(problems, secrets))

    config._path = file.absolute()
    config._marks = YamlDocument(doc.name, None, doc.value_marks, doc.key_marks)
    _resolve_paths(config)
    if config.server.health_max_age is None:
        config.server.health_max_age = 3 * config.source.poll_interval
    return config


# --------------------------------------------------------------------------- reports


def config_warnings(config: Config, now: datetime) -> list[Problem]:
    """Things that work but are probably wrong: ``validate`` prints them, exit stays 0."""
    warnings: list[Problem] = []
    for i, silence in config.expired_silences(now):
        rules = ", ".join(silence.match.rule) or "any rule"
        warnings.append(
            Problem(
                config.locate("silences", i),
                f"silence for rule {rules} expired {silence.until.date().isoformat()} "
                f"(owner {silence.owner}): remove it",
            )
        )
    src = config.source
    for org in src.org_names:
        if src.org_id and org not in src.org_id:
            warnings.append(
                Problem(
                    config.locate("source", "org_names", org, key=True),
                    f"source.org_names names org {org!r}, which is not in source.org_id"
                    f"{suggest(org, src.org_id)}: no alert will carry that name",
                )
            )
    if config.channels and not config.routes:
        warnings.append(
            Problem(
                config.locate("channels", key=True),
                "no routes: alerts are stored but sent nowhere; add routes: [{channels: [NAME]}]",
            )
        )
    for i, route in enumerate(config.routes):
        catches_all = route.match == type(route.match)()
        if catches_all and not route.continue_ and i + 1 < len(config.routes):
            warnings.append(
                Problem(
                    config.locate("routes", i + 1),
                    f"routes.{i + 1} is never used: routes.{i} before it matches every alert "
                    "and has no 'continue: true'; move the catch-all route last",
                )
            )
            break
    return warnings


def config_notes(config: Config) -> list[Problem]:
    """Information worth a line: unused channels, a non-loopback metrics port."""
    notes = [
        Problem(
            config.locate("channels", name, key=True),
            f"channel {name!r} is used by no route",
        )
        for name in config.unused_channels()
    ]
    host = config.server.host
    if not is_loopback_host(host):
        notes.append(
            Problem(
                config.locate("server", "listen"),
                f"server.listen {config.server.listen} serves /metrics and /healthz beyond "
                "this machine; use 127.0.0.1 unless a firewall protects it",
            )
        )
    return notes


TEMPLATE_SUFFIXES = (".json.j2", ".txt.j2", ".html.j2", ".j2")


def channel_template_problems(config: Config) -> list[Problem]:
    """A channel's ``template:`` must name a file in the templates directory (``validate``
    and a reload check it)."""
    root = config.templates.path
    if not root.is_dir():
        return []  # check_templates reports the missing directory
    available = sorted(
        {p.name for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    )
    problems = []
    for name, channel in config.channels.items():
        if not isinstance(channel, SlackChannel | WebhookChannel) or not channel.template:
            continue
        wanted = [channel.template + s for s in TEMPLATE_SUFFIXES] + [channel.template]
        if not any(w in available for w in wanted):
            stems = sorted({a.split(".", 1)[0] for a in available})
            problems.append(
                Problem(
                    config.locate("channels", name, "template"),
                    f"channels.{name}.template: no template {channel.template!r} in "
                    f"{root}{suggest(channel.template, stems)}",
                )
            )
    return problems
