"""Embedded techno set: procedural four-on-the-floor tracks with a known tempo.

Each track is drawn from its own seed: tempo uniform in 120-150 BPM, a minor key, drum patterns,
a bass line and chords (pads or dub stabs with a ping-pong delay), arranged in 4-bar sections
where parts drop in and out. Kick and bass are centred, hats/clap/chords panned, bass and chords
side-chained to the kick. Synthesis is vectorised numpy: one-shots are placed by FFT convolution
with velocity-weighted impulse trains, tonal parts use per-sample note lookup and phase sums.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from scipy import signal

from . import common

CSV_NAME = "techno.csv"
COLUMNS = ["filename", "tempo_bpm", "duration", "split", "key", "seed"]
FILE_COLUMNS = ("filename",)
DEFAULT_MINUTES = 20.0
DEFAULT_TRACK_SECONDS = 30.0
FORMAT_VERSION = 1  # bump when the synthesis changes, so old builds are rebuilt
BPM_RANGE = (120.0, 150.0)
STEPS_PER_BAR = 16  # sixteenth notes
SECTION_BARS = 4
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Chord progressions in a minor key: (root offset in semitones, minor?) per chord.
PROGRESSIONS = (
    ((0, True), (8, False), (3, False), (10, False)),  # i VI III VII
    ((0, True), (5, True)),  # i iv
    ((0, True), (10, False)),  # i VII
    ((0, True), (0, True), (8, False), (7, True)),  # i i VI v
)
PARTS = ("kick", "clap", "closed_hat", "open_hat", "bass", "chords")
PART_PROBABILITY = np.array([0.85, 0.7, 0.85, 0.6, 0.75, 0.65])  # per section
PAN = {"clap": -0.15, "closed_hat": 0.35, "open_hat": -0.3}  # -1 left .. 1 right


@dataclass(frozen=True)
class Grid:
    """Timing of a track: sixteenth-note steps at `bpm`, sample positions at `rate` Hz."""

    bpm: float
    rate: int
    samples: int

    @property
    def step_seconds(self) -> float:
        return 60.0 / self.bpm / 4.0

    @property
    def steps(self) -> int:
        return int(math.ceil(self.samples / self.rate / self.step_seconds))

    def positions(self, steps: np.ndarray) -> np.ndarray:
        """Sample index of each step (rounded, no drift)."""
        return np.round(np.asarray(steps) * self.step_seconds * self.rate).astype(int)


# ---------------------------------------------------------------------------------------------
# One-shot drum sounds (float64, mono)


def _time(seconds: float, rate: int) -> np.ndarray:
    return np.arange(int(seconds * rate)) / rate


def kick(rng: np.random.Generator, rate: int) -> np.ndarray:
    """Sine kick with an exponential pitch drop (~160 Hz to 42-55 Hz) and a click."""
    t = _time(0.5, rate)
    low, sweep = rng.uniform(42.0, 55.0), rng.uniform(90.0, 130.0)
    frequency = low + sweep * np.exp(-t / rng.uniform(0.025, 0.045))
    body = np.sin(2 * np.pi * np.cumsum(frequency) / rate) * np.exp(-t / rng.uniform(0.15, 0.3))
    click = rng.normal(0.0, 1.0, t.size) * np.exp(-t / 0.002) * 0.3
    return np.tanh(1.5 * (body + click))


def _filtered_noise(rng, seconds, rate, band, kind) -> np.ndarray:
    sos = signal.butter(4, band, btype=kind, fs=rate, output="sos")
    return signal.sosfilt(sos, rng.normal(0.0, 1.0, int(seconds * rate)))


def hat(rng: np.random.Generator, rate: int, decay: float) -> np.ndarray:
    """High-passed noise with an exponential decay of `decay` s (closed ~15 ms, open ~150 ms)."""
    noise = _filtered_noise(rng, 6 * decay, rate, rng.uniform(6500.0, 8500.0), "highpass")
    return noise * np.exp(-_time(6 * decay, rate)[: noise.size] / decay)


def clap(rng: np.random.Generator, rate: int) -> np.ndarray:
    """Band-passed noise with three quick bursts then a decaying tail."""
    t = _time(0.35, rate)
    envelope = sum(np.where(t >= d, np.exp(-(t - d) / 0.004), 0.0) for d in (0.0, 0.011, 0.022))
    envelope = envelope + np.where(t >= 0.03, 0.6 * np.exp(-(t - 0.03) / 0.08), 0.0)
    return _filtered_noise(rng, 0.35, rate, [900.0, 2600.0], "bandpass") * envelope


def place(sound: np.ndarray, positions: np.ndarray, gains: np.ndarray, samples: int) -> np.ndarray:
    """Mono track of `samples` with `sound` started at each position, scaled by `gains`."""
    index = positions[:, None] + np.arange(sound.size)
    inside = index < samples
    return np.bincount(index[inside], weights=(gains[:, None] * sound)[inside], minlength=samples)


# ---------------------------------------------------------------------------------------------
# Tonal parts


def midi_to_hz(pitch: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=float) - 69.0) / 12.0)


def saw(frequency: np.ndarray, rate: int, phase: float = 0.0) -> np.ndarray:
    """Naive sawtooth in [-1, 1] following a per-sample frequency (Hz)."""
    cycles = phase + np.cumsum(frequency) / rate
    return 2.0 * (cycles - np.floor(cycles)) - 1.0


def since_last(starts: np.ndarray, samples: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: index of the latest of the sorted `starts` at or before it (-1 if none) and
    the seconds since that start (0 where none)."""
    n = np.arange(samples)
    index = np.searchsorted(starts, n, side="right") - 1
    if starts.size == 0:
        return index, np.zeros(samples)
    return index, np.where(index >= 0, n - starts[np.maximum(index, 0)], 0) / rate


