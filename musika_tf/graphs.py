"""The engine's compiled entry points over the networks: what the live engine calls and what an
exported model folder saves as its SavedModel signatures (`InferenceGraphs`), plus the block
layout they are cut by (`BlockLayout`, part of the noise layout) and the streaming iSTFT pieces.

The host-side loop that drives them (coordinates, conditions, overlap-add carry, exact lengths)
is `musika_tf.inference`; the folder format that saves them is `musika_tf.export`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import tensorflow as tf

from . import audio as audio_lib
from .autoencoder import latents_per_chunk, reseed_decoders
from .config import Preset
from .gan import append_condition, condition_channels
from .layers import fold, reseed_noise

PRECISIONS = ("float32", "bfloat16")  # engine compute precisions (`bfloat16_supported` for the second)
CARRY_FRAMES = 3  # iSTFT frames (window 4*hop, step hop) that overlap the next unit's first segment
ENDPOINTS = ("generate_windows", "decode_spectrogram", "decode_block", "decode_waveform")


@dataclass(frozen=True)
class BlockLayout:
    """Sizes of the engine's units; part of the noise layout (same layout + seed -> same audio)."""

    windows_per_block: int = 2  # generator windows per call (one noise seed each block)
    decode_chunks: int = 8  # AE chunks per audio channel per decode call (one noise seed each)

    def __post_init__(self):
        if self.windows_per_block < 1 or self.decode_chunks < 1:
            raise ValueError(f"block layout sizes must be >= 1, got {self}")

    def unit_latents(self, preset: Preset) -> int:
        """Latents per decode unit: ``decode_chunks * latents_per_chunk``."""
        return self.decode_chunks * latents_per_chunk(preset)

    def unit_samples(self, preset: Preset) -> int:
        """Audio samples emitted per decode unit (per channel)."""
        return self.unit_latents(preset) * preset.ae.frames_per_latent * preset.audio.hop

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BlockLayout":
        return cls(**{k: int(v) for k, v in data.items()})


def bfloat16_supported() -> bool:
    """Whether bfloat16 runs natively here: a GPU, or a CPU with AVX512_BF16 or AMX-BF16."""
    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def window_seconds(preset: Preset) -> float:
    """Duration of one generator window in seconds (latlen latents)."""
    return preset.gan.latlen * preset.samples_per_latent / preset.audio.sample_rate



# ---------------------------------------------------------------------------------------------
# Graph pieces: traced for the live engine and saved by `musika_tf.export`


def overlap_add(frames: tf.Tensor, hop: int) -> tf.Tensor:
    """Complete iSTFT segments of windowed frames ``[C, F, 4*hop] -> [C, (F-3)*hop]``.

    Segment j (samples of frame j+3's first hop) = frame j+3 part 0 + frame j+2 part 1 + frame j+1
    part 2 + frame j part 3, summed in that order, so a segment's value never depends on where a
    block boundary falls.
    """
    parts = tf.reshape(frames, [tf.shape(frames)[0], tf.shape(frames)[1], 4, hop])
    out = parts[:, 3:, 0] + parts[:, 2:-1, 1] + parts[:, 1:-2, 2] + parts[:, :-3, 3]
    return tf.reshape(out, [tf.shape(frames)[0], -1])


def windowed_frames(magnitude: tf.Tensor, phase: tf.Tensor, cfg) -> tf.Tensor:
    """Normalised ``[C, F, bins]`` magnitude and phase -> windowed iSTFT frames ``[C, F, 4*hop]``.

    The per-frame half of `audio.istft` (reference 1.4): `audio.complex_spectrum`, inverse FFT,
    times the least-squares synthesis window.
    """
    spectrum = audio_lib.complex_spectrum(magnitude, phase, cfg)
    window = tf.signal.inverse_stft_window_fn(cfg.hop)(4 * cfg.hop, tf.float32)
    return tf.signal.irfft(spectrum, [4 * cfg.hop]) * window


def istft_block(magnitude: tf.Tensor, phase: tf.Tensor, carry: tf.Tensor, cfg) -> dict:
    """One streaming iSTFT step: ``[C, F, bins]`` spectrogram and the previous block's last 3 frames
    ``carry [C, 3, 4*hop]`` -> ``{audio [F*hop, C] clipped to [-1, 1], carry}``."""
    frames = tf.concat([carry, windowed_frames(magnitude, phase, cfg)], axis=1)
    audio = overlap_add(frames, cfg.hop)
    return {"audio": tf.clip_by_value(tf.transpose(audio), -1.0, 1.0),
            "carry": frames[:, -CARRY_FRAMES:]}


