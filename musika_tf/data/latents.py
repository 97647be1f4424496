"""Latent store: stereo second-level latents with their metadata, on disk.

Format (version 1), one folder:

- ``index.json``: ``{"format": "musika-latents", "version": 1, "mode": "chunks"|"whole",
  "fingerprint": str, "preset": {...}, "entries": [...]}``. Each entry: ``file`` (npz name),
  ``source`` (audio path), ``split``, ``start_latent`` (offset of the chunk in the source's latent
  sequence), ``start_seconds``, ``length`` (latents), and ``conditions`` (names stored in the npz).
- one ``.npz`` per entry: ``latents`` float32 ``[length, 2 * latent_dim]`` = [left || right],
  optional ``density`` float32 ``[length]`` (note density per latent frame, normalised), or
  ``tempo`` float32 ``[]`` (normalised), ``tempo_bpm`` ``[]`` and ``beat_phase`` ``[length]``
  (cycles in [0, 1), an integer on every beat) (`musika_tf.conditioning.stored_conditions`).

The `fingerprint` identifies what produced the latents (autoencoder weights + source files +
settings): a store whose fingerprint differs from the one asked for is stale and re-encoded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field

import numpy as np

from ..files import recover_folder, replace_folder

FORMAT = "musika-latents"
VERSION = 1
INDEX = "index.json"


@dataclass
class LatentEntry:
    """Metadata of one stored latent array."""

    file: str
    source: str
    split: str = "train"
    start_latent: int = 0
    start_seconds: float = 0.0
    length: int = 0
    conditions: list = field(default_factory=list)


def fingerprint(*parts) -> str:
    """Stable short hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class LatentWriter:
    """Writes a store into ``folder + '.partial'`` and moves it into place on `close` (atomic)."""

    def __init__(self, folder: str, mode: str, fingerprint_: str, preset_dict: dict):
        self.folder = folder
        self.tmp = folder.rstrip("/") + ".partial"
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self.meta = {"format": FORMAT, "version": VERSION, "mode": mode,
                     "fingerprint": fingerprint_, "preset": preset_dict}
        self.entries: list[LatentEntry] = []

    def add(self, latents: np.ndarray, source: str, split: str = "train", start_latent: int = 0,
            start_seconds: float = 0.0, **conditions: np.ndarray) -> LatentEntry:
        """Store ``latents [T, 2D]`` and optional per-frame or scalar conditions."""
        name = f"{len(self.entries):06d}.npz"
        arrays = {"latents": np.asarray(latents, np.float32)}
        arrays.update({k: np.asarray(v, np.float32) for k, v in conditions.items() if v is not None})
        np.savez(os.path.join(self.tmp, name), **arrays)
        entry = LatentEntry(name, source, split, int(start_latent), float(start_seconds),
                            int(len(latents)), sorted(k for k in arrays if k != "latents"))
        self.entries.append(entry)
        return entry

    def close(self) -> str:
        with open(os.path.join(self.tmp, INDEX), "w") as fh:
            json.dump({**self.meta, "entries": [asdict(e) for e in self.entries]}, fh, indent=1)
        replace_folder(self.tmp, self.folder)
        return self.folder


def read_index(folder: str) -> dict:
    """The store's index; raises FileNotFoundError / ValueError with the fix in the message."""
    recover_folder(folder)
    path = os.path.join(folder, INDEX)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{folder}: no latent store ({INDEX} missing); run "
                                "`python -m musika_tf encode` first")
    with open(path) as fh:
        index = json.load(fh)
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ValueError(f"{path}: not a musika-latents v{VERSION} store; re-encode it")
    return index


def is_current(folder: str, fingerprint_: str) -> bool:
    """True when `folder` holds a complete store produced with `fingerprint_`."""
    try:
        return read_index(folder)["fingerprint"] == fingerprint_
    except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError):
        return False


def load_entry(folder: str, entry: dict) -> dict[str, np.ndarray]:
    """Arrays of one entry: ``latents`` plus any stored conditions."""
    with np.load(os.path.join(folder, entry["file"])) as data:
        return {k: data[k] for k in data.files}


def load_all(folder: str, split: str | None = None) -> list[dict[str, np.ndarray]]:
    """Every entry's arrays (optionally one split), in index order."""
    index = read_index(folder)
    return [load_entry(folder, e) for e in index["entries"] if split is None or e["split"] == split]
