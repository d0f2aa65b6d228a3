"""``alerting convert --target TARGET [--rules DIR] [--output DIR]``: the pack for a SIEM.

Writes one file per rule (standard Sigma, or a SIEM query through pySigma's backends)
and one line per rule saying how faithfully the target expresses it, so a SOC knows
which of its queries behave like the engine's rules and which do not. A rule the target
cannot express is not written (never a query that fires on every match in its place);
that is a report, not an error: the exit is non-zero only for errors (a rule file that
does not load, pySigma refusing a rule, an output directory that cannot be written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import yaml

from alerting.commands import common
from alerting.convert.backends import TARGETS, convert, require_pysigma
from alerting.convert.sigma import SigmaRule, to_sigma
from alerting.engine.loader import load_rules
from alerting.errors import AlertingError
from alerting.yamlfile import suggest

SIGMA = "sigma"


def target_names() -> list[str]:
    return [SIGMA, *TARGETS]


def dump_sigma(sigma: SigmaRule) -> str:
    """The documents as one multi-document YAML file (Sigma's own layout)."""
    return yaml.safe_dump_all(
        sigma.documents, sort_keys=False, allow_unicode=True, width=100, explicit_start=False
    )


def main(args: argparse.Namespace) -> int:
    """``alerting convert``: 0 unless a rule could not be converted or written."""
    output = Path(args.output) if args.output else None
    return run(args.target, common.rules_dirs(args), output)


def run(
    target: str,
    dirs: list[Path],
    output: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Convert the rules in ``dirs`` for ``target`` into ``output`` (default
    ``converted/TARGET``), one report line per rule on ``out``."""
    stream = out or sys.stdout
    errors = err or sys.stderr
    wanted = target
    target = target.lower()
    if target not in target_names():
        raise AlertingError(
            f"unknown target {wanted!r}{suggest(target, target_names())}: "
            f"use one of {', '.join(target_names())}"
        )
    if target != SIGMA:
        require_pysigma(TARGETS[target])
    rules = load_rules(dirs)
    output = output or Path("converted") / target
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AlertingError(
            f"cannot create output directory {str(output)!r}: {exc.strerror}; "
            "pass --output DIR somewhere writable"
        ) from None

    failed = 0
    with_correlation = 0
    counts = {"faithful": 0, "partial": 0, "not expressible": 0}
    # A Sigma correlation loaded as written carries the rules of its file with it.
    correlation_files = {r.path: r.id for r in rules if not hasattr(r.model, "detection")}
    for rule in rules:
        part_of = correlation_files.get(rule.path)
        if part_of is not None and part_of != rule.id and getattr(rule, "correlated_by", None):
            print(f"{rule.id}: {target}: written with {part_of}, its correlation", file=stream)
            with_correlation += 1
            continue
        try:
            sigma = to_sigma(rule)
            if target == SIGMA:
                text: str | None = dump_sigma(sigma)
                fidelity = sigma.fidelity
                suffix = ".yml"
            else:
                converted = convert(sigma, TARGETS[target])
                text = None if converted.query is None else converted.query + "\n"
                fidelity = converted.fidelity
                suffix = TARGETS[target].suffix
        except (AlertingError, ValueError) as exc:
            print(f"{rule.path}: error: {rule.id}: {exc}", file=errors)
            failed += 1
            continue
        counts[fidelity.verdict] += 1
        written = "not written"
        if text is not None:
            path = output / f"{rule.id}{suffix}"
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:
                print(f"{path}: error: cannot write: {exc.strerror}", file=errors)
                failed += 1
                continue
            written = str(path)
        print(f"{rule.id}: {target}: {fidelity.line()} -> {written}", file=stream)
    print(
        f"{len(rules)} rules: {counts['faithful']} faithful, {counts['partial']} partial, "
        f"{counts['not expressible']} not expressible"
        + (f", {with_correlation} written with their correlation" if with_correlation else "")
        + (f", {failed} failed" if failed else "")
        + f" ({target}, in {output})",
        file=stream,
    )
    return 1 if failed else 0
