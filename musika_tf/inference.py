"""Inference engine: seed, length, variety and condition -> stereo audio, in blocks, forever if asked.

The one path (reference section 6.1, reorganised for bounded memory and exact lengths)::

    coordinate path ──W windows──▶ generator ──▶ latent buffer [T, 2D]
        ──U latents──▶ DEC2 ──▶ DEC ──▶ magnitude/phase ──▶ windowed iSTFT frames
        ──overlap-add with the last 3 frames carried over──▶ audio block [U*fpl*hop, 2]

Work happens in two kinds of fixed-size units (`BlockLayout`):

- a *generator block*: ``windows_per_block`` consecutive windows of the seeded coordinate path in one
  generator call, its injected noise reseeded from ``(seed, block index)``;
- a *decode unit*: ``U = decode_chunks * latents_per_chunk`` consecutive latents (both audio channels,
  ``2 * decode_chunks`` AE chunks) through DEC2 and DEC in one call, noise reseeded from
  ``(seed, unit index)``. Without ``preset.ae.decode_context`` its chunks are decoded independently
  (as the reference: every chunk edge is a block edge the ear can catch); with m =
  ``decode_context`` the unit is decoded as one sequence together with the m latents after it and
  the m before it (none before the first), and only the unit's own frames are kept, so its audio
  joins its neighbours' as if the whole piece had been decoded at once.

Because every random draw is keyed by a unit's index and every call has the same shape, the audio is a
pure function of (model, layout, seed, bound, condition): a finite piece is exactly the first N samples
of the endless stream, and cutting the stream into blocks changes nothing.

Random draws (coordinates, noise seeds, beat phase) come from the layout's sampler
(`BlockLayout.sampler`): the stateless one (`musika_tf.stateless`, TensorFlow stateless ops) for live
networks and new exports, whose ``stream_step`` signature runs this whole loop in the graph with the
same draws; or numpy's (`NumpySampler`) for folders exported before it, which keep their audio.

Seams. The reference concatenates all chunk spectrograms and runs one iSTFT (window 4*hop, step hop).
Output segment k (``hop`` samples) is the sum of frames k-3..k, so a decode unit's frames complete the
segments of its own frames once the 3 frames before it are known: the stream carries those 3 windowed
time-domain frames (zeros before the start) and sums the four contributions in one fixed order
(`overlap_add`). Streamed audio is therefore bit-identical however it is cut; against the reference's
single `tf.signal.inverse_stft` over all frames it differs only by float32 rounding (summation order,
``exp`` instead of ``pow``): ``|diff| < 1e-5``, checked in the tests. Each unit emits
``U * fpl * hop`` samples; lengths are cut exactly from that stream, with no assumption about
seconds per window (reference section 9, item 18) and no dropped batch (item 16).

Conditioning (models trained with ``preset.gan.cond != 'none'``): one normalised value in [0, 1] per
latent frame, either a constant or a curve (`ConditionSchedule`). Tempo models also get the beat
phase, integrated over the stream from 0 at its first frame, so the beat grid runs on unbroken
across windows and bends smoothly when the tempo changes.

A stream's condition can be changed at any time (`AudioStream.set_condition`, which returns the
first sample it affects); the change applies from the next decode unit (``decode_chunks *
latents_per_chunk`` latents, 11.9 s at the CPU presets' default layout), so it is heard as soon as
the audio already handed out has played. The generator block holding that unit is generated again
with the old values before the change and the new ones after it. What the exactness guarantee
becomes: a constant condition still gives exactly the first N samples of `generate`; after a change
the stream equals `generate` with the switched curve from the change on, except the first 3 hops
after it (they overlap-add with frames emitted before the change, which `generate` would have made
with the new curve in view).
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterator, Union

import numpy as np
import soundfile as sf

from . import stateless
from .conditioning import generation_condition, network_cond
from .config import Preset
from .coordinates import inference_coordinates
from .export import load_exported, load_networks
from .files import atomic_path
# The graphs' names are part of this module's API (tests, callers building a live engine).
from .graphs import (CARRY_FRAMES, ENDPOINTS, PRECISIONS, BlockLayout,  # noqa: F401
                     InferenceGraphs, bfloat16_supported, window_seconds)

DEFAULT_BOUND = 2.0  # truncation / variety bound (the v44 UI default)
_GENERATOR_STREAM, _DECODER_STREAM = stateless.GENERATOR, stateless.DECODER  # noise-seed sub-streams
FILE_SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24"}  # float32 WAV as the reference; FLAC max 24 bit

Condition = Union[None, float, np.ndarray]


def _stderr(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Layout, seeds, lengths


def unit_seed(seed: int, stream: int, index: int) -> int:
    """31-bit noise seed of unit `index` of sub-stream `stream` of the user `seed`."""
    if int(seed) < 0:
        raise ValueError(f"seeds must be non-negative, got {seed}")
    state = np.random.SeedSequence([int(seed), stream, int(index)]).generate_state(1, np.uint32)
    return int(state[0] >> 1)


def num_samples(preset: Preset, seconds: float) -> int:
    """Samples of a piece of `seconds` seconds at the preset's rate (rounded; must be >= 1)."""
    if not np.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"length must be a positive number of seconds, got {seconds}")
    return max(1, int(round(seconds * preset.audio.sample_rate)))


