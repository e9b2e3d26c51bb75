"""``busline lint``: check the links of some services against command and event semantics.

Each finding names the link, the reason and a suggestion. The exit status is 1 when there is an
error finding (a CI gate), else 0; ``--ignore RULE`` (repeatable) silences a rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from busline.cli.common import USAGE, complain
from busline.cli.targets import add_targets, load_all
from busline.links import build
from busline.lint import RULES, Finding, check

HELP = "check the links of some buses: commands in disguise, hidden processes, and more"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``busline lint``'s arguments."""
    add_targets(parser)
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULE",
        help=f"skip a rule (repeatable): {', '.join(RULES)}",
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the findings; return 1 if any is an error."""
    unknown = sorted(set(args.ignore) - set(RULES))
    if unknown:
        complain("busline lint", f"unknown rule {', '.join(unknown)}; rules: {', '.join(RULES)}")
        return USAGE
    findings = check(build(load_all(args.targets)), frozenset(args.ignore))
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2, sort_keys=True))
    else:
        for finding in findings:
            print(as_text(finding))
    errors = sum(f.severity == "error" for f in findings)
    summary = f"{len(findings)} finding(s), {errors} error(s)"
    print(summary if findings else "no findings", file=sys.stderr)
    return 1 if errors else 0


def as_text(finding: Finding) -> str:
    """One finding as three lines: what and where, why, what to do."""
    return (
        f"{finding.severity} [{finding.rule}] {finding.link}\n"
        f"    why: {finding.reason}\n"
        f"    fix: {finding.suggestion}"
    )
