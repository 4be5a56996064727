"""A table of numbers on stdout: a rich table on a terminal, plain aligned lines otherwise.

``torchann cv`` and ``torchann importance`` print their results with it; ``--json`` is the
form for programs, this one is for people (and for logs, where box characters do not belong).
"""

from __future__ import annotations

import sys
from typing import Sequence

__all__ = ["print_table"]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *,
                notes: Sequence[str] = ()) -> None:
    """``title``, then ``header`` and ``rows`` (cells already formatted; the first column
    left-aligned, the rest right-aligned), then ``notes``, one line each."""
    if sys.stdout.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        out = Console(highlight=False, soft_wrap=True)
        out.print(table, soft_wrap=False)
        for note in notes:
            out.print(note, markup=False)
        return
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = [title]
    for row in (header, *rows):
        cells = [f"{c:<{w}}" if i == 0 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
    lines.extend(notes)
    sys.stdout.write("\n".join(lines) + "\n")
