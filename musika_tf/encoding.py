"""Audio <-> stereo latents through the two-level autoencoder, and data-set encoding.

- `encode_audio`: stereo ``[samples, 2]`` -> latents ``[T, 2 * latent_dim]`` ([left || right]) with
  ``T = ceil(samples / samples_per_latent)``: the end is zero-padded to whole latents, so no audio is
  dropped (the reference truncates or pads by the wrong amount, its section 9 items 19-20). The
  spectrogram is built span by span of ``preset.train.encode_chunks`` encoder chunks (a 30-minute
  piece at 44.1 kHz would need ~1.3 GB whole), with the same latents.
- `encode_dataset` reads integer-PCM sources at the preset rate span by span from the file when no
  condition needs the whole signal (``cond == 'none'``): memory is then bounded whatever the length
  of a file; other files are decoded whole first (8 bytes per stereo sample).
- `decode_latents`: latents ``[T, 2D]`` -> stereo ``[(T*fpl - 1)*hop + 4*hop, 2]`` in [-1, 1].
- `encode_dataset`: a data set -> latent store (`data.latents`), in ``chunks`` mode (arrays of
  ``max_lat_len`` latents for GAN training: consecutive chunks plus one aligned to the end of the
  file when it does not divide evenly; shorter files whole) or ``whole`` mode (one array per file),
  with the conditioning signals of ``preset.gan.cond`` stored beside the latents.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from . import audio as audio_lib
from . import conditioning
from .autoencoder import Autoencoder, latents_per_chunk, split_stereo_latents, stereo_latents
from .config import Preset
from .data import latents as store
from .data.audio_cache import CachedAudio, in_place_samples, read_cached
from .data.datasets import AudioItem, LoadSummary, iter_audio, skip_item, skip_loaded, too_short

MODES = ("chunks", "whole")


def padded_length(num_samples: int, preset: Preset) -> int:
    """Samples whose STFT has exactly ``ceil(num_samples / samples_per_latent) * fpl`` frames."""
    latents = max(1, -(-num_samples // preset.samples_per_latent))
    return audio_lib.num_samples(latents * preset.ae.frames_per_latent, preset.audio.hop)


def encode_audio(ae: Autoencoder, audio: np.ndarray) -> np.ndarray:
    """Stereo ``[samples, 2]`` -> stereo latents ``[ceil(samples / samples_per_latent), 2D]``."""
    return encode_reader(ae, lambda start, length: audio[start:start + length], len(audio))


def encode_reader(ae: Autoencoder, read: Callable[[int, int], np.ndarray], samples: int) -> np.ndarray:
    """Latents ``[ceil(samples / samples_per_latent), 2D]`` of a stereo signal of `samples` samples
    that ``read(start, length)`` returns piece by piece (float32 ``[<= length, 2]``, short at the end).

    Encoded span by span (`encode_spans`): the audio and spectrogram in memory cover at most
    ``preset.train.encode_chunks`` encoder chunks, whatever the length of the signal.
    """
    preset = ae.preset
    spl, fpl = preset.samples_per_latent, preset.ae.frames_per_latent
    total = max(1, -(-samples // spl))
    return np.concatenate([
        encode_span(ae, read(first * spl, audio_lib.num_samples(count * fpl, preset.audio.hop)), count)
        for first, count in encode_spans(total, span_latents(preset))])


def span_latents(preset: Preset) -> int:
    """Latents per encoding span: ``encode_chunks`` whole encoder chunks (>= one chunk)."""
    return max(1, preset.train.encode_chunks) * latents_per_chunk(preset)


def encode_spans(total: int, span: int) -> list[tuple[int, int]]:
    """``(first latent, latent count)`` of consecutive spans of `span` latents covering `total`."""
    return [(first, min(span, total - first)) for first in range(0, total, span)]


def encode_span(ae: Autoencoder, piece: np.ndarray, count: int) -> np.ndarray:
    """Latents ``[count, 2D]`` of the stereo `piece` ``[<= (count * fpl + 3) * hop, 2]`` that starts
    at a latent boundary (zero-padded to that length: ``count * fpl`` STFT frames).

    Spans start at multiples of the latents per encoder chunk, so every chunk the encoder sees is
    the whole-file one, and spans give the whole-file latents (up to float rounding).
    """
    preset = ae.preset
    need = audio_lib.num_samples(count * preset.ae.frames_per_latent, preset.audio.hop)
    piece = np.asarray(piece, np.float32)
    piece = np.pad(piece, [(0, need - len(piece)), (0, 0)])
    spec = audio_lib.stereo_log_magnitude(piece, preset.audio).numpy()
    return stereo_latents(ae.encode_frames(spec))


def decode_latents(ae: Autoencoder, latents: np.ndarray, seed: int | None = None) -> np.ndarray:
    """Stereo latents ``[T, 2D]`` -> stereo audio ``[(T*fpl - 1)*hop + 4*hop, 2]``, clipped to [-1, 1]."""
    magnitude, phase = ae.decode_latents(split_stereo_latents(latents), seed=seed)
    wave = audio_lib.stereo_istft(magnitude, phase, ae.preset.audio).numpy()
    return np.clip(wave, -1.0, 1.0)


def reconstruct(ae: Autoencoder, audio: np.ndarray, seed: int | None = 0) -> np.ndarray:
    """Encode and decode `audio`; the result has exactly the input's length."""
    return decode_latents(ae, encode_audio(ae, audio), seed=seed)[: len(audio)]


