"""Shared helper for the top-level scripts whose stage is not built yet."""

from __future__ import annotations

import sys


def not_available(what: str) -> int:
    """Print an honest message for a face whose library part is not built yet; return exit code 2."""
    print(f"{what} is not available yet in this version of musika-tf (see README, 'What works "
          "today').", file=sys.stderr)
    return 2
