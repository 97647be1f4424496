"""Markdown helpers the benchmarks share: tables, and their result blocks in docs/PERFORMANCE.md."""

from __future__ import annotations

from pathlib import Path


def table(header: list, rows: list) -> str:
    """A Markdown table of `rows` (any cell values) under `header`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def write_between(doc: Path, begin: str, end: str, text: str, heading: str | None = None,
                  before: str | None = None) -> None:
    """Replace the text between the markers `begin` and `end` of `doc` with `text`; text outside
    them is kept. Where the markers are missing they are added first, under `heading` when given,
    in front of the line `before` when the document has it, else at the end (a missing document
    starts as ``# Performance``)."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    old = doc.read_text() if doc.exists() else "# Performance\n"
    if begin not in old or end not in old:
        block = (f"{heading}\n\n" if heading else "") + f"{begin}\n{end}\n"
        old = (old.replace(before, block + "\n" + before, 1) if before and before in old
               else old.rstrip() + "\n\n" + block)
    head, rest = old.split(begin, 1)
    doc.write_text(head + begin + "\n" + text.strip() + "\n" + end + rest.split(end, 1)[1])
