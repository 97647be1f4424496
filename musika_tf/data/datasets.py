"""Data-set readers: real or synthesised MAESTRO, the synthesised techno set, any audio folder.

All readers return `AudioItem`s; `iter_audio` decodes them one by one, skipping unreadable or
too-short files with a one-line warning and counting them in a `LoadSummary`. Training reads
audio through this one path (soundfile, with tensorflow-io's eager decoders as the fallback); a
graph-mode tensorflow-io pipeline was removed: decoding is a small share of training time, and
parallel tensorflow-io decodes were seen to return another file's samples.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .. import audio as audio_lib
from .common import read_csv

MAESTRO_CSV_PATTERN = "maestro-v*.csv"
TECHNO_CSV = "techno.csv"
DATA_ENV = "MUSIKA_DATA"
EMBEDDED = ("maestro", "techno")


@dataclass(frozen=True)
class AudioItem:
    """One audio file of a data set, with what the data set says about it."""

    path: str
    split: str = "train"
    title: str = ""
    duration: float | None = None  # seconds, as listed by the data set (None if unknown)
    tempo: float | None = None  # BPM, where the data set records it


@dataclass
class LoadSummary:
    """Counts of what `iter_audio` did; `skipped` holds (path, reason) pairs."""

    loaded: int = 0
    seconds: float = 0.0
    skipped: list = field(default_factory=list)

    def line(self) -> str:
        reasons: dict[str, int] = {}
        for _, reason in self.skipped:
            key = reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        skipped = f"; skipped {len(self.skipped)} ({detail})" if self.skipped else ""
        return f"loaded {self.loaded} files ({self.seconds / 60:.1f} min){skipped}"


def data_root() -> str:
    """Folder holding the embedded data sets: $MUSIKA_DATA or `data/` in the working directory."""
    return os.environ.get(DATA_ENV, "data")


# ---------------------------------------------------------------------------------------------
# Readers


def read_maestro(root: str, split: str | None = None) -> list[AudioItem]:
    """Items of a MAESTRO-layout folder (real MAESTRO v2/v3 or the synthesised one)."""
    matches = sorted(glob.glob(os.path.join(root, MAESTRO_CSV_PATTERN)))
    if not matches:
        raise FileNotFoundError(
            f"{root}: no {MAESTRO_CSV_PATTERN} found; point --data at the MAESTRO root folder "
            "(the one holding maestro-v3.0.0.csv) or build the embedded set with "
            "`python -m musika_tf build-data maestro`")
    return [AudioItem(path=os.path.join(root, row["audio_filename"]), split=row["split"],
                      title=f'{row["canonical_composer"]}: {row["canonical_title"]}',
                      duration=float(row["duration"]))
            for row in _csv_rows(matches[-1], split)]


def read_techno(root: str, split: str | None = None) -> list[AudioItem]:
    """Items of the synthesised techno set, with their ground-truth tempo."""
    path = os.path.join(root, TECHNO_CSV)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{root}: no {TECHNO_CSV} found; build the embedded set with "
            "`python -m musika_tf build-data techno`")
    return [AudioItem(path=os.path.join(root, row["filename"]), split=row["split"],
                      title=os.path.splitext(os.path.basename(row["filename"]))[0],
                      duration=float(row["duration"]), tempo=float(row["tempo_bpm"]))
            for row in _csv_rows(path, split)]


def _csv_rows(path: str, split: str | None) -> list[dict]:
    """Rows of a data-set CSV, optionally only those of one split."""
    return [row for row in read_csv(path) if not split or row["split"] == split]


def read_folder(root: str, warn=None) -> list[AudioItem]:
    """Every audio file below `root` (recursive, sorted), by extension.

    Hidden files (names starting with ``.``, e.g. macOS ``._*`` AppleDouble files, which carry an
    audio extension but no audio) are not read; their number is reported in one warning line.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: not a folder of audio files")
    paths, hidden = [], []
    for folder, _, names in os.walk(root):
        audio = [n for n in names if n.lower().endswith(audio_lib.AUDIO_EXTENSIONS)]
        paths += [os.path.join(folder, n) for n in audio if not n.startswith(".")]
        hidden += [os.path.join(folder, n) for n in audio if n.startswith(".")]
    if hidden:
        (warn or (lambda text: print(text, file=sys.stderr)))(
            f"warning: {root}: {len(hidden)} hidden audio file(s) not read (names starting with '.', "
            f"e.g. {os.path.relpath(hidden[0], root)}); rename them to include them")
    return [AudioItem(path=p, title=os.path.relpath(p, root)) for p in sorted(paths)]


