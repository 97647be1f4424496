"""Atomic writes: a file or folder appears under its name only once it is complete."""

from __future__ import annotations

import contextlib
import os
import shutil


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


PREVIOUS_SUFFIX = ".previous"  # a folder being replaced waits here until its successor is in place


def replace_folder(new: str, dst: str) -> None:
    """Move the complete folder `new` to `dst`, replacing any folder there.

    The old folder is renamed aside (``dst.previous``), the new one renamed into place, then the old
    one deleted. A crash at any point leaves a complete folder: `dst` itself, or (between the two
    renames) ``dst.previous``, which `recover_folder` moves back.
    """
    recover_folder(dst)
    previous = dst.rstrip("/") + PREVIOUS_SUFFIX
    shutil.rmtree(previous, ignore_errors=True)
    if os.path.exists(dst):
        os.replace(dst, previous)
    os.replace(new, dst)
    shutil.rmtree(previous, ignore_errors=True)


def recover_folder(dst: str) -> None:
    """Undo a `replace_folder` interrupted between its renames: bring ``dst.previous`` back."""
    previous = dst.rstrip("/") + PREVIOUS_SUFFIX
    if not os.path.exists(dst) and os.path.isdir(previous):
        os.replace(previous, dst)
