"""The ``alerting`` command line: run, validate, test, replay, export, simulate, convert,
outbox, silence, rules.

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
EXIT_FAILED = 1  # validation errors, failing tests, a failed poll, bad input
EXIT_USAGE = 2
EXIT_DEAD_LETTERED = 3  # run --once: some delivery of this run was dead-lettered
EXIT_INTERRUPTED = 130

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
COMMANDS = (
    "run",
    "validate",
    "test",
    "replay",
    "export",
    "simulate",
    "convert",
    "outbox",
    "silence",
    "rules",
)

_COMMON_EXITS = (
    "  1    an error (one line on stderr naming the file, field and fix)\n"
    "  2    usage error (unknown flag, missing argument)\n"
    "  130  interrupted (Ctrl-C)"
)
EXIT_CODES = {
    "run": "  0    stopped cleanly (SIGTERM/SIGINT), or --once polled and delivered\n"
    "  1    an error, or --once: the poll failed (one line on stderr)\n"
    "  2    usage error (unknown flag, missing argument)\n"
    "  3    --once: a delivery of this run was dead-lettered (`alerting outbox list`)\n"
    "  130  interrupted (Ctrl-C)",
    "validate": "  0    config, rules and templates are valid (warnings fail only with --strict)\n"
    + _COMMON_EXITS.replace("an error", "a problem found (each file:line:col on stderr)"),
    "test": "  0    every inline rule test passed\n"
    + _COMMON_EXITS.replace("an error", "a test failed, or a rule does not load"),
    "replay": "  0    replayed (alerts or none)\n" + _COMMON_EXITS,
    "export": "  0    the events were written\n" + _COMMON_EXITS,
    "convert": "  0    converted (rules a target cannot express are reported, not errors)\n"
    + _COMMON_EXITS,
    "simulate": "  0    stopped (Ctrl-C) or exported\n" + _COMMON_EXITS,
    "outbox": "  0    listed, or re-queued\n" + _COMMON_EXITS,
    "silence": "  0    added (prints the id), listed, or expired\n" + _COMMON_EXITS,
    "rules": "  0    listed\n" + _COMMON_EXITS,
}


def _epilog(command: str) -> str:
    return "exit codes:\n" + EXIT_CODES[command]


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--config``, ``--log-level``, ``-v``, ``-q``: accepted before or after the command.

    On the top-level parser they set the defaults; on each subcommand they default to
    ``SUPPRESS``, so a value given before the command is not reset by the subparser.
    """

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config",
        metavar="F",
        default=default(None),
        help="configuration file (default: config.yaml)",
    )
    group.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        default=default(None),
        help="log level (default: the config's logging.level, else warning)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbose",
        action="store_true",
        default=default(False),
        help="log level debug",
    )
    group.add_argument(
        "-q",
        "--quiet",
        dest="quiet",
        action="store_true",
        default=default(False),
        help="log level warning",
    )


