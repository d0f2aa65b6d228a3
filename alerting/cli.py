"""The ``alerting`` command line: run, validate, test, replay, export, simulate, convert, outbox.

The commands and flags are a stable contract (DESIGN section 8). Each command lives in
its own module; this file parses arguments, dispatches, and turns every ``AlertingError``
into a one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from alerting import __version__
from alerting.errors import AlertingError

EXIT_OK = 0
EXIT_FAILED = 1  # validation errors, failing tests
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alerting",
        description="Security alerting engine for JumpCloud Directory Insights.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the detection service")
    p.add_argument(
        "--config", default="config.yaml", help="configuration file (default: config.yaml)"
    )
    p.add_argument("--once", action="store_true", help="one poll and one delivery pass, then exit")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="one poll on a throwaway copy of the state: print what would be sent where, "
        "send nothing, move no cursor",
    )

    p = sub.add_parser("validate", help="check the config, rules and templates")
    p.add_argument(
        "--config", default="config.yaml", help="configuration file (default: config.yaml)"
    )
    p.add_argument(
        "--rules", action="append", metavar="DIR", help="rules directory (overrides config)"
    )

    p.add_argument(
        "--strict", action="store_true", help="fail (exit 1) on warnings too, not only errors"
    )

    p = sub.add_parser("test", help="run the rules' inline tests")
    p.add_argument(
        "--rules", action="append", metavar="DIR", help="rules directory (default: rules)"
    )
    p.add_argument(
        "--templates",
        default="templates",
        metavar="DIR",
        help="notification templates for `expect.rendered` checks (default: templates)",
    )
    p.add_argument("rule_ids", nargs="*", metavar="RULE_ID", help="only these rules")

    p = sub.add_parser("replay", help="backtest rules over exported events")
    p.add_argument(
        "--events", required=True, metavar="F", help="JSON array or JSONL file, .gz ok, - = stdin"
    )
    p.add_argument(
        "--rules", action="append", metavar="DIR", help="rules directory (default: rules)"
    )
    p.add_argument(
        "--output", metavar="F", help="write alerts as JSONL here (default: stdout summary only)"
    )
    p.add_argument(
        "--notify", action="store_true", help="also deliver alerts through the config's routes"
    )
    p.add_argument(
        "--config", default=None, help="configuration file for --notify (default: config.yaml)"
    )
    p.add_argument(
        "--rule", dest="only_rules", action="append", metavar="RULE_ID", help="only these rules"
    )
    p.add_argument(
        "--summary-json",
        metavar="F",
        help="also write the summary (alerts per rule per day) as JSON",
    )
    p.add_argument(
        "--truth",
        metavar="F",
        help="score the alerts against ground truth (simulate --export F writes F.truth.json)",
    )
    p.add_argument(
        "--jobs",
        type=_jobs,
        metavar="N",
        help="worker processes, the rules spread over them; the same alerts as 1 "
        "(default: every core for inputs of 64 MB and more, else 1)",
    )

    p = sub.add_parser("export", help="write the configured source's events to a file for replay")
    p.add_argument(
        "--config", default="config.yaml", help="configuration file (default: config.yaml)"
    )
    p.add_argument(
        "--since", required=True, metavar="WHEN", help="start: a duration back (7d) or a time"
    )
    p.add_argument(
        "--until", metavar="WHEN", help="end: a duration back (1d) or a time (default: now)"
    )
    p.add_argument(
        "--services",
        nargs="+",
        metavar="SERVICE",
        help="only these DI services (default: the config's source.services)",
    )
    p.add_argument(
        "--output", required=True, metavar="F", help="JSONL file to write (.gz: gzipped)"
    )

    p = sub.add_parser("simulate", help="serve the fake DI API with realistic traffic and attacks")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8089, help="port (default: 8089; 0 = any free port)")
    p.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="attack scenarios to inject (default: all; 'none' for none)",
    )
    p.add_argument(
        "--hours", type=float, default=24.0, help="hours of history to generate (default: 24)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    p.add_argument(
        "--unenrolled-mfa",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of people not enrolled in MFA yet, e.g. 0.1 (default: 0)",
    )
    p.add_argument("--fault", action="append", metavar="NAME", help="fault modes to switch on")
    p.add_argument(
        "--export",
        metavar="F",
        help="write the generated events as JSONL (gzip if F ends in .gz) and their ground "
        "truth as F.truth.json, and exit",
    )
    p.add_argument(
        "--users", type=int, default=60, help="people in the simulated org (default: 60)"
    )

    p = sub.add_parser(
        "convert", help="write the rules as standard Sigma or SIEM queries (Splunk, Elastic)"
    )
    p.add_argument(
        "--target",
        required=True,
        metavar="TARGET",
        help="sigma, splunk, lucene, esql or eql (the SIEM targets need the convert extra)",
    )
    p.add_argument(
        "--rules", action="append", metavar="DIR", help="rules directory (default: rules)"
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="where to write one file per rule (default: converted/TARGET)",
    )

    p = sub.add_parser("outbox", help="list or retry pending and dead-lettered notifications")
    p.add_argument(
        "--config", default="config.yaml", help="configuration file (default: config.yaml)"
    )
    osub = p.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    osub.add_parser("list", help="show pending and dead-lettered deliveries")
    r = osub.add_parser("retry", help="re-queue dead-lettered deliveries")
    r.add_argument("id", nargs="?", type=int, help="one delivery id (default: all dead)")
    return parser


def _jobs(text: str) -> int:
    """``--jobs N``: a whole number of processes, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return value


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """Import a command lazily so `alerting test` does not load the service stack."""
    if name == "run":
        from alerting.commands.run import main as run_main

        return run_main
    if name == "validate":
        from alerting.commands.validate import main as validate_main

        return validate_main
    if name == "test":
        from alerting.commands.test import main as test_main

        return test_main
    if name == "replay":
        from alerting.commands.replay import main as replay_main

        return replay_main
    if name == "export":
        from alerting.commands.export import main as export_main

        return export_main
    if name == "simulate":
        from alerting.commands.simulate import main as simulate_main

        return simulate_main
    if name == "convert":
        from alerting.commands.convert import main as convert_main

        return convert_main
    if name == "outbox":
        from alerting.commands.outbox import main as outbox_main

        return outbox_main
    raise AssertionError(name)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _command(args.command)(args)
    except AlertingError as exc:
        print(
            f"alerting {args.command}: error: {exc}" if "\n" not in str(exc) else str(exc),
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("ALERTING_DEBUG"):
            raise
        print(
            f"alerting {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set ALERTING_DEBUG=1 for a traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
