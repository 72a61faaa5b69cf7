"""The table ``avvp-extract`` prints at the end of a run: what was written, what was
skipped, and where the time went."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from avvp_lit.extract.pipeline import SKIPPED_FILE, STAGES, WINDOWS_FILE, ExtractResult
from avvp_lit.utils.errors import first_names


def print_summary(result: ExtractResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"avvp-extract -> {result.out}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("videos extracted", f"{result.videos} ({result.windows} windows)")
    if result.resumed:
        table.add_row("already done (--resume)", str(result.resumed))
    if result.short:
        table.add_row(
            "short windows (stretched to 10 s)", f"{len(result.short)}: {first_names(result.short)}"
        )
    if result.unlabelled:
        table.add_row(
            "no weak label (pseudo labels 0)",
            f"{len(result.unlabelled)}: {first_names(result.unlabelled)}",
        )
    table.add_row(
        "skipped", f"{len(result.skipped)} (see {SKIPPED_FILE})" if result.skipped else "0"
    )
    rate = result.windows / result.wall_s if result.wall_s else 0.0
    table.add_row("wall time", f"{result.wall_s:.1f} s ({rate:.2f} windows/s)")
    table.add_row(
        "time by stage",
        ", ".join(f"{s} {result.seconds[s]:.1f} s" for s in STAGES)
        + " (decode: decoding and preparing, in the workers when --workers > 0)",
    )
    table.add_row("windows", f"{WINDOWS_FILE} (id, source, seconds, frames)")
    console.print(table)
    for reason in result.skipped.values():
        console.print(f"skipped: {reason}")