def read_dataset(spec: str, split: str | None = None, build_missing: bool = True,
                 minutes: float | None = None, seed: int = 0) -> list[AudioItem]:
    """Items for `--data SPEC`: `maestro`, `techno` (embedded sets under `data_root()`, built
    on first use when `build_missing`), or a path (MAESTRO root, techno root, or any folder).
    Several sets joined with ``+`` (``maestro+techno``) give the union, each with its own splits."""
    if "+" in spec and not os.path.exists(spec):
        return [item for part in spec.split("+") if part
                for item in read_dataset(part, split, build_missing, minutes, seed)]
    if spec in EMBEDDED:
        root = os.path.join(data_root(), spec)
        if build_missing and not _has_index(root):
            build_embedded(spec, root, minutes=minutes, seed=seed)
        return read_dataset(root, split=split, build_missing=False)
    if glob.glob(os.path.join(spec, MAESTRO_CSV_PATTERN)):
        return read_maestro(spec, split)
    if os.path.exists(os.path.join(spec, TECHNO_CSV)):
        return read_techno(spec, split)
    items = read_folder(spec)
    if not items:
        raise FileNotFoundError(f"{spec}: no audio files ({', '.join(audio_lib.AUDIO_EXTENSIONS)})")
    return items


def _has_index(root: str) -> bool:
    return bool(glob.glob(os.path.join(root, MAESTRO_CSV_PATTERN))) or os.path.exists(
        os.path.join(root, TECHNO_CSV))


def build_embedded(name: str, root: str, minutes: float | None = None, seed: int = 0):
    """Synthesise the embedded `maestro` or `techno` set into `root` (idempotent)."""
    from . import build_piano_dataset, build_techno_dataset

    builder = {"maestro": build_piano_dataset, "techno": build_techno_dataset}[name]
    kwargs = {"seed": seed}
    if minutes is not None:
        kwargs["minutes"] = minutes
    return builder(root, **kwargs)


# ---------------------------------------------------------------------------------------------
# Decoding with skip-and-count


def min_samples(preset) -> int:
    """Shortest usable audio at the preset rate: one full encoder chunk (chunk*hop + 3*hop)."""
    return preset.chunk_samples + 3 * preset.audio.hop


def iter_audio(items: list[AudioItem], sample_rate: int, min_length: int = 0,
               summary: LoadSummary | None = None, warn=None) -> Iterator[tuple[AudioItem, np.ndarray]]:
    """Yield `(item, audio [samples, 2] float32)`; unreadable or too-short files are skipped
    with a one-line warning (to stderr unless `warn` is given) and recorded in `summary`."""
    summary = summary if summary is not None else LoadSummary()
    warn = warn or (lambda text: print(text, file=sys.stderr))
    for item in items:
        try:
            audio = audio_lib.load_audio(item.path, sample_rate)
        except audio_lib.AudioLoadError as error:
            skip_item(summary, warn, item.path, "unreadable: " + _without_path(error, item.path))
            continue
        if len(audio) < max(min_length, 1):
            skip_item(summary, warn, item.path, too_short(len(audio), min_length, sample_rate))
            continue
        summary.loaded += 1
        summary.seconds += len(audio) / sample_rate
        yield item, audio


def skip_loaded(summary: LoadSummary, warn, path: str, seconds: float, reason: str) -> None:
    """Count a file `iter_audio` loaded as skipped after all (a later step found it unusable)."""
    summary.loaded -= 1
    summary.seconds -= seconds
    skip_item(summary, warn, path, reason)


def too_short(samples: int, min_length: int, sample_rate: int) -> str:
    """The skip reason of a file of `samples` samples when `min_length` are needed."""
    return f"too short: {samples / sample_rate:.2f} s < {min_length / sample_rate:.2f} s needed"


def skip_item(summary: LoadSummary, warn, path: str, reason: str) -> None:
    """Record `path` as skipped for `reason` in `summary` and warn with one line."""
    summary.skipped.append((path, reason))
    warn(f"warning: skipping {path}: {reason}")


def _without_path(error: Exception, path: str) -> str:
    return str(error).removeprefix(f"{path}: ")
