"""Helpers shared by the synthesised data sets (`piano`, `techno`).

Every data set is built by `build_dataset`: it checks idempotence (parameters stamped in
`musika_synth.json` next to the index CSV), draws items from a generator until the requested
minutes are reached, assigns train/validation/test splits, and writes the CSV last so that an
interrupted build is rebuilt. A folder whose CSV has no stamp (real data) is never overwritten.
Audio is float ``[samples, 2]`` in [-1, 1]; files are 16-bit PCM wav written atomically.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf

from ..files import atomic_path

PARAMS_FILE = "musika_synth.json"
SPLITS = ("train", "validation", "test")
HELD_OUT_FRACTION = 0.1  # of the items, for each of validation and test


# ---------------------------------------------------------------------------------------------
# Seeds


def item_seed(seed: int, kind: str, index: int) -> int:
    """A 32-bit seed for item `index` of data set `kind`, derived from the data-set `seed`."""
    sequence = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(kind.encode()), index))
    return int(sequence.generate_state(1)[0])


def item_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """Independent generator for item `index` of data set `kind` (same arguments, same stream)."""
    return np.random.default_rng(item_seed(seed, kind, index))


# ---------------------------------------------------------------------------------------------
# Files


def normalise_peak(audio: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    """Scale so that max |x| is `peak_db` dBFS (silence is returned unchanged)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak):
        raise ValueError("audio contains NaN or infinite samples")
    if peak == 0.0:
        return audio
    return (audio * (10.0 ** (peak_db / 20.0) / peak)).astype(np.float32)


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> float:
    """Write ``[samples, channels]`` audio as 16-bit PCM wav atomically; returns seconds."""
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return len(audio) / sample_rate


def write_csv(path: str, columns: list[str], rows: Iterable[dict]) -> None:
    """Write `rows` (dicts keyed by `columns`) as a CSV with a header, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str) -> list[dict]:
    """Rows of a CSV with a header, as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _normalised(params: dict) -> dict:
    return json.loads(json.dumps(params, sort_keys=True))


def is_built(root: str, csv_name: str, params: dict, file_columns: tuple[str, ...]) -> bool:
    """True if `root` holds a complete build made with exactly `params`."""
    csv_path, params_path = os.path.join(root, csv_name), os.path.join(root, PARAMS_FILE)
    if not (os.path.exists(csv_path) and os.path.exists(params_path)):
        return False
    with open(params_path, encoding="utf-8") as fh:
        if json.load(fh) != _normalised(params):
            return False
    return all(os.path.exists(os.path.join(root, row[c]))
               for row in read_csv(csv_path) for c in file_columns)


def _clear_previous(root: str, csv_name: str, file_columns: tuple[str, ...]) -> None:
    """Delete an earlier synthesised build: the files its index lists, then the index.

    Refuses (FileExistsError) when the index has no parameter stamp beside it: that is a data
    set this module did not write (e.g. the real MAESTRO), and its files are left alone.
    """
    csv_path = os.path.join(root, csv_name)
    if not os.path.exists(csv_path):
        return
    if not os.path.exists(os.path.join(root, PARAMS_FILE)):
        raise FileExistsError(f"{csv_path} exists but was not synthesised here (no {PARAMS_FILE}); "
                              "choose an empty folder")
    for row in read_csv(csv_path):
        for column in file_columns:
            _remove(os.path.join(root, row.get(column) or ""))
    _remove(csv_path)


def _remove(path: str) -> None:
    if os.path.isfile(path):
        os.remove(path)


# ---------------------------------------------------------------------------------------------
# Splits and the build driver


def assign_splits(count: int, seed: int) -> list[str]:
    """Deterministic ~80/10/10 split labels; >= 1 validation and 1 test item once count >= 3."""
    held_out = max(1, round(HELD_OUT_FRACTION * count)) if count >= 3 else 0
    labels = np.array(["train"] * count, dtype=object)
    order = item_rng(seed, "splits", count).permutation(count)
    labels[order[:held_out]] = "validation"
    labels[order[held_out:2 * held_out]] = "test"
    return list(labels)


@dataclass
class BuildSummary:
    """What a build produced (or found already built); `seconds` is total audio."""

    dataset: str
    root: str
    index: str  # path of the index CSV
    items: int
    seconds: float
    splits: dict = field(default_factory=dict)  # split -> item count
    built: bool = True  # False when an identical build was already there
    elapsed: float = 0.0  # wall seconds spent

    def __str__(self) -> str:
        splits = " / ".join(f"{s} {self.splits.get(s, 0)}" for s in SPLITS)
        how = f"built in {self.elapsed:.1f} s" if self.built else "already built"
        return (f"{self.dataset}: {self.items} files, {self.seconds / 60:.1f} min ({splits}) "
                f"in {self.index} [{how}]")


def _summary(dataset: str, root: str, csv_name: str, rows: list[dict], built: bool,
             started: float) -> BuildSummary:
    splits = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    return BuildSummary(dataset, root, os.path.join(root, csv_name), len(rows),
                        sum(float(r["duration"]) for r in rows), splits, built,
                        time.perf_counter() - started)


def warn(text: str) -> None:
    """One-line warning that does not break a tqdm bar."""
    from tqdm import tqdm

    tqdm.write(f"warning: {text}", file=sys.stderr)


def build_dataset(root: str, dataset: str, csv_name: str, columns: list[str],
                  file_columns: tuple[str, ...], params: dict, items: Iterator[dict],
                  minutes: float, progress: bool = True) -> BuildSummary:
    """Draw rows from `items` until `minutes` of audio, then write splits, CSV and stamp.

    Each row is a dict with the CSV columns except `split`; `duration` is in seconds. `params`
    (JSON-able, with a `seed`) identify the build: nothing is done when `root` already holds a
    build with the same `params` (see `is_built`); a different earlier build is replaced.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    if is_built(root, csv_name, params, file_columns):
        return _summary(dataset, root, csv_name, read_csv(os.path.join(root, csv_name)),
                        False, started)
    os.makedirs(root, exist_ok=True)
    _clear_previous(root, csv_name, file_columns)
    with open(os.path.join(root, PARAMS_FILE), "w", encoding="utf-8") as fh:
        json.dump(_normalised(params), fh, indent=1, sort_keys=True)  # the index comes last
    target = 60.0 * minutes
    rows, total = [], 0.0
    with tqdm(total=round(target), unit="s audio", desc=dataset, disable=not progress) as bar:
        for row in items:
            rows.append(row)
            total += float(row["duration"])
            bar.update(min(round(total), round(target)) - bar.n)
            if total >= target:
                break
    if not rows:
        raise RuntimeError(f"{dataset}: no item could be made (see the warnings above)")
    if total < target:
        warn(f"{dataset}: ran out of material at {total / 60:.1f} of {minutes:g} minutes")
    for row, split in zip(rows, assign_splits(len(rows), params["seed"])):
        row["split"] = split
    write_csv(os.path.join(root, csv_name), columns, rows)
    return _summary(dataset, root, csv_name, rows, True, started)
