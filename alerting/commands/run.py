"""``alerting run [--config F] [--once]``: logging, signals and the service's lifetime."""

from __future__ import annotations

import argparse
import logging
import sys

from alerting.commands.common import config_path
from alerting.config import load_config
from alerting.errors import AlertingError
from alerting.logs import choose_format, setup_logging
from alerting.service import Service
from alerting.service.signals import handle_signals

log = logging.getLogger("alerting.service")


def main(args: argparse.Namespace) -> int:
    """``alerting run [--config F] [--once | --dry-run]``."""
    if getattr(args, "dry_run", False):
        if args.once:
            raise AlertingError("--dry-run already polls once: drop --once")
        from alerting.commands.dry_run import dry_run

        return dry_run(config_path(args))
    return run(config_path(args), once=args.once, log_level=args.log_level)


def run(config_path: str, *, once: bool, log_level: str | None = None) -> int:
    """Load the config, set up logging, run the service until a signal (or one poll).

    ``log_level`` (``--log-level``/``-v``/``-q``) overrides the config's ``logging.level``.
    """
    config = load_config(config_path)
    level = log_level or config.logging.level
    setup_logging(level=level, fmt=config.logging.format, secrets=config.secrets())
    if level != "debug":
        # The poll line carries the sources' counts; their own INFO lines would repeat them.
        logging.getLogger("alerting.source").setLevel(logging.WARNING)
    # The banner is for a person at a terminal; JSON logs get the "started" record instead.
    readable = choose_format(config.logging.format, sys.stderr) == "text"
    banner = sys.stderr if readable and not once else None
    service = Service.from_config(config, config_path=config_path, banner=banner)
    with handle_signals(service, reload=not once):
        try:
            service.open(serve=not once)
            if once:
                return service.run_once()
            service.banner()
            if service.stopping:
                return 0
            return service.run()
        finally:
            service.close()