def condition_frames(preset: Preset, seconds: float) -> int:
    """Latent frames (condition values) that cover `seconds` of audio."""
    return int(np.ceil(seconds * preset.latent_rate))


# ---------------------------------------------------------------------------------------------
# Samplers: the random draws of one stream, keyed by unit index (`BlockLayout.sampler`)


class NumpySampler:
    """Draws of folders exported before the stateless sampler: numpy's SeedSequence / PCG64
    (`unit_seed`, `coordinates.inference_coordinates`, `conditioning.generation_condition`)."""

    def __init__(self, preset: Preset, layout: BlockLayout, seed: int, bound: float):
        if int(seed) < 0:
            raise ValueError(f"seeds must be non-negative, got {seed}")
        if not bound > 0:
            raise ValueError(f"truncation bound must be > 0, got {bound}")
        self.preset, self.layout, self.seed, self.bound = preset, layout, int(seed), float(bound)

    def coordinates(self, block: int) -> np.ndarray:
        """Windows of generator block `block`: ``[W, latlen, 2cd]`` float32."""
        windows = self.layout.windows_per_block
        return inference_coordinates(self.preset, windows, self.bound, self.seed, block * windows)

    def noise_seed(self, stream: int, index: int) -> np.int64:
        return np.int64(unit_seed(self.seed, stream, index))

    def condition(self, values: np.ndarray, phase: float) -> tuple:
        """Normalised values ``[T]`` from beat or onset phase `phase` -> (network condition
        ``[T, K]``, phase after them)."""
        return generation_condition(network_cond(self.preset), values, phase,
                                    1.0 / self.preset.latent_rate)


class StatelessSampler(NumpySampler):
    """The stateless sampler (`musika_tf.stateless`): the draws a folder's ``stream_step``
    signature computes in its graph, through the engine's compiled `stateless.StatelessDraws`."""

    def __init__(self, preset: Preset, layout: BlockLayout, seed: int, bound: float,
                 draws: stateless.StatelessDraws):
        super().__init__(preset, layout, seed, bound)
        self.draws = draws

    def coordinates(self, block: int) -> np.ndarray:
        return self.draws.coordinates(self.seed, block, self.bound).numpy()

    def noise_seed(self, stream: int, index: int) -> np.int64:
        return np.int64(self.draws.unit_seed(self.seed, stream, index).numpy())

    def condition(self, values: np.ndarray, phase: float) -> tuple:
        features, after = self.draws.condition(values, np.float64(phase))
        return features.numpy(), float(after.numpy())


# ---------------------------------------------------------------------------------------------
# Conditions


