"""The report: one row per scenario, as a rich table for the terminal or Markdown for the
README."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tests.faults.ledger import Result
from tests.faults.runner import failures

COLUMNS = (
    "scenario", "sent", "handled", "lost", "dup. absorbed", "dup. effects", "parked",
    "recovery", "verdict",
)  # fmt: skip


def _cells(result: Result) -> list[str]:
    recovery = "—" if result.recovery is None else f"{result.recovery:.2f} s"
    failed = failures(result)
    verdict = "ok" if not failed else "FAILS: " + "; ".join(failed)
    numbers = (result.sent, result.handled, result.lost, result.absorbed, result.dup_effects)
    return [result.scenario, *(f"{n:,}" for n in numbers), f"{result.parked:,}", recovery, verdict]


def print_table(results: list[Result], title: str, console: Console | None = None) -> None:
    """The table, then each scenario's notes (what else was measured)."""
    # Piped into a file or CI log, rich would wrap the table at 80 columns.
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 180)
    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        numeric = column not in ("scenario", "verdict")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for result in results:
        style = None if result.ok else "red"
        table.add_row(*_cells(result), style=style)
    console.print(table)
    for result in results:
        console.print(f"[bold]{result.scenario}[/bold]: " + "; ".join(result.notes))


def markdown(results: list[Result]) -> str:
    """The same table in Markdown, notes as a list below it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(result)) + " |" for result in results]
    lines.append("")
    lines += [f"- {result.scenario}: " + "; ".join(result.notes) for result in results]
    return "\n".join(lines)
