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
from . import stateless
from .autoencoder import decode_sequence, latents_per_chunk, reseed_decoders
from .conditioning import network_cond
from .config import Preset
from .gan import append_condition, condition_channels
from .layers import fold, reseed_noise

PRECISIONS = ("float32", "bfloat16")  # engine compute precisions (`bfloat16_supported` for the second)
CARRY_FRAMES = 3  # iSTFT frames (window 4*hop, step hop) that overlap the next unit's first segment
ENDPOINTS = ("generate_windows", "decode_spectrogram", "decode_block", "decode_waveform")
STREAM_ENDPOINTS = ("stream_state", "stream_step")  # the whole step in the graph (stateless sampler)
SAMPLERS = ("stateless", "numpy")  # `musika_tf.stateless`; the numpy one of older folders


@dataclass(frozen=True)
class BlockLayout:
    """Sizes of the engine's units and the sampler of its random draws: the noise layout (same
    layout + seed -> same audio).

    ``sampler``: ``'stateless'`` (TensorFlow stateless ops, `musika_tf.stateless`; what a folder's
    ``stream_step`` signature computes in its graph) or ``'numpy'`` (numpy's SeedSequence / PCG64:
    folders exported before the sampler was recorded, whose cards lack it).
    """

    windows_per_block: int = 2  # generator windows per call (one noise seed each block)
    decode_chunks: int = 8  # AE chunks per audio channel per decode call (one noise seed each)
    sampler: str = "stateless"

    def __post_init__(self):
        if self.windows_per_block < 1 or self.decode_chunks < 1:
            raise ValueError(f"block layout sizes must be >= 1, got {self}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")

    def unit_latents(self, preset: Preset) -> int:
        """Latents per decode unit: ``decode_chunks * latents_per_chunk``."""
        return self.decode_chunks * latents_per_chunk(preset)

    def unit_samples(self, preset: Preset) -> int:
        """Audio samples emitted per decode unit (per channel)."""
        return self.unit_latents(preset) * preset.ae.frames_per_latent * preset.audio.hop

    def block_latents(self, preset: Preset) -> int:
        """Latents per generator block: ``windows_per_block * latlen``."""
        return self.windows_per_block * preset.gan.latlen

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BlockLayout":
        """From `to_dict`; a dict without ``sampler`` (older cards) is the numpy sampler."""
        sizes = {k: int(v) for k, v in data.items() if k != "sampler"}
        return cls(**sizes, sampler=data.get("sampler", "numpy"))


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
      (`musika_tf.conditioning.network_condition`: density K=1; tempo, and density with
      `gan.density_phase`, K=3 with the beat or onset phase)
    - ``decode_spectrogram(latents [T, 2D], seed) -> {magnitude, phase}`` each ``[2, T*fpl, bins]``
    - ``decode_block(latents [T, 2D], carry [2, 3, 4*hop], seed) -> {audio [T*fpl*hop, 2],
      carry [2, 3, 4*hop]}``: the streaming step (audio clipped to [-1, 1]); with
      ``preset.ae.decode_context`` = m > 0 the latents are one decode unit's U (``layout.
      unit_latents``) followed by m latents of look-ahead and, except in a stream's first unit,
      preceded by m latents of history: ``T = U + m`` or ``U + 2m``, and the audio is the unit's
      ``U*fpl*hop`` samples, decoded seeing its neighbours (`musika_tf.autoencoder.decode_sequence`)
    - ``decode_waveform(latents [T, 2D], seed) -> audio [(T*fpl + 3)*hop, 2]``: one block on its own,
      the same as the reference's single iSTFT (clipped)

    Without ``decode_context``, T must be a multiple of ``latents_per_chunk`` and every chunk is
    decoded on its own, as the reference; with it, sequences are decoded whole. Decoding reseeds
    DEC2 with ``seed`` and DEC with ``seed + 1`` (as `Autoencoder.decode_latents`). Batch
    dimensions are relaxed (``None``).

    With the stateless sampler (``layout.sampler``) also the whole engine step in the graph, so a
    SavedModel streams on its own (the engine's `AudioStream` with a constant condition, bit for bit):

    - ``stream_state() -> {latents [0, 2D], carry [2, 3, 4*hop], beat_phase float64 []}`` (and
      ``history [0, 2D]`` with ``decode_context``: the last m latents already decoded): the
      state before decode unit 0
    - ``stream_step(seed int64 [], unit int64 [], bound float32 [] (, condition float32 []),
      latents, carry, beat_phase) -> {audio [unit_samples, 2], latents, carry, beat_phase}``:
      decode unit ``unit`` (0, 1, 2, ... each with the state the previous call returned); it
      generates the generator blocks it needs (coordinates, noise seeds and beat phase from
      `musika_tf.stateless`) with `condition` (normalised, one value for every frame they hold),
      keeps the latents not yet decoded in the state, and decodes one unit with the carried frames
    """

    def __init__(self, preset: Preset, generator, decoder2, decoder,
                 layout: BlockLayout | None = None, jit_compile: bool = False):
        self.preset, self.layout = preset, layout or BlockLayout()
        self.generator, self.decoder2, self.decoder = generator, decoder2, decoder
        self.conditional = preset.gan.cond != "none"
        self.context = preset.ae.decode_context  # latents of neighbours seen by a decode unit
        for name, (fn, spec) in self.endpoints().items():  # the stream step loops: never XLA
            setattr(self, name, tf.function(fn, input_signature=spec, autograph=False,
                                            jit_compile=jit_compile and name in ENDPOINTS))

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
        out = dict(zip(ENDPOINTS, (
            generate,
            (self._spectrogram_dict, [latents, seed]),
            (self._decode_block, [latents, carry, seed]),
            (self._decode_waveform, [latents, seed]),
        )))
        if self.layout.sampler == "stateless":
            state = [latents, carry, tf.TensorSpec([], tf.float64, name="beat_phase")]
            if self.context:
                state.append(tf.TensorSpec([None, p.stereo_latent_dim], tf.float32, name="history"))
            step = [seed, tf.TensorSpec([], tf.int64, name="unit"),
                    tf.TensorSpec([], tf.float32, name="bound")]
            if self.conditional:
                step = (self._stream_step_conditional,
                        step + [tf.TensorSpec([], tf.float32, name="condition")] + state)
            else:
                step = (self._stream_step, step + state)
            out.update(zip(STREAM_ENDPOINTS, ((self._stream_state, []), step)))
        return out

    def _generate(self, coordinates, seed):
        reseed_noise(self.generator, seed)
        return self.generator(coordinates, training=False)[:, 0]

    def _generate_conditional(self, coordinates, condition, seed):
        return self._generate(append_condition(coordinates, condition), seed)

    def _spectrogram(self, latents, seed, trim=(0, 0)):
        """``[T, 2D]`` -> (magnitude, phase) ``[2, (T - a - b)*fpl, bins]``; both channels in one
        batch. ``trim = (a, b)``: context latents at either end (``decode_context`` only)."""
        p = self.preset
        lpc, dim = latents_per_chunk(p), p.ae.latent_dim
        reseed_decoders(self.decoder2, self.decoder, seed)
        per_channel = tf.transpose(tf.reshape(latents, [-1, 2, dim]), [1, 0, 2])  # [2, T, D]
        if self.context:
            return decode_sequence(p, self.decoder2, self.decoder, per_channel, trim)
        chunks = tf.reshape(per_channel, [-1, 1, lpc, dim])  # [2K, 1, lpc, D], channel outermost
        level1 = self.decoder2(fold(chunks, 2), training=False)  # [2K, 1, chunk, D1]
        magnitude, phase = self.decoder(fold(level1, 2), training=False)  # [2K, chunk, bins]
        shape = [2, -1, p.audio.bins]
        return tf.reshape(magnitude, shape), tf.reshape(phase, shape)

    def _spectrogram_dict(self, latents, seed):
        magnitude, phase = self._spectrogram(latents, seed)
        return {"magnitude": magnitude, "phase": phase}

    def _decode_block(self, latents, carry, seed):
        trim = (0, 0)
        if self.context:  # [history (0 or m) | unit | look-ahead m]
            history = tf.shape(latents)[0] - self.layout.unit_latents(self.preset) - self.context
            trim = (history, self.context)
        magnitude, phase = self._spectrogram(latents, seed, trim)
        return istft_block(magnitude, phase, carry, self.preset.audio)

    def _decode_waveform(self, latents, seed):
        magnitude, phase = self._spectrogram(latents, seed)
        frames = windowed_frames(magnitude, phase, self.preset.audio)
        pad = tf.zeros_like(frames[:, :CARRY_FRAMES])
        audio = overlap_add(tf.concat([pad, frames, pad], axis=1), self.preset.audio.hop)
        return tf.clip_by_value(tf.transpose(audio), -1.0, 1.0)

    # The engine step in the graph (stateless sampler)

    def _stream_state(self):
        p = self.preset
        state = {"latents": tf.zeros([0, p.stereo_latent_dim]),
                 "carry": tf.zeros([2, CARRY_FRAMES, 4 * p.audio.hop]),
                 "beat_phase": tf.zeros([], tf.float64)}
        if self.context:
            state["history"] = tf.zeros([0, p.stereo_latent_dim])
        return state

    def _stream_step(self, seed, unit, bound, latents, carry, beat_phase, history=None):
        return self._stream(seed, unit, bound, None, latents, carry, beat_phase, history)

    def _stream_step_conditional(self, seed, unit, bound, condition, latents, carry, beat_phase,
                                 history=None):
        return self._stream(seed, unit, bound, condition, latents, carry, beat_phase, history)

    def _stream(self, seed, unit, bound, condition, latents, carry, beat_phase, history):
        """One decode unit: generator blocks until ``U`` latents (plus ``decode_context`` m of
        look-ahead) wait (pending ``[n, 2D]`` hold frames ``unit*U .. unit*U+n-1``), then DEC2/DEC
        and the iSTFT step on the first ``U`` (with `history`, the m latents before them)."""
        p, layout = self.preset, self.layout
        units, block = layout.unit_latents(p), layout.block_latents(p)
        needed = units + self.context
        tf.debugging.assert_non_negative(seed, "seeds must be non-negative")
        tf.debugging.assert_positive(bound, "the truncation bound must be > 0")
        pending = unit * units + tf.cast(tf.shape(latents)[0], tf.int64)
        tf.debugging.assert_equal(pending % block, tf.zeros([], tf.int64),
                                  "stream_step: the state does not belong to this unit (pass unit "
                                  "0, 1, 2, ... each with the state the previous call returned)")

        def generate(latents, phase):
            index = (unit * units + tf.cast(tf.shape(latents)[0], tf.int64)) // block
            new, phase = self._stream_block(seed, index, bound, condition, phase)
            return tf.concat([latents, new], axis=0), phase

        latents, beat_phase = tf.while_loop(
            lambda latents, _: tf.shape(latents)[0] < needed, generate, [latents, beat_phase],
            shape_invariants=[tf.TensorShape([None, p.stereo_latent_dim]), tf.TensorShape([])])
        decode_seed = stateless.unit_seed(seed, stateless.DECODER, unit)
        if not self.context:
            out = self._decode_block(latents[:units], carry, decode_seed)
            return {**out, "latents": latents[units:], "beat_phase": beat_phase}
        out = self._decode_block(tf.concat([history, latents[:needed]], 0), carry, decode_seed)
        history = tf.concat([history, latents[:units]], 0)[-self.context:]
        return {**out, "latents": latents[units:], "beat_phase": beat_phase, "history": history}

    def _stream_block(self, seed, index, bound, condition, phase):
        """Generator block `index`: latents ``[W*latlen, 2D]`` and the beat phase after it."""
        p, windows = self.preset, self.layout.windows_per_block
        coords = stateless.block_coordinates(p, windows, seed, index, bound)
        noise_seed = stateless.unit_seed(seed, stateless.GENERATOR, index)
        if condition is None:
            latents = self._generate(coords, noise_seed)
        else:
            values = tf.fill([windows * p.gan.latlen], condition)
            features, phase = stateless.condition_features(network_cond(p), 1.0 / p.latent_rate,
                                                           values, phase)
            latents = self._generate_conditional(
                coords, tf.reshape(features, [windows, p.gan.latlen, -1]), noise_seed)
        return tf.reshape(latents, [-1, p.stereo_latent_dim]), phase
