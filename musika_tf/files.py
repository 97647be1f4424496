"""Atomic file writes: a file appears under its name only once it is complete."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary name beside `path` (same extension, ``NAME.partial.EXT``) to write to;
    rename it to `path` when the block succeeds, delete it when it fails. Creates the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.partial{ext}"
    try:
        yield tmp
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
