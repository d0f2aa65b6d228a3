"""``alerting run [--config F] [--once]``: logging, signals and the service's lifetime."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from alerting.commands.common import config_path
from alerting.config import load_config
from alerting.logs import choose_format, setup_logging
from alerting.service import Service

log = logging.getLogger("alerting.service")


@contextlib.contextmanager
def _signals(service: Service) -> Iterator[None]:
    """SIGTERM/SIGINT ask the service to stop; a second one forces an immediate exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count > 1:
            sys.stderr.write("alerting run: stopping now (second signal)\n")
            os._exit(130)
        log.info("received %s", signal.Signals(signum).name)
        service.request_stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(args: argparse.Namespace) -> int:
    """``alerting run [--config F] [--once]``."""
    return run(config_path(args), once=args.once, log_level=args.log_level)


def run(config_path: str, *, once: bool, log_level: str | None = None) -> int:
    """Load the config, set up logging, run the service until a signal (or one poll).

    ``log_level`` (``--log-level``/``-v``/``-q``) overrides the config's ``logging.level``.
    """
    config = load_config(config_path)
    level = log_level or config.logging.level
    setup_logging(level=level, fmt=config.logging.format, secrets=config.secrets())
    if level != "debug":
        # The poll line carries the poller's counts; its own INFO line would repeat them.
        logging.getLogger("alerting.source.jumpcloud").setLevel(logging.WARNING)
    # The banner is for a person at a terminal; JSON logs get the "started" record instead.
    readable = choose_format(config.logging.format, sys.stderr) == "text"
    banner = sys.stderr if readable and not once else None
    service = Service.from_config(config, config_path=config_path, banner=banner)
    with _signals(service):
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
