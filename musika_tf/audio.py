"""Audio front end: loading, resampling, STFT log-magnitude, iSTFT, display spectrograms.

Conventions (reference sections 1.1-1.5):
- Audio is float32 ``[samples, 2]`` (stereo, channels last) at the preset's sample rate, peak <= 1.
- Spectral functions take waveforms ``[..., samples]`` (any leading batch/channel axes) and return
  ``[..., frames, bins]``; ``frames = 1 + (samples - n_fft) // hop`` (no centring, no end padding),
  ``bins = n_fft // 2 + 1``. Float32 `tf.signal` throughout, as in the reference.
- Normalised log-magnitude: ``S = (10 log10(max(|X|^2, 1e-10)) - mu) / sigma``.
- Normalised phase: ``angle(X) / pi`` in [-1, 1].
"""

from __future__ import annotations

import math
import os

import numpy as np
import soundfile as sf
import tensorflow as tf

from .config import AudioConfig
from .files import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".opus")  # each decoded in the tests
POWER_FLOOR = 1e-10  # |X|^2 floor before dB (-100 dB)
AMPLITUDE_EPS = 1e-7  # added to the power before sqrt on the way back (reference 1.4)


class AudioLoadError(RuntimeError):
    """An audio file could not be decoded; the message names the file."""


# ---------------------------------------------------------------------------------------------
# Loading


def load_audio(path: str, sample_rate: int) -> np.ndarray:
    """Decode any supported file to float32 ``[samples, 2]`` at `sample_rate`.

    Mono is duplicated to both channels, more than two channels are mixed down to stereo by
    averaging the extra channels into both sides, other sample rates are resampled (soxr, high
    quality), and the result is scaled down if its peak exceeds 1.
    """
    audio, rate = _decode(path)
    audio = to_stereo(audio)
    audio = resample(audio, rate, sample_rate)
    return peak_safe(audio)


def _decode(path: str) -> tuple[np.ndarray, int]:
    """Read a file as float32 ``[samples, channels]`` with soundfile, else tensorflow-io."""
    if not os.path.isfile(path):
        raise AudioLoadError(f"{path}: no such file")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return data, int(rate)
    except Exception as sf_error:  # noqa: BLE001 - fall back to tensorflow-io's decoders
        try:
            return _decode_tfio_eager(path)
        except Exception:  # noqa: BLE001
            raise AudioLoadError(f"{path}: cannot decode audio ({sf_error})") from None


def _decode_tfio_eager(path: str) -> tuple[np.ndarray, int]:
    import tensorflow_io as tfio

    tensor = tfio.audio.AudioIOTensor(path)
    data = _to_unit_float(tensor.to_tensor(), tensor.dtype).numpy()
    if data.ndim == 1:
        data = data[:, None]
    return data, int(tensor.rate.numpy())


def _to_unit_float(samples: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """Integer PCM -> float32 in [-1, 1]; float input unchanged."""
    samples = tf.convert_to_tensor(samples)
    if dtype.is_integer:
        return tf.cast(samples, tf.float32) / -float(dtype.min)  # 2^(bits-1), as soundfile
    return tf.cast(samples, tf.float32)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """``[samples]`` or ``[samples, channels]`` -> ``[samples, 2]`` float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    channels = audio.shape[1]
    if channels == 1:
        return np.repeat(audio, 2, axis=1)
    if channels == 2:
        return audio
    extra = audio[:, 2:].mean(axis=1, keepdims=True)
    return (audio[:, :2] + extra) / 2.0


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``[samples, channels]`` float32 from `rate_in` to `rate_out` Hz."""
    if rate_in == rate_out:
        return audio
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32)


def peak_safe(audio: np.ndarray) -> np.ndarray:
    """Scale down so that max |x| <= 1; audio already within range is returned unchanged."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if not np.isfinite(peak):
        raise AudioLoadError("audio contains NaN or infinite samples")
    return audio / peak if peak > 1.0 else audio


def save_audio(path: str, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write ``[samples, channels]`` audio atomically (format from the extension: wav/flac/ogg)."""
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sample_rate, subtype=subtype)


