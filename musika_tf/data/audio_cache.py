"""Training audio read in place or from a bounded decoded cache, and random-crop sampling.

Decoding compressed audio on every step is slow, and a real data set does not fit in memory. A
source that is already seekable integer PCM (WAV / FLAC / AIFF, 8-32 bit) at the preset's sample
rate is read in place, a crop at a time: no copy (real MAESTRO at 44.1 kHz needs none). Any other
file is decoded once to a 16-bit ``.npy`` at the preset's rate in the cache folder (4 bytes per
stereo sample: ~0.6 GB per hour at 44.1 kHz) and read back memory-mapped; the cache has a disk
budget (`CacheBudgetError` before anything is decoded when it would not fit). Crops are drawn
from random files (weighted by length) at random offsets.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .. import audio as audio_lib
from ..files import atomic_path
from .datasets import AudioItem, LoadSummary, iter_audio, skip_item, too_short

CACHE_VERSION = 1
IN_PLACE_FORMATS = ("WAV", "WAVEX", "FLAC", "AIFF")
IN_PLACE_SUBTYPES = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32")  # |x| <= 1: no peak scan
BYTES_PER_SAMPLE = 4  # int16 stereo
BUDGET_FIELD = "audio_cache_gb"


class CacheBudgetError(ValueError):
    """Decoding the files that need it would take the audio cache beyond its disk budget."""


@dataclass(frozen=True)
class CachedAudio:
    """One training file of `samples` stereo samples at the preset rate: `path` is its int16
    ``[samples, 2]`` ``.npy`` in the cache, or with `in_place` the source file itself."""

    path: str
    item: AudioItem
    samples: int
    in_place: bool = False


def _cache_key(item: AudioItem, sample_rate: int) -> str:
    stat = os.stat(item.path)
    text = json.dumps([CACHE_VERSION, os.path.abspath(item.path), stat.st_size,
                       int(stat.st_mtime), sample_rate])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def in_place_samples(path: str, sample_rate: int) -> int | None:
    """Samples of `path` when it can be read in place at `sample_rate` (seekable integer PCM at
    that rate, see `IN_PLACE_FORMATS` / `IN_PLACE_SUBTYPES`), else None."""
    try:
        info = sf.info(path)
    except Exception:  # noqa: BLE001 - not readable by soundfile: decoded (or reported) instead
        return None
    fits = (info.samplerate == sample_rate and info.format in IN_PLACE_FORMATS
            and info.subtype in IN_PLACE_SUBTYPES)
    return int(info.frames) if fits else None


def decoded_bytes(item: AudioItem, sample_rate: int) -> int:
    """Estimated size of `item` decoded into the cache (from its header, else its listed duration;
    0 when neither is known)."""
    try:
        info = sf.info(item.path)
        seconds = info.frames / info.samplerate
    except Exception:  # noqa: BLE001
        seconds = item.duration or 0.0
    return int(np.ceil(seconds * sample_rate)) * BYTES_PER_SAMPLE


def folder_bytes(folder: str) -> int:
    """Bytes of the ``.npy`` files in `folder` (0 if it does not exist)."""
    if not os.path.isdir(folder):
        return 0
    return sum(e.stat().st_size for e in os.scandir(folder) if e.name.endswith(".npy"))


def check_budget(todo: list[AudioItem], need: int, cache_dir: str, sample_rate: int,
                 budget_bytes: float | None) -> None:
    """Raise `CacheBudgetError` (naming the fixes) when decoding `todo`, `need` bytes, into
    `cache_dir` would exceed `budget_bytes` (None: no budget)."""
    if budget_bytes is None or not todo:
        return
    used = folder_bytes(cache_dir)
    if used + need <= budget_bytes:
        return
    raise CacheBudgetError(
        f"{cache_dir}: {len(todo)} file(s) need decoding to {sample_rate} Hz, ~{need / 1e9:.2f} GB, "
        f"but the audio cache holds {used / 1e9:.2f} GB of its {budget_bytes / 1e9:.2f} GB budget "
        f"(preset field {BUDGET_FIELD}, flag --{BUDGET_FIELD.replace('_', '-')}). Raise the budget, "
        f"delete stale files in {cache_dir}, or convert the sources to {sample_rate} Hz 16-bit "
        f"WAV/FLAC, which are read in place without a copy (e.g. {todo[0].path})")


def build_audio_cache(items: list[AudioItem], cache_dir: str, sample_rate: int,
                      min_length: int = 0, progress: bool = True,
                      summary: LoadSummary | None = None,
                      budget_bytes: float | None = None) -> list[CachedAudio]:
    """The usable files of `items` (bad or short ones skipped and counted): read in place where
    possible, else decoded into `cache_dir` unless cached already, within `budget_bytes`."""
    summary = summary if summary is not None else LoadSummary()
    ready, todo = [], []
    for item in items:
        entry = _ready(item, cache_dir, sample_rate, min_length, summary)
        if entry is None:
            todo.append(item)
        elif entry.samples:
            ready.append(entry)
    todo_found = [i for i in todo if os.path.exists(i.path)]
    check_budget(todo_found, sum(decoded_bytes(i, sample_rate) for i in todo_found), cache_dir,
                 sample_rate, budget_bytes)
    return ready + _decode_into(todo, cache_dir, sample_rate, min_length, progress, summary,
                                budget_bytes)


def _ready(item: AudioItem, cache_dir: str, sample_rate: int, min_length: int,
           summary: LoadSummary) -> CachedAudio | None:
    """`item` read in place or from an earlier decode (counted in `summary`); None when it must
    be decoded (or reported missing); an entry with 0 samples when it is too short."""
    if not os.path.exists(item.path):
        return None  # let iter_audio report it
    samples = in_place_samples(item.path, sample_rate)
    entry = CachedAudio(item.path, item, samples or 0, True) if samples is not None else None
    if entry is None:
        target = os.path.join(cache_dir, _cache_key(item, sample_rate) + ".npy")
        if not os.path.exists(target):
            return None
        entry = CachedAudio(target, item, np.load(target, mmap_mode="r").shape[0])
    if entry.samples < max(min_length, 1):
        if not entry.in_place:
            return None  # decoded again, and reported by iter_audio
        skip_item(summary, tqdm.write, item.path, too_short(entry.samples, min_length, sample_rate))
        return CachedAudio(item.path, item, 0, True)
    summary.loaded += 1
    summary.seconds += entry.samples / sample_rate
    return entry


def _decode_into(todo: list[AudioItem], cache_dir: str, sample_rate: int, min_length: int,
                 progress: bool, summary: LoadSummary, budget_bytes: float | None) -> list[CachedAudio]:
    """Decode `todo` into `cache_dir` as int16 ``.npy`` files, checking the budget file by file
    (headers can be missing or wrong)."""
    os.makedirs(cache_dir, exist_ok=True)
    cached = []
    bar = tqdm(total=len(todo), desc="decoding audio", unit="file", disable=not progress or not todo)
    for item, audio in iter_audio(todo, sample_rate, min_length, summary,
                                  warn=lambda text: tqdm.write(text)):
        target = os.path.join(cache_dir, _cache_key(item, sample_rate) + ".npy")
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        check_budget([item], pcm.nbytes, cache_dir, sample_rate, budget_bytes)
        with atomic_path(target) as tmp:
            np.save(tmp, pcm)
        cached.append(CachedAudio(target, item, len(pcm)))
        bar.update(1)
    bar.close()
    return cached


def read_cached(entry: CachedAudio, start: int = 0, length: int | None = None) -> np.ndarray:
    """Float32 ``[length, 2]`` slice of a training file (a seek and a read: memory of the slice)."""
    stop = entry.samples if length is None else start + length
    if entry.in_place:
        data, _ = sf.read(entry.path, frames=stop - start, start=start, dtype="float32",
                          always_2d=True)
        return audio_lib.to_stereo(data)
    pcm = np.load(entry.path, mmap_mode="r")
    return np.asarray(pcm[start:stop], dtype=np.float32) / 32767.0


def random_crops(files: list[CachedAudio], crop_samples: int, seed: int, mono: bool = True,
                 start: int = 0):
    """Endless generator of float32 crops: ``[crop_samples]`` (one random channel) if `mono`,
    else ``[crop_samples, 2]``. Files are drawn with probability proportional to their length.

    Crop k (k = start, start + 1, ...) is drawn from its own generator keyed ``(seed, k)``, so
    the sequence from `start` on is the tail of the sequence from 0 (resumable data order)."""
    usable = [f for f in files if f.samples >= crop_samples]
    if not usable:
        raise ValueError(f"no file is long enough for a crop of {crop_samples} samples")
    weights = np.array([f.samples - crop_samples + 1 for f in usable], np.float64)
    weights /= weights.sum()
    for k in itertools.count(start):
        rng = np.random.default_rng([seed, k])
        index = rng.choice(len(usable), p=weights)
        offset = int(rng.integers(0, usable[index].samples - crop_samples + 1))
        crop = read_cached(usable[index], offset, crop_samples)
        yield crop[:, int(rng.integers(0, 2))] if mono else crop


def crop_dataset(files: list[CachedAudio], crop_samples: int, batch_size: int, seed: int,
                 mono: bool = True, start: int = 0):
    """`tf.data.Dataset` of batches ``[batch, crop_samples]`` (mono) or ``[batch, crop, 2]``,
    its crops `random_crops` from crop `start` on."""
    import tensorflow as tf

    shape = (crop_samples,) if mono else (crop_samples, 2)
    data = tf.data.Dataset.from_generator(
        lambda: random_crops(files, crop_samples, seed, mono, start),
        output_signature=tf.TensorSpec(shape, tf.float32))
    return data.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
