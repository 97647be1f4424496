"""Decoded-audio cache and random-crop sampling for autoencoder training.

Decoding compressed audio on every step is slow, and a real data set does not fit in memory, so
every usable file is decoded once to a 16-bit `.npy` at the preset's sample rate and read back
memory-mapped. Crops are then drawn from random files (weighted by length) at random offsets.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..files import atomic_path
from .datasets import AudioItem, LoadSummary, iter_audio

CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedAudio:
    """One decoded file: `path` of the int16 ``[samples, 2]`` array and its source item."""

    path: str
    item: AudioItem
    samples: int


def _cache_key(item: AudioItem, sample_rate: int) -> str:
    stat = os.stat(item.path)
    text = json.dumps([CACHE_VERSION, os.path.abspath(item.path), stat.st_size,
                       int(stat.st_mtime), sample_rate])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def build_audio_cache(items: list[AudioItem], cache_dir: str, sample_rate: int,
                      min_length: int = 0, progress: bool = True,
                      summary: LoadSummary | None = None) -> list[CachedAudio]:
    """Decode every item not cached yet; return the usable files (bad ones skipped and counted)."""
    os.makedirs(cache_dir, exist_ok=True)
    summary = summary if summary is not None else LoadSummary()
    cached, todo = [], []
    for item in items:
        if not os.path.exists(item.path):
            todo.append(item)  # let iter_audio report it
            continue
        target = os.path.join(cache_dir, _cache_key(item, sample_rate) + ".npy")
        if os.path.exists(target):
            samples = np.load(target, mmap_mode="r").shape[0]
            if samples >= max(min_length, 1):
                cached.append(CachedAudio(target, item, samples))
                summary.loaded += 1
                summary.seconds += samples / sample_rate
                continue
        todo.append(item)
    bar = tqdm(total=len(todo), desc="decoding audio", unit="file", disable=not progress or not todo)
    for item, audio in iter_audio(todo, sample_rate, min_length, summary,
                                  warn=lambda text: tqdm.write(text)):
        target = os.path.join(cache_dir, _cache_key(item, sample_rate) + ".npy")
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        with atomic_path(target) as tmp:
            np.save(tmp, pcm)
        cached.append(CachedAudio(target, item, len(pcm)))
        bar.update(1)
    bar.close()
    return cached


def read_cached(entry: CachedAudio, start: int = 0, length: int | None = None) -> np.ndarray:
    """Float32 ``[length, 2]`` slice of a cached file (memory-mapped read)."""
    pcm = np.load(entry.path, mmap_mode="r")
    stop = pcm.shape[0] if length is None else start + length
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
    maps = [np.load(f.path, mmap_mode="r") for f in usable]
    for k in itertools.count(start):
        rng = np.random.default_rng([seed, k])
        index = rng.choice(len(usable), p=weights)
        start = int(rng.integers(0, usable[index].samples - crop_samples + 1))
        crop = np.asarray(maps[index][start:start + crop_samples], np.float32) / 32767.0
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