class ConditionSchedule:
    """Normalised condition values per latent frame: a curve from frame `start` on, and any later
    curves switched in from their own frames (`switched`).

    `value`: a float (constant) or a 1-D array, one value per latent frame from `start` on, whose
    last value is held after its end (and whose first is used before `start`). Values must lie in
    [0, 1].
    """

    def __init__(self, value, start: int = 0):
        curve = np.atleast_1d(np.asarray(value, np.float32))
        if curve.ndim != 1 or curve.size == 0:
            raise ValueError(f"a condition is a number or a 1-D curve, got shape {curve.shape}")
        if not np.all(np.isfinite(curve)) or curve.min() < 0.0 or curve.max() > 1.0:
            raise ValueError("condition values must be normalised to [0, 1] (convert onsets/s or "
                             "BPM with musika_tf.conditioning.normalise_condition)")
        self.segments = [(int(start), curve)]  # (first frame, curve), ascending first frames

    @property
    def curve(self) -> np.ndarray:
        """The latest curve."""
        return self.segments[-1][1]

    def switched(self, frame: int, later: "ConditionSchedule") -> "ConditionSchedule":
        """This schedule up to `frame`, then `later`'s latest curve from `frame` on."""
        out = ConditionSchedule(self.segments[0][1], self.segments[0][0])
        out.segments = [seg for seg in self.segments if seg[0] < frame] + [(int(frame), later.curve)]
        return out

    def values(self, first: int, count: int) -> np.ndarray:
        """Values of frames ``first .. first+count-1``: ``[count]`` float32."""
        index = np.arange(first, first + count)
        out = np.empty(count, np.float32)
        for n, (start, curve) in enumerate(self.segments):  # later segments overwrite
            mask = index >= start if n else np.ones(count, bool)
            out[mask] = curve[np.clip(index[mask] - start, 0, len(curve) - 1)]
        return out


def _check_condition(preset: Preset, condition: Condition) -> ConditionSchedule | None:
    """The schedule for `condition`, or an error when it does not fit the model."""
    cond = preset.gan.cond
    if cond == "none":
        if condition is not None:
            raise ValueError("this model was trained without conditioning; do not pass a condition")
        return None
    if condition is None:
        raise ValueError(f"this model is conditioned on {cond}: pass a condition value in [0, 1]")
    return ConditionSchedule(condition)


# ---------------------------------------------------------------------------------------------
# The engine


