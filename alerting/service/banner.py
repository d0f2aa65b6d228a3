"""The start-up banner for a person at a terminal, and the "started" log record."""

from __future__ import annotations

import logging
from typing import IO

from alerting import __version__
from alerting.config import Config
from alerting.durations import format_duration_ns, td_ns

__all__ = ["announce"]

log = logging.getLogger("alerting.service")


def announce(
    config: Config,
    *,
    config_path: str,
    source_name: str,
    source_description: str,
    rules: int,
    server_url: str,
    out: IO[str] | None,
) -> None:
    """Say where it polls, where health and metrics are, and how to use a real org."""
    src = config.source
    channels = ", ".join(sorted(config.channels)) or "none"
    lines = [
        f"jc-alerting {__version__}: watching {source_description}",
        f"  polling every {format_duration_ns(td_ns(src.poll_interval))} "
        f"(lag {format_duration_ns(td_ns(src.lag))}, overlap {format_duration_ns(td_ns(src.overlap))}, "
        f"first run reads the last {format_duration_ns(td_ns(src.start_from))})",
        f"  rules: {rules} loaded from {', '.join(str(p) for p in config.rules.paths)}",
        f"  channels: {channels}",
        f"  health: {server_url}/healthz   metrics: {server_url}/metrics",
        f"  state: {config.state.path}",
    ]
    if str(src.kind) == "simulator":
        lines.append(
            "  To watch a real JumpCloud org: set source.kind: jumpcloud in "
            f"{config_path} and export JUMPCLOUD_API_KEY=<an admin API key>."
        )
    lines.append("  Stop with Ctrl-C (or SIGTERM); SIGHUP rereads config, rules and templates.")
    if out is not None:
        out.write("\n".join(lines) + "\n")
        out.flush()
    log.info(
        "started",
        extra={
            "version": __version__,
            "source": source_name,
            "rules": rules,
            "health_url": f"{server_url}/healthz",
            "metrics_url": f"{server_url}/metrics",
            "state": str(config.state.path),
        },
    )
