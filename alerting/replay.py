"""Placeholder until this command lands."""

import argparse

from alerting.errors import AlertingError


def main(args: argparse.Namespace) -> int:
    raise AlertingError(f"`alerting {args.command}` is not available in this build yet")