class AudioStream:
    """Endless consecutive stereo blocks ``[unit_samples, 2]`` float32 of one seeded piece.

    Iterate it (``next(stream)``) or call `read`. Memory is constant: at most one generator block of
    latents, ``decode_context`` decoded latents and 3 carried frames are held between blocks.

    Changing the condition while streaming (conditioned models)::

        stream = engine.stream(seed=3, condition=0.5)   # normalised, normalise_condition(cond, x)
        for block in stream:                            # play or write each block
            if user_moved_slider:
                first = stream.set_condition(0.8)       # a float or a curve from now on
                # blocks from sample `first` on (the next one) use 0.8; earlier ones never change

    A change is heard one decode unit (``block_samples``) after the audio already taken at most;
    a player holding little audio ahead hears it soon (the app uses units of 3 s). The truncation
    bound is fixed per stream: `generate.py --stream` writes one stream; the app starts a new
    stream of the same seed for a new variety.
    """

    def __init__(self, engine: "Engine", seed: int, bound: float, condition: Condition):
        self.engine, self.seed = engine, int(seed)
        preset, layout = engine.preset, engine.layout
        self._schedule = _check_condition(preset, condition)
        self._sampler = engine.sampler(self.seed, bound)
        self._latents = np.zeros((0, preset.stereo_latent_dim), np.float32)  # not yet decoded
        self._history = self._latents  # the last decode_context latents already decoded
        self._context = preset.ae.decode_context
        self._carry = np.zeros((2, CARRY_FRAMES, 4 * preset.audio.hop), np.float32)
        self._beat_phase = 0.0  # tempo models: beat phase (cycles) of the next frame to generate
        self._block_phase = {}  # generator block -> beat phase at its first frame (not yet decoded)
        self._block = 0  # next generator block
        self._unit = 0  # next decode unit
        self._unit_latents = layout.unit_latents(preset)
        self.block_samples = layout.unit_samples(preset)
        self.samples_emitted = 0

    @property
    def block_frames(self) -> int:
        """Latent frames per generator block."""
        return self.engine.layout.block_latents(self.engine.preset)

    @property
    def frames_generated(self) -> int:
        """Latent frames the generator has produced so far."""
        return self._block * self.block_frames

    @property
    def frames_decoded(self) -> int:
        """Latent frames already decoded into emitted audio (a condition change starts here)."""
        return self._unit * self._unit_latents

    def set_condition(self, condition: Condition) -> int:
        """Use `condition` (float or per-frame curve starting now) from the next decode unit on.

        Returns the first audio sample it affects, ``samples_emitted``: nothing already emitted
        changes. The generator block holding that frame is generated again with the old values
        before it and the new ones from it, and its latents from the frame on replace the ones
        waiting to be decoded (the module docstring says what this does to exactness).
        """
        if self.engine.preset.gan.cond == "none":
            raise ValueError("set_condition: this model was trained without conditioning, so there "
                             "is no condition to change; use a density- or tempo-conditioned model")
        frame = self.frames_decoded
        self._schedule = self._schedule.switched(frame, _check_condition(self.engine.preset, condition))
        self._replan(frame)
        return frame * self.engine.preset.samples_per_latent

    def _replan(self, frame: int) -> None:
        """Regenerate from the generator block holding `frame`; keep its latents from `frame` on."""
        block = frame // self.block_frames
        if block >= self._block:  # not generated yet: nothing to redo
            return
        self._block = block
        self._beat_phase = self._block_phase[block]
        self._latents = self._latents[:0]
        self._generate_block()
        offset = frame - block * self.block_frames
        if self._context:  # history frames inside the regenerated block follow it too
            count = min(offset, len(self._history))
            self._history = np.concatenate([self._history[:len(self._history) - count],
                                            self._latents[offset - count:offset]])
        self._latents = self._latents[offset:]

    def __iter__(self) -> "AudioStream":
        return self

    def __next__(self) -> np.ndarray:
        units = self._unit_latents
        while len(self._latents) < units + self._context:  # the unit and its look-ahead
            self._generate_block()
        seed = self._sampler.noise_seed(_DECODER_STREAM, self._unit)
        # [history | unit | look-ahead] (graphs.InferenceGraphs.decode_block); both empty at context 0
        latents = np.concatenate([self._history, self._latents[:units + self._context]])
        decoded = np.concatenate([self._history, self._latents[:units]])
        self._history = decoded[len(decoded) - self._context:]
        self._latents = self._latents[units:]
        out = self.engine.backend.decode_block(latents, self._carry, seed)
        self._carry = out["carry"].numpy()
        self._unit += 1
        self.samples_emitted += self.block_samples
        return out["audio"].numpy()

    def read(self, count: int) -> Iterator[np.ndarray]:
        """The next blocks up to exactly `count` samples in total (the last one cut; the stream is
        then positioned at a block boundary past them)."""
        remaining = int(count)
        while remaining > 0:
            block = next(self)
            yield block[:remaining]
            remaining -= len(block)

    def _generate_block(self) -> None:
        oldest = self.frames_decoded // self.block_frames  # the oldest block a replan can need
        self._block_phase = {b: p for b, p in self._block_phase.items() if b >= oldest}
        self._block_phase[self._block] = self._beat_phase
        coords = self._sampler.coordinates(self._block)
        seed = self._sampler.noise_seed(_GENERATOR_STREAM, self._block)
        args = [coords]
        if self._schedule is not None:
            values = self._schedule.values(self.frames_generated, coords.shape[0] * coords.shape[1])
            features, self._beat_phase = self._sampler.condition(values, self._beat_phase)
            args.append(features.reshape(*coords.shape[:2], -1))
        latents = self.engine.backend.generate_windows(*args, seed).numpy()
        self._latents = np.concatenate([self._latents, latents.reshape(-1, latents.shape[-1])])
        self._block += 1