class InferenceGraphs:
    """The engine's compiled entry points over live Keras networks (what `export` saves).

    - ``generate_windows(coordinates [W, latlen, 2cd] (, condition [W, latlen, K]), seed int64 [])
      -> latents [W, latlen, 2D]``; the condition is the network condition
      (`musika_tf.conditioning.network_condition`: density K=1, tempo K=3 with the beat phase)
    - ``decode_spectrogram(latents [T, 2D], seed) -> {magnitude, phase}`` each ``[2, T*fpl, bins]``
    - ``decode_block(latents [T, 2D], carry [2, 3, 4*hop], seed) -> {audio [T*fpl*hop, 2],
      carry [2, 3, 4*hop]}``: the streaming step (audio clipped to [-1, 1])
    - ``decode_waveform(latents [T, 2D], seed) -> audio [(T*fpl + 3)*hop, 2]``: one block on its own,
      the same as the reference's single iSTFT (clipped)

    T must be a multiple of ``latents_per_chunk``. Decoding reseeds DEC2 with ``seed`` and DEC with
    ``seed + 1`` (as `Autoencoder.decode_latents`). Batch dimensions are relaxed (``None``).
    """

    def __init__(self, preset: Preset, generator, decoder2, decoder,
                 layout: BlockLayout | None = None, jit_compile: bool = False):
        self.preset, self.layout = preset, layout or BlockLayout()
        self.generator, self.decoder2, self.decoder = generator, decoder2, decoder
        self.conditional = preset.gan.cond != "none"
        for name, (fn, spec) in self.endpoints().items():
            setattr(self, name, tf.function(fn, input_signature=spec, autograph=False,
                                            jit_compile=jit_compile))

    def endpoints(self) -> dict:
        """``name -> (python function, input signature)`` of every entry point."""
        p = self.preset
        seed = tf.TensorSpec([], tf.int64, name="seed")
        coords = tf.TensorSpec([None, p.gan.latlen, 2 * p.gan.coorddepth], tf.float32,
                               name="coordinates")
        latents = tf.TensorSpec([None, p.stereo_latent_dim], tf.float32, name="latents")
        carry = tf.TensorSpec([2, CARRY_FRAMES, 4 * p.audio.hop], tf.float32, name="carry")
        if self.conditional:
            cond = tf.TensorSpec([None, p.gan.latlen, condition_channels(p)], tf.float32,
                                 name="condition")
            generate = (self._generate_conditional, [coords, cond, seed])
        else:
            generate = (self._generate, [coords, seed])
        return dict(zip(ENDPOINTS, (
            generate,
            (self._spectrogram_dict, [latents, seed]),
            (self._decode_block, [latents, carry, seed]),
            (self._decode_waveform, [latents, seed]),
        )))

    def _generate(self, coordinates, seed):
        reseed_noise(self.generator, seed)
        return self.generator(coordinates, training=False)[:, 0]

    def _generate_conditional(self, coordinates, condition, seed):
        return self._generate(append_condition(coordinates, condition), seed)

    def _spectrogram(self, latents, seed):
        """``[T, 2D]`` -> (magnitude, phase) ``[2, T*fpl, bins]``; both channels in one batch."""
        p = self.preset
        lpc, dim = latents_per_chunk(p), p.ae.latent_dim
        reseed_decoders(self.decoder2, self.decoder, seed)
        per_channel = tf.transpose(tf.reshape(latents, [-1, 2, dim]), [1, 0, 2])  # [2, T, D]
        chunks = tf.reshape(per_channel, [-1, 1, lpc, dim])  # [2K, 1, lpc, D], channel outermost
        level1 = self.decoder2(fold(chunks, 2), training=False)  # [2K, 1, chunk, D1]
        magnitude, phase = self.decoder(fold(level1, 2), training=False)  # [2K, chunk, bins]
        shape = [2, -1, p.audio.bins]
        return tf.reshape(magnitude, shape), tf.reshape(phase, shape)

    def _spectrogram_dict(self, latents, seed):
        magnitude, phase = self._spectrogram(latents, seed)
        return {"magnitude": magnitude, "phase": phase}

    def _decode_block(self, latents, carry, seed):
        magnitude, phase = self._spectrogram(latents, seed)
        return istft_block(magnitude, phase, carry, self.preset.audio)

    def _decode_waveform(self, latents, seed):
        magnitude, phase = self._spectrogram(latents, seed)
        frames = windowed_frames(magnitude, phase, self.preset.audio)
        pad = tf.zeros_like(frames[:, :CARRY_FRAMES])
        audio = overlap_add(tf.concat([pad, frames, pad], axis=1), self.preset.audio.hop)
        return tf.clip_by_value(tf.transpose(audio), -1.0, 1.0)