def lookup(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """`values[index]` per sample, 0 where `index` is -1 (no note yet)."""
    if values.size == 0:
        return np.zeros(index.shape)
    return np.where(index >= 0, values[np.maximum(index, 0)], 0.0)


def note_envelope(starts: np.ndarray, lengths: np.ndarray, decay: float, samples: int,
                  rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the sounding note per sample or -1, its envelope): 3 ms attack, exponential
    decay of `decay` s, 5 ms release at the end of `lengths` samples. `starts` must be sorted."""
    index, since = since_last(starts, samples, rate)
    left = lookup(lengths, index) / rate - since
    envelope = (np.minimum(since / 0.003, 1.0) * np.exp(-since / decay)
                * np.clip(left / 0.005, 0.0, 1.0))
    return index, np.where(index >= 0, envelope, 0.0)


def lowpass(audio: np.ndarray, cutoff: float, rate: int) -> np.ndarray:
    return signal.sosfilt(signal.butter(2, cutoff, fs=rate, output="sos"), audio, axis=0)


def duck(kick_positions: np.ndarray, samples: int, rate: int, depth: float) -> np.ndarray:
    """Side-chain gain: dips by `depth` at each kick and recovers in ~100 ms."""
    index, since = since_last(kick_positions, samples, rate)
    return 1.0 - np.where(index >= 0, depth * np.exp(-since / 0.1), 0.0)


def chord_pitches(key_root: int, progression, chord_steps: int, steps: int) -> np.ndarray:
    """Per step, the three chord tones (MIDI) of the progression, root position, root A3..G#4."""
    chord = (np.arange(steps) // chord_steps) % len(progression)
    offsets = np.array([o for o, _ in progression])[chord]
    thirds = np.where(np.array([m for _, m in progression])[chord], 3, 4)
    root = 57 + (key_root + offsets) % 12  # A3..G#4
    return np.stack([root, root + thirds, root + 7], axis=1)


# ---------------------------------------------------------------------------------------------
# A track


def arrangement(rng: np.random.Generator, sections: int) -> np.ndarray:
    """Boolean [sections, parts]: which parts play; the first section is kick + hats only and
    a section without kick always has chords."""
    active = rng.random((sections, len(PARTS))) < PART_PROBABILITY
    active[0] = [p in ("kick", "closed_hat") for p in PARTS]
    active[:, PARTS.index("chords")] |= ~active[:, PARTS.index("kick")]
    return active


def synth_track(track_seed: int, seconds: float, rate: int = 44100) -> tuple[np.ndarray, dict]:
    """Render one track: float32 ``[samples, 2]`` peak -1 dBFS, and {bpm, key} it was made with."""
    rng = np.random.default_rng(track_seed)
    bpm = round(float(rng.uniform(*BPM_RANGE)), 2)
    key_root = int(rng.integers(12))
    grid = Grid(bpm, rate, int(round(seconds * rate)))
    steps = np.arange(grid.steps)
    in_bar = steps % STEPS_PER_BAR
    section = steps // (STEPS_PER_BAR * SECTION_BARS)
    playing = arrangement(rng, int(section.max()) + 1)[section]  # [steps, parts]
    on = {name: playing[:, i] for i, name in enumerate(PARTS)}

    kick_steps = steps[on["kick"] & (in_bar % 4 == 0)]
    stems = _drums(rng, grid, steps, in_bar, on, kick_steps)
    pump = duck(grid.positions(kick_steps), grid.samples, rate, rng.uniform(0.3, 0.6))
    chord_steps = STEPS_PER_BAR * int(rng.choice([1, 2]))
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    tones = chord_pitches(key_root, progression, chord_steps, grid.steps)  # [steps, 3] MIDI
    bass = _bass(rng, grid, steps, in_bar, on["bass"], tones[:, 0] - 24) * pump  # A1..G#2
    chords = _chords(rng, grid, steps, in_bar, on["chords"], tones, chord_steps) * pump[:, None]
    mix = sum(stems) + 0.5 * bass[:, None] + 0.35 * chords
    mix = np.tanh(1.2 * mix) / np.tanh(1.2)  # gentle bus saturation
    return common.normalise_peak(mix.astype(np.float32)), {
        "bpm": bpm, "key": f"{NOTE_NAMES[key_root]} minor"}


def _drums(rng, grid: Grid, steps, in_bar, on, kick_steps) -> list[np.ndarray]:
    """Stereo stems of kick, clap and hats."""
    sixteenths = rng.random() < 0.5  # closed hats on every 16th, else on the off-beats
    hat_steps = steps[on["closed_hat"] & ((in_bar % 4 != 0) if sixteenths else (in_bar % 4 == 2))
                      & ~(on["open_hat"] & (in_bar % 4 == 2))]
    hits = {
        "kick": (kick(rng, grid.rate), kick_steps, 1.0),
        "clap": (clap(rng, grid.rate), steps[on["clap"] & np.isin(in_bar, (4, 12))], 0.35),
        "closed_hat": (hat(rng, grid.rate, rng.uniform(0.012, 0.025)), hat_steps, 0.18),
        "open_hat": (hat(rng, grid.rate, rng.uniform(0.1, 0.2)),
                     steps[on["open_hat"] & (in_bar % 4 == 2)], 0.15),
    }
    stems = []
    for name, (sound, at, level) in hits.items():
        gains = level * rng.uniform(0.8, 1.0, at.size)
        if name == "closed_hat":
            gains *= np.where(at % 4 == 2, 1.0, 0.6)  # accent the off-beats
        mono = place(sound, grid.positions(at), gains, grid.samples)
        stems.append(_pan(mono, PAN.get(name, 0.0)))
    return stems


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Constant-power pan, -1 (left) .. 1 (right) -> [samples, 2]."""
    angle = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1) * np.sqrt(2.0)


def _bass(rng, grid: Grid, steps, in_bar, on, roots: np.ndarray) -> np.ndarray:
    """Filtered-saw bass: off-beat notes plus random sixteenths over the per-step `roots`."""
    pattern = (np.arange(STEPS_PER_BAR) % 4 == 2) | (
        (rng.random(STEPS_PER_BAR) < 0.3) & (np.arange(STEPS_PER_BAR) % 4 != 0))
    intervals = rng.choice([0, 0, 0, 12, 7, 3, 10], STEPS_PER_BAR)
    played = steps[on & pattern[in_bar]]
    starts = grid.positions(played)
    lengths = np.full(starts.size, int(0.9 * grid.step_seconds * grid.rate))
    index, envelope = note_envelope(starts, lengths, rng.uniform(0.08, 0.2), grid.samples, grid.rate)
    pitch = roots[played] + intervals[played % STEPS_PER_BAR]
    frequency = lookup(midi_to_hz(pitch), index)
    return lowpass(saw(frequency, grid.rate) * envelope, rng.uniform(300.0, 900.0), grid.rate)


def _chords(rng, grid: Grid, steps, in_bar, on, pitches: np.ndarray, chord_steps: int
            ) -> np.ndarray:
    """Stereo chords of the per-step `pitches` [steps, voices]: sustained pads (one note per
    chord change) or dub stabs with a ping-pong delay."""
    tones = midi_to_hz(pitches)
    if rng.random() < 0.5:  # pads: a note per chord change, slow attack via long decay
        played = steps[on & (steps % chord_steps == 0)]
        lengths = np.full(played.size, int(chord_steps * grid.step_seconds * grid.rate))
        decay, cutoff = 4.0, rng.uniform(1200.0, 2500.0)
    else:  # stabs on a few off-beat sixteenths
        stab_at = rng.choice([2, 3, 6, 10, 11, 14], size=3, replace=False)
        played = steps[on & np.isin(in_bar, stab_at)]
        lengths = np.full(played.size, int(2 * grid.step_seconds * grid.rate))
        decay, cutoff = 0.12, rng.uniform(1500.0, 3500.0)
    index, envelope = note_envelope(grid.positions(played), lengths, decay, grid.samples, grid.rate)
    step_of_sample = np.minimum((np.arange(grid.samples) / grid.rate / grid.step_seconds)
                                .astype(int), grid.steps - 1)
    sides = []
    for detune in (-0.06, 0.06):  # semitones; each side slightly detuned -> width
        voices = [saw(tones[step_of_sample, v] * 2 ** (detune / 12), grid.rate, rng.random())
                  for v in range(tones.shape[1])]
        sides.append(np.mean(voices, axis=0) * envelope)
    audio = lowpass(np.stack(sides, axis=1), cutoff, grid.rate)
    return audio if decay > 1.0 else _ping_pong(audio, grid, rng)


def _ping_pong(audio: np.ndarray, grid: Grid, rng) -> np.ndarray:
    """Add dotted-eighth echoes alternating left/right (FIR echo train, FFT convolution)."""
    delay = int(round(3 * grid.step_seconds * grid.rate))
    feedback = rng.uniform(0.35, 0.55)
    echoes = np.zeros((6 * delay + 1, 2))
    echoes[0] = 1.0
    for k in range(1, 7):
        echoes[min(k * delay, len(echoes) - 1), k % 2] += feedback ** k
    mono = audio.mean(axis=1)
    wet = np.stack([signal.oaconvolve(mono, echoes[:, c])[: len(mono)] for c in (0, 1)], axis=1)
    return audio * 0.5 + wet * 0.5


# ---------------------------------------------------------------------------------------------
# The data set


def _rows(root: str, seed: int, sample_rate: int, track_seconds: float):
    """CSV rows of the tracks, rendering each as it is asked for."""
    index = 0
    while True:
        track_seed = common.item_seed(seed, "techno", index)
        audio, info = synth_track(track_seed, track_seconds, sample_rate)
        name = f"audio/techno_seed{seed}_{index:03d}_{info['bpm']:.2f}bpm.wav"
        duration = common.write_wav(os.path.join(root, name), audio, sample_rate)
        yield {"filename": name, "tempo_bpm": f"{info['bpm']:.2f}", "duration": duration,
               "key": info["key"], "seed": track_seed}
        index += 1


def build_techno_dataset(root: str, minutes: float = DEFAULT_MINUTES, seed: int = 0,
                         sample_rate: int = 44100, track_seconds: float = DEFAULT_TRACK_SECONDS,
                         progress: bool = True) -> common.BuildSummary:
    """Synthesise about `minutes` of techno into `root`: `audio/<name>.wav` (16-bit stereo at
    `sample_rate` Hz, `track_seconds` s each) and `techno.csv` (filename, tempo_bpm, duration
    in s, split, key, seed: the track's own seed for `synth_track`). Idempotent like the piano
    set: a build with the same parameters is reused."""
    if minutes <= 0 or track_seconds <= 0:
        raise ValueError(f"minutes and track_seconds must be positive, got {minutes}, "
                         f"{track_seconds}")
    params = {"dataset": "techno", "format": FORMAT_VERSION, "minutes": float(minutes),
              "seed": int(seed), "sample_rate": int(sample_rate),
              "track_seconds": float(track_seconds)}
    return common.build_dataset(root, "techno", CSV_NAME, COLUMNS, FILE_COLUMNS, params,
                                _rows(root, seed, sample_rate, track_seconds), minutes, progress)