class Engine:
    """Stereo float32 audio of exactly the requested length from a seed, a truncation bound and a
    condition, over any backend with ``preset``, ``layout``, ``generate_windows`` and
    ``decode_block`` (live `InferenceGraphs` or a loaded export, `musika_tf.export.load_exported`).
    """

    def __init__(self, backend):
        self.backend = backend
        self.preset: Preset = backend.preset
        self.layout: BlockLayout = backend.layout
        self._draws = None  # compiled stateless draws, made on first use

    def sampler(self, seed: int, bound: float) -> NumpySampler:
        """The random draws of one stream, by the layout's sampler."""
        if self.layout.sampler == "numpy":
            return NumpySampler(self.preset, self.layout, seed, bound)
        if self._draws is None:
            self._draws = stateless.StatelessDraws(self.preset, self.layout.windows_per_block)
        return StatelessSampler(self.preset, self.layout, seed, bound, self._draws)

    @classmethod
    def from_models(cls, preset: Preset, generator, autoencoder, layout: BlockLayout | None = None,
                    jit_compile: bool = False) -> "Engine":
        """Engine over live networks: the (EMA) generator and ``autoencoder.decoder2/decoder``."""
        return cls(InferenceGraphs(preset, generator, autoencoder.decoder2, autoencoder.decoder,
                                   layout, jit_compile))

    @classmethod
    def load(cls, folder: str, precision: str = "float32", warn=None) -> "Engine":
        """Engine over an exported model folder (no training code needed).

        ``precision="bfloat16"`` rebuilds the networks from the folder's weights with bfloat16
        compute (float32 variables and outputs) where `bfloat16_supported`; elsewhere it calls
        `warn` (default: print to stderr) with the reason and stays in float32.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "bfloat16":
            if bfloat16_supported():
                preset, layout, generator, ae = load_networks(folder, "mixed_bfloat16")
                return cls(InferenceGraphs(preset, generator, ae.decoder2, ae.decoder, layout))
            (warn or _stderr)("bfloat16 needs a GPU or a CPU with AVX512_BF16 or AMX-BF16; this "
                              "machine has neither, so generation stays in float32")
        return cls(load_exported(folder))

    @property
    def sample_rate(self) -> int:
        return self.preset.audio.sample_rate

    def stream(self, seed: int = 0, bound: float = DEFAULT_BOUND,
               condition: Condition = None) -> AudioStream:
        """An endless `AudioStream`; its first N samples equal ``generate`` of N samples.
        `AudioStream.set_condition` changes its condition while it plays."""
        return AudioStream(self, seed, bound, condition)

    def blocks(self, seconds: float, seed: int = 0, bound: float = DEFAULT_BOUND,
               condition: Condition = None) -> Iterator[np.ndarray]:
        """Consecutive blocks ``[n, 2]`` adding up to exactly ``round(seconds * sample_rate)``."""
        total = num_samples(self.preset, seconds)
        return self.stream(seed, bound, condition).read(total)

    def generate(self, seconds: float, seed: int = 0, bound: float = DEFAULT_BOUND,
                 condition: Condition = None,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
        """A piece as one array ``[round(seconds * sr), 2]`` float32 in [-1, 1].

        `progress(n)` is called with the sample count of every finished block.
        """
        out = np.empty((num_samples(self.preset, seconds), 2), np.float32)
        position = 0
        for block in self.blocks(seconds, seed, bound, condition):
            out[position:position + len(block)] = block
            position += len(block)
            if progress:
                progress(len(block))
        return out

    def generate_to_file(self, path: str, seconds: float, seed: int = 0,
                         bound: float = DEFAULT_BOUND, condition: Condition = None,
                         progress: Callable[[int], None] | None = None) -> str:
        """Write a piece block by block (memory does not grow with its length); returns `path`.

        Format from the extension (float32 WAV, 24-bit FLAC, or soundfile's default subtype); the
        file appears under its name only once complete.
        """
        subtype = FILE_SUBTYPES.get(os.path.splitext(path)[1].lower())
        blocks = self.blocks(seconds, seed, bound, condition)
        with atomic_path(path) as tmp, sf.SoundFile(tmp, "w", self.sample_rate, 2,
                                                    subtype=subtype) as fh:
            for block in blocks:
                fh.write(block)
                if progress:
                    progress(len(block))
        return path
