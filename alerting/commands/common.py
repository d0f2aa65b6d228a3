"""What several commands share: which config file, and which rules directories.

A config is "present" when ``--config`` names one or ``config.yaml`` exists in the
current directory; then ``test``, ``replay`` and ``rules list`` use its ``rules.paths``,
as ``validate`` and ``run`` do, instead of a bare ``rules`` directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alerting.config import Config, load_config

DEFAULT_CONFIG = "config.yaml"


def config_path(args: argparse.Namespace) -> str:
    """``--config``, else ``config.yaml``."""
    path: str | None = getattr(args, "config", None)
    return path or DEFAULT_CONFIG


def present_config(args: argparse.Namespace) -> Config | None:
    """The config when one is present (loaded without needing secrets), else ``None``."""
    given: str | None = getattr(args, "config", None)
    if given is None and not Path(DEFAULT_CONFIG).is_file():
        return None
    return load_config(given or DEFAULT_CONFIG, need_secrets=False)


def placeholders(args: argparse.Namespace) -> dict[str, list[str]] | None:
    """The present config's Sigma ``placeholders``, for rules loaded beside it."""
    config = present_config(args)
    return None if config is None else dict(config.placeholders)


def rules_dirs(args: argparse.Namespace) -> list[Path]:
    """``--rules``, else the present config's ``rules.paths``, else ``rules``."""
    if getattr(args, "rules", None):
        return [Path(d) for d in args.rules]
    config = present_config(args)
    if config is not None:
        return list(config.rules.paths)
    return [Path("rules")]
