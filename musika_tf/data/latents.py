"""Latent store: stereo second-level latents with their metadata, on disk, read memory-mapped.

Format (version 2), one folder:

- ``index.json``: ``{"format": "musika-latents", "version": 2, "mode": "chunks"|"whole",
  "fingerprint": str, "preset": {...}, "arrays": {NAME: {"dtype": "float32", "width": int|null,
  "rows": int}}, "entries": [...]}``. Each entry: ``name``, ``source`` (audio path), ``split``,
  ``start_latent`` (offset of the chunk in the source's latent sequence), ``start_seconds``,
  ``length`` (latents), ``conditions`` (names of its stored conditions), ``rows`` (``{NAME:
  [first row, row count]}`` of its per-frame arrays in the flat files) and ``scalars``
  (``{NAME: value}`` of its scalar conditions).
- one flat little-endian float32 file ``NAME.f32`` per per-frame array, all entries' rows one
  after another: ``latents`` ``[rows, 2 * latent_dim]`` = [left || right], optional ``density``
  ``[rows]`` (note density per latent frame, normalised) and ``beat_phase`` ``[rows]`` (cycles in
  [0, 1), an integer on every beat). Scalar conditions (``tempo`` normalised, ``tempo_bpm``) live
  in the index (`musika_tf.conditioning.stored_conditions`).

The flat files are opened with `numpy.memmap`, so reading a store costs memory for the index only
(a few hundred bytes per entry), whatever the number of latents: `mapped_entries` gives every
entry's arrays as read-only views into the files, and only the crops a step reads are paged in.

The `fingerprint` identifies what produced the latents (autoencoder weights + source files +
settings): a store whose fingerprint differs from the one asked for is stale and re-encoded; so is
a store of another format version (version 1 kept one ``.npz`` per entry, read whole into RAM).
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
VERSION = 2
INDEX = "index.json"
DTYPE = np.dtype("<f4")


@dataclass
class LatentEntry:
    """Metadata of one stored latent array (see the module docstring)."""

    name: str
    source: str
    split: str = "train"
    start_latent: int = 0
    start_seconds: float = 0.0
    length: int = 0
    conditions: list = field(default_factory=list)
    rows: dict = field(default_factory=dict)
    scalars: dict = field(default_factory=dict)


def fingerprint(*parts) -> str:
    """Stable short hash of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def array_path(folder: str, name: str) -> str:
    """The flat file of per-frame array `name` in a store folder."""
    return os.path.join(folder, f"{name}.f32")


class LatentWriter:
    """Writes a store into ``folder + '.partial'`` and moves it into place on `close` (atomic).

    Arrays are appended to the flat files as they come, so writing holds one entry in memory."""

    def __init__(self, folder: str, mode: str, fingerprint_: str, preset_dict: dict):
        self.folder = folder
        self.tmp = folder.rstrip("/") + ".partial"
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self.meta = {"format": FORMAT, "version": VERSION, "mode": mode,
                     "fingerprint": fingerprint_, "preset": preset_dict}
        self.entries: list[LatentEntry] = []
        self.arrays: dict[str, dict] = {}  # name -> {"dtype", "width", "rows"}
        self._files: dict = {}

    def add(self, latents: np.ndarray, source: str, split: str = "train", start_latent: int = 0,
            start_seconds: float = 0.0, **conditions: np.ndarray) -> LatentEntry:
        """Store ``latents [T, 2D]`` and optional per-frame ``[T']`` or scalar ``[]`` conditions."""
        arrays = {"latents": np.asarray(latents, DTYPE)}
        arrays.update({k: np.asarray(v, DTYPE) for k, v in conditions.items() if v is not None})
        entry = LatentEntry(f"{len(self.entries):06d}", source, split, int(start_latent),
                            float(start_seconds), int(len(arrays["latents"])),
                            sorted(k for k in arrays if k != "latents"))
        for key, value in arrays.items():
            if value.ndim == 0:
                entry.scalars[key] = float(value)
            else:
                entry.rows[key] = [self._append(key, value), len(value)]
        self.entries.append(entry)
        return entry

    def _append(self, key: str, value: np.ndarray) -> int:
        """Append ``value [n]`` or ``[n, width]`` to the flat file of `key`; return its first row."""
        width = None if value.ndim == 1 else int(np.prod(value.shape[1:]))
        info = self.arrays.setdefault(key, {"dtype": DTYPE.str, "width": width, "rows": 0})
        if info["width"] != width:
            raise ValueError(f"{key}: rows of width {width} after rows of width {info['width']}")
        if key not in self._files:
            self._files[key] = open(array_path(self.tmp, key), "wb")
        self._files[key].write(np.ascontiguousarray(value).tobytes())
        first, info["rows"] = info["rows"], info["rows"] + len(value)
        return first

    def close(self) -> str:
        for handle in self._files.values():
            handle.close()
        with open(os.path.join(self.tmp, INDEX), "w") as fh:
            json.dump({**self.meta, "arrays": self.arrays,
                       "entries": [asdict(e) for e in self.entries]}, fh, indent=1)
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
        raise ValueError(f"{path}: not a musika-latents v{VERSION} store (version "
                         f"{index.get('version')}); re-encode it (delete the folder: training "
                         "re-encodes it by itself)")
    return index


def is_current(folder: str, fingerprint_: str) -> bool:
    """True when `folder` holds a complete store of this version produced with `fingerprint_`."""
    try:
        return read_index(folder)["fingerprint"] == fingerprint_
    except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError):
        return False


def open_arrays(folder: str, index: dict) -> dict[str, np.memmap]:
    """Read-only memory maps of the store's flat files: ``{name: [rows] or [rows, width]}``."""
    maps = {}
    for key, info in index["arrays"].items():
        shape = (info["rows"],) if info["width"] is None else (info["rows"], info["width"])
        maps[key] = (np.memmap(array_path(folder, key), np.dtype(info["dtype"]), "r", shape=shape)
                     if info["rows"] else np.zeros(shape, np.dtype(info["dtype"])))
    return maps


def entry_arrays(maps: dict, entry: dict) -> dict[str, np.ndarray]:
    """One entry's arrays: read-only views into `maps` (`open_arrays`) and float32 scalars."""
    arrays = {key: maps[key][first:first + rows] for key, (first, rows) in entry["rows"].items()}
    arrays.update({key: np.float32(value) for key, value in entry["scalars"].items()})
    return arrays


def window(arrays: dict, start: int, length: int) -> dict:
    """Frames ``[start, start + length)`` of an entry's per-frame arrays; scalars as they are."""
    return {k: v[start:start + length] if np.ndim(v) else v for k, v in arrays.items()}


def mapped_entries(folder: str, split: str | None = None) -> list[dict[str, np.ndarray]]:
    """Every entry's arrays (optionally one split), in index order, as memory-mapped views."""
    index = read_index(folder)
    maps = open_arrays(folder, index)
    return [entry_arrays(maps, e) for e in index["entries"] if split is None or e["split"] == split]


def load_entry(folder: str, entry: dict) -> dict[str, np.ndarray]:
    """Arrays of one entry, read into memory: ``latents`` plus any stored conditions."""
    maps = open_arrays(folder, read_index(folder))
    return {key: np.array(value) for key, value in entry_arrays(maps, entry).items()}


def load_all(folder: str, split: str | None = None) -> list[dict[str, np.ndarray]]:
    """Every entry's arrays (optionally one split), in index order, read into memory."""
    return [{key: np.array(value) for key, value in arrays.items()}
            for arrays in mapped_entries(folder, split)]