def _sub(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    *,
    exits: str | None = None,
) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text[:1].upper() + help_text[1:] + ".",
        epilog=_epilog(exits) if exits else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_globals(p, top=False)
    return p


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alerting",
        description="Security alerting engine for JumpCloud Directory Insights.",
        epilog="Global options work before or after the command. Each command's --help "
        "lists its exit codes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _sub(sub, "run", "run the detection service", exits="run")
    p.add_argument("--once", action="store_true", help="one poll and one delivery pass, then exit")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="one poll on a throwaway copy of the state: print what would be sent where, "
        "send nothing, move no cursor",
    )

    p = _sub(sub, "validate", "check the config, rules and templates", exits="validate")
    p.add_argument(
        "--rules",
        action="append",
        metavar="DIR",
        help="rules directory (overrides the config; works without a config)",
    )

    p.add_argument(
        "--strict", action="store_true", help="fail (exit 1) on warnings too, not only errors"
    )

    p = _sub(sub, "test", "run the rules' inline tests", exits="test")
    p.add_argument(
        "--rules",
        action="append",
        metavar="DIR",
        help="rules directory (default: the config's rules.paths, else rules)",
    )
    p.add_argument(
        "--templates",
        default="templates",
        metavar="DIR",
        help="notification templates for `expect.rendered` checks (default: templates)",
    )
    p.add_argument("rule_ids", nargs="*", metavar="RULE_ID", help="only these rules")

    p = _sub(sub, "replay", "backtest rules over exported events", exits="replay")
    p.add_argument(
        "--events", required=True, metavar="F", help="JSON array or JSONL file, .gz ok, - = stdin"
    )
    p.add_argument(
        "--rules",
        action="append",
        metavar="DIR",
        help="rules directory (default: the config's rules.paths, else rules)",
    )
    p.add_argument(
        "--output", metavar="F", help="write alerts as JSONL here (default: stdout summary only)"
    )
    p.add_argument(
        "--notify", action="store_true", help="also deliver alerts through the config's routes"
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

    p = _sub(
        sub, "export", "write the configured source's events to a file for replay", exits="export"
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

    p = _sub(
        sub,
        "simulate",
        "serve the fake DI API with realistic traffic and attacks",
        exits="simulate",
    )
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

    p = _sub(
        sub,
        "convert",
        "write the rules as standard Sigma or SIEM queries (Splunk, Elastic)",
        exits="convert",
    )
    p.add_argument(
        "--target",
        required=True,
        metavar="TARGET",
        help="sigma, splunk, lucene, esql or eql (the SIEM targets need the convert extra)",
    )
    p.add_argument(
        "--rules",
        action="append",
        metavar="DIR",
        help="rules directory (default: the config's rules.paths, else rules)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="where to write one file per rule (default: converted/TARGET)",
    )

    p = _sub(sub, "outbox", "list or retry pending and dead-lettered notifications", exits="outbox")
    osub = p.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    _sub(
        osub, "list", "show pending and dead-lettered deliveries (needs no secrets)", exits="outbox"
    )
    r = _sub(osub, "retry", "re-queue dead-lettered deliveries", exits="outbox")
    r.add_argument("id", nargs="?", type=int, help="one delivery id (default: all dead)")

    p = _sub(
        sub,
        "silence",
        "add, list or expire silences (stored in the state database)",
        exits="silence",
    )
    ssub = p.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    a = _sub(
        ssub,
        "add",
        "hold back a rule's alerts (for one group) for a while; prints its id",
        exits="silence",
    )
    a.add_argument("--rule", required=True, metavar="RULE", help="the rule id")
    a.add_argument(
        "--group",
        action="append",
        metavar="KEY=VALUE",
        help="only alerts whose group has this exact value (repeatable; default: every group)",
    )
    when = a.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 30m, 4h, 7d")
    when.add_argument(
        "--until", metavar="TIME", help="an ISO time with a zone, e.g. 2026-12-01T08:00:00Z"
    )
    a.add_argument("--reason", required=True, metavar="TEXT", help="why (shown in the list)")
    a.add_argument("--owner", required=True, metavar="NAME", help="who (shown in the list)")
    _sub(
        ssub,
        "list",
        "active and recently expired silences, with how many alerts each held",
        exits="silence",
    )
    e = _sub(ssub, "expire", "end a silence now", exits="silence")
    e.add_argument("id", type=int, help="the silence id (from `alerting silence list`)")

    p = _sub(sub, "rules", "list the loaded rules and where their alerts go", exits="rules")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    lst = _sub(
        rsub, "list", "id, severity, aggregation, enabled and channels of every rule", exits="rules"
    )
    lst.add_argument(
        "--rules", action="append", metavar="DIR", help="rules directory (overrides the config)"
    )
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
    import importlib

    if name not in COMMANDS:
        raise AssertionError(name)
    module = importlib.import_module(f"alerting.commands.{name}")
    main: Callable[[argparse.Namespace], int] = module.main
    return main


def log_level(args: argparse.Namespace) -> str | None:
    """The level asked for on the command line (``--log-level``, ``-v``, ``-q``), if any."""
    if getattr(args, "verbose", False):
        return "debug"
    if getattr(args, "quiet", False):
        return "warning"
    level: str | None = getattr(args, "log_level", None)
    return level


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False) and getattr(args, "quiet", False):
        parser.error("-v and -q exclude each other: give one")
    args.log_level = log_level(args)
    if args.command != "run" and args.log_level is not None:
        # ``run`` sets up logging from its config; the others only when asked to.
        from alerting.logs import setup_logging

        setup_logging(level=args.log_level, fmt="auto")
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