# ---------------------------------------------------------------------------------------------
# Frame arithmetic (reference 1.2-1.4)


def num_frames(num_samples: int, hop: int) -> int:
    """STFT frames of a signal of `num_samples` samples (0 if shorter than one window)."""
    n_fft = 4 * hop
    return 0 if num_samples < n_fft else 1 + (num_samples - n_fft) // hop


def num_samples(frames: int, hop: int) -> int:
    """Waveform length produced by the iSTFT of `frames` frames: (F - 1) * hop + 4 * hop."""
    return (frames - 1) * hop + 4 * hop


def chunked_length(num_samples_in: int, hop: int, chunk_frames: int) -> int:
    """Longest length <= `num_samples_in` whose STFT has a whole number of encoder chunks.

    That is ``k * chunk_frames * hop + 3 * hop`` samples for the largest k (0 if none fits).
    """
    k = max(0, (num_samples_in - 3 * hop) // (chunk_frames * hop))
    return k * chunk_frames * hop + 3 * hop if k else 0


# ---------------------------------------------------------------------------------------------
# Analysis / synthesis


def stft(wave: tf.Tensor, hop: int) -> tf.Tensor:
    """Complex STFT ``[..., samples] -> [..., frames, 2*hop+1]`` (window = FFT = 4*hop, float32)."""
    wave = tf.cast(wave, tf.float32)
    return tf.signal.stft(wave, frame_length=4 * hop, frame_step=hop, fft_length=4 * hop,
                          window_fn=tf.signal.hann_window, pad_end=False)


def log_magnitude(wave: tf.Tensor, cfg: AudioConfig) -> tf.Tensor:
    """Normalised log-power spectrogram ``[..., samples] -> [..., frames, bins]`` (reference 1.2)."""
    return power_to_normalised(tf.abs(stft(wave, cfg.hop)) ** 2, cfg)


def power_to_normalised(power: tf.Tensor, cfg: AudioConfig) -> tf.Tensor:
    """``(10 log10(max(P, 1e-10)) - mu) / sigma``."""
    db = 10.0 * tf.math.log(tf.maximum(power, POWER_FLOOR)) / math.log(10.0)
    return (db - cfg.mu) / cfg.sigma


def normalised_phase(wave: tf.Tensor, cfg: AudioConfig) -> tf.Tensor:
    """True phase of the STFT scaled to [-1, 1]: ``angle(X) / pi`` ``[..., frames, bins]``."""
    return tf.math.angle(stft(wave, cfg.hop)) / math.pi


def istft(log_mag: tf.Tensor, phase: tf.Tensor, cfg: AudioConfig) -> tf.Tensor:
    """Waveform from normalised log-magnitude and phase ``[..., frames, bins] -> [..., samples]``.

    ``A = sqrt(10^((S*sigma + mu)/10) + 1e-7)``, ``phi = pi * Phase``; least-squares inverse STFT
    with the dual of the periodic Hann window (reference 1.4). Output length (F-1)*hop + 4*hop.
    """
    hop = cfg.hop
    return tf.signal.inverse_stft(complex_spectrum(log_mag, phase, cfg), frame_length=4 * hop,
                                  frame_step=hop, fft_length=4 * hop,
                                  window_fn=tf.signal.inverse_stft_window_fn(hop))


def complex_spectrum(log_mag: tf.Tensor, phase: tf.Tensor, cfg: AudioConfig) -> tf.Tensor:
    """Normalised log-magnitude and phase ``[..., frames, bins]`` -> complex STFT ``A * exp(i phi)``.

    ``A = sqrt(10^((S*sigma + mu)/10) + 1e-7)`` with the power computed as ``exp(x ln 10)``
    (several times faster than `tf.pow` on CPU; equal up to float32 rounding).
    """
    db = tf.cast(log_mag, tf.float32) * cfg.sigma + cfg.mu
    amplitude = tf.sqrt(tf.exp(db * (math.log(10.0) / 10.0)) + AMPLITUDE_EPS)
    angle = tf.cast(phase, tf.float32) * math.pi
    return tf.complex(amplitude * tf.cos(angle), amplitude * tf.sin(angle))


def stereo_log_magnitude(audio: np.ndarray | tf.Tensor, cfg: AudioConfig) -> tf.Tensor:
    """Stereo ``[samples, 2]`` -> per-channel spectrogram ``[2, frames, bins]``."""
    return log_magnitude(tf.transpose(tf.convert_to_tensor(audio, tf.float32)), cfg)


def stereo_istft(log_mag: tf.Tensor, phase: tf.Tensor, cfg: AudioConfig) -> tf.Tensor:
    """Per-channel ``[2, frames, bins]`` magnitude and phase -> stereo ``[samples, 2]``."""
    return tf.transpose(istft(log_mag, phase, cfg))


def split_chunks(spec: tf.Tensor, chunk_frames: int) -> tf.Tensor:
    """Encoder chunks ``[..., k*chunk, bins] -> [..., k, chunk, bins]`` (trailing frames dropped)."""
    spec = tf.convert_to_tensor(spec)
    k = tf.shape(spec)[-2] // chunk_frames
    lead = tf.shape(spec)[:-2]
    bins = spec.shape[-1]
    spec = spec[..., : k * chunk_frames, :]
    return tf.reshape(spec, tf.concat([lead, [k, chunk_frames, bins]], axis=0))


def merge_chunks(chunks: tf.Tensor) -> tf.Tensor:
    """Inverse of `split_chunks`: ``[..., k, chunk, bins] -> [..., k*chunk, bins]``."""
    chunks = tf.convert_to_tensor(chunks)
    shape = tf.shape(chunks)
    return tf.reshape(chunks, tf.concat([shape[:-3], [shape[-3] * shape[-2], shape[-1]]], axis=0))


# ---------------------------------------------------------------------------------------------
# Display spectrogram (reference 1.5)


def mel_matrix(cfg: AudioConfig) -> np.ndarray:
    """``[display bins, mel_bins]`` averaging matrix: Slaney-area-weighted TF mel filters whose
    columns are normalised to sum to 1 (reference 1.5)."""
    import librosa

    bins = 2 * cfg.display_hop + 1
    weights = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=cfg.mel_bins, num_spectrogram_bins=bins, sample_rate=cfg.sample_rate,
        lower_edge_hertz=0.0, upper_edge_hertz=cfg.sample_rate / 2).numpy().astype(np.float64)
    freqs = librosa.mel_frequencies(cfg.mel_bins + 2, fmin=0.0, fmax=cfg.sample_rate / 2)
    weights *= (2.0 / (freqs[2:] - freqs[:-2]))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = weights / weights.sum(axis=0, keepdims=True)
    return np.nan_to_num(weights).astype(np.float32)


