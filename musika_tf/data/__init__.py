"""Data sets: readers (`datasets`) and the synthesised embedded sets (`piano`, `techno`).

`build_piano_dataset` and `build_techno_dataset` are imported on first use, so that importing
the readers does not load music21.
"""

from __future__ import annotations

__all__ = ["build_piano_dataset", "build_techno_dataset"]

_BUILDERS = {"build_piano_dataset": "piano", "build_techno_dataset": "techno"}


def __getattr__(name: str):
    if name in _BUILDERS:
        import importlib

        return getattr(importlib.import_module(f".{_BUILDERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