def chunk_starts(length: int, chunk: int) -> list[int]:
    """Starts of ``chunk``-long windows covering ``length``: consecutive, plus one aligned to the
    end when ``chunk`` does not divide ``length``; ``[0]`` when ``length <= chunk``."""
    if length <= chunk:
        return [0]
    starts = list(range(0, length - chunk + 1, chunk))
    if starts[-1] + chunk < length:
        starts.append(length - chunk)
    return starts


def encode_dataset(ae: Autoencoder, items: list[AudioItem], out_dir: str, mode: str = "chunks",
                   fingerprint: str = "", progress: bool = True,
                   summary: LoadSummary | None = None) -> LoadSummary:
    """Encode every usable file of `items` into a latent store at `out_dir` (written atomically).

    Files that cannot be read or are shorter than one latent are skipped with a warning and
    counted in the returned summary; so are beatless files (no tempo) under tempo conditioning.
    Under density conditioning a file without onsets is kept: its density is 0 (silence).
    """
    if mode not in MODES:
        raise ValueError(f"unknown encode mode {mode!r}; choose one of {MODES}")
    preset = ae.preset
    summary = summary if summary is not None else LoadSummary()
    writer = store.LatentWriter(out_dir, mode, fingerprint, preset.to_dict())
    rate, spl = preset.audio.sample_rate, preset.samples_per_latent
    bar = tqdm(total=len(items), desc="encoding", unit="file", disable=not progress)
    for item, audio, source in _sources(items, preset, summary):
        latents = (encode_audio(ae, audio) if source is None else
                   encode_reader(ae, lambda start, n: read_cached(source, start, n), source.samples))
        try:
            conditions = conditioning.stored_conditions(preset, audio, len(latents), item.tempo)
        except conditioning.NoBeatsError as error:  # beatless under tempo conditioning
            skip_loaded(summary, tqdm.write, item.path, len(audio) / rate, f"no tempo: {error}")
            bar.update(1)
            continue
        span = len(latents) if mode == "whole" else preset.gan.max_lat_len
        for start in chunk_starts(len(latents), span):
            writer.add(latents[start:start + span], item.path, item.split, start, start * spl / rate,
                       **store.window(conditions, start, span))
        bar.update(1)
    bar.update(len(items) - bar.n)
    bar.close()
    if not writer.entries:
        raise ValueError(f"no usable audio to encode ({summary.line()})")
    writer.close()
    return summary


def _sources(items: list[AudioItem], preset: Preset, summary: LoadSummary
             ) -> Iterator[tuple[AudioItem, np.ndarray | None, CachedAudio | None]]:
    """``(item, audio [samples, 2], None)`` of every usable item decoded whole, or ``(item, None,
    source)`` read span by span in place (`read_cached`) when nothing needs the whole signal
    (``cond == 'none'``) and the file is integer PCM at the preset rate (`in_place_samples`)."""
    rate, spl = preset.audio.sample_rate, preset.samples_per_latent
    for item in items:
        samples = in_place_samples(item.path, rate) if preset.gan.cond == "none" else None
        if samples is None:
            for loaded, audio in iter_audio([item], rate, spl, summary, warn=tqdm.write):
                yield loaded, audio, None
        elif samples < spl:
            skip_item(summary, tqdm.write, item.path, too_short(samples, spl, rate))
        else:
            summary.loaded += 1
            summary.seconds += samples / rate
            yield item, None, CachedAudio(item.path, item, samples, in_place=True)


def decode_store(ae: Autoencoder, latents_dir: str, out_dir: str, seed: int | None = 0,
                 progress: bool = True) -> list[str]:
    """Decode every entry of a latent store (or every ``.npy`` latent file in a folder) to WAVs."""
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(os.path.join(latents_dir, store.INDEX)):
        index = store.read_index(latents_dir)
        maps = store.open_arrays(latents_dir, index)
        jobs = [(e["name"], lambda e=e: store.entry_arrays(maps, e)["latents"]) for e in index["entries"]]
    else:
        names = sorted(n for n in os.listdir(latents_dir) if n.endswith(".npy"))
        if not names:
            raise FileNotFoundError(f"{latents_dir}: no latent store (index.json) and no .npy files")
        jobs = [(os.path.splitext(n)[0], lambda n=n: np.load(os.path.join(latents_dir, n)))
                for n in names]
    written = []
    for name, load in tqdm(jobs, desc="decoding", unit="file", disable=not progress):
        latents = np.asarray(load(), np.float32)
        if latents.ndim != 2 or latents.shape[1] != ae.preset.stereo_latent_dim:
            raise ValueError(f"{name}: latents of shape {latents.shape}, expected [T, "
                             f"{ae.preset.stereo_latent_dim}] for preset {ae.preset.name!r}")
        path = os.path.join(out_dir, f"{name}.wav")
        audio_lib.save_audio(path, decode_latents(ae, latents, seed=seed), ae.preset.audio.sample_rate)
        written.append(path)
    return written