def display_mel(audio: np.ndarray, cfg: AudioConfig, top_db: float = 80.0) -> np.ndarray:
    """Mono-mix display mel spectrogram ``[mel_bins, frames]``, low frequencies in row -1.

    STFT with hop ``display_hop`` and window ``4*display_hop``; dB with a top-dB floor over the
    whole excerpt; normalised with mu/sigma; averaged per mel band; clipped to [-1, 1].
    """
    mono = np.asarray(audio, np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    power = tf.abs(stft(mono, cfg.display_hop)) ** 2
    db = 10.0 * np.log10(np.maximum(power.numpy(), POWER_FLOOR))
    db = np.maximum(db, db.max() - top_db) if db.size else db
    spec = (db - cfg.mu) / cfg.sigma
    mel = spec @ mel_matrix(cfg)
    return np.clip(np.flipud(mel.T), -1.0, 1.0)


def save_spectrogram_png(path: str, audios: list, cfg: AudioConfig, titles: list | None = None) -> str:
    """Render one display mel spectrogram per audio (rows of one figure) to a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(audios)
    fig, axes = plt.subplots(rows, 1, figsize=(12, 3 * rows), squeeze=False)
    for i, audio in enumerate(audios):
        ax = axes[i, 0]
        ax.imshow(display_mel(audio, cfg), aspect="auto", cmap="magma", vmin=-1, vmax=1)
        ax.set_title(titles[i] if titles else f"sample {i + 1}")
        ax.axis("off")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80)
    finally:
        plt.close(fig)
    return path
