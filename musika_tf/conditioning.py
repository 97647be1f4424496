"""Conditioning curves: note density (piano) and tempo (techno), one value per latent frame.

A condition is a float32 curve ``[num_frames]`` in [0, 1], one value per second-level latent
(``preset.samples_per_latent`` samples each). It enters the generator and critic as extra input
channels along time (`network_condition`, appended by `gan.append_condition`): density as one
channel, or with ``preset.gan.density_phase`` as three, the value plus the cosine and sine of an
onset phase; tempo as three, the value plus the cosine and sine of the beat phase.

Note density (``preset.gan.cond == 'density'``): madmom's CNN onset detector -> onset times ->
Gaussian kernel density (std ``preset.gan.density_bandwidth`` s, edge corrected) evaluated at the
centre of every latent frame, in onsets per second -> `normalise_density`:
``log1p(d) / log1p(DENSITY_MAX)`` clipped to [0, 1]. The log scale gives sparse playing as much
slider travel as dense playing: 0 = silence, 0.25 ~ 1/s, 0.5 ~ 3.1/s, 0.75 ~ 7.4/s, 1 = 16/s or more.

Tempo (``'tempo'``): madmom's RNN beat activations -> comb-filter tempo histogram -> strongest
tempo (parabolically refined), folded by octaves into [TEMPO_MIN, TEMPO_MAX] -> `normalise_tempo`:
linear over that range, clipped; the curve is constant over a track (ground-truth tempo is used
when a data set has it). Beside it a latent store keeps the beat phase of every frame
(`beat_offset`: where madmom's beat activation puts the beats of that tempo); at generation time
the phase is integrated from the requested tempo (`advance_phase`).

Onset phase (density models with ``preset.gan.density_phase``): a phase in cycles that advances
by ``1 / ONSETS_PER_CYCLE`` from one detected onset to the next, linearly in between
(`onset_phase`), so the networks see where the onsets of the training audio fall, as the beat
phase shows tempo models where the beats fall. At generation time it advances steadily at the
requested density (`advance_phase`). A quarter cycle per onset keeps the phase step per latent
frame under half a cycle (no aliasing) up to ``2 * ONSETS_PER_CYCLE * latent_rate`` onsets/s:
10.8/s at 22.05 kHz, 5.4/s at 44.1 kHz.

`network_cond(preset)` names the form the networks take: ``'none'``, ``'density'``,
``'density_phase'`` or ``'tempo'``; the functions below that build network inputs take it.

Both normalisations are fixed module constants, not preset fields, so that every checkpoint and
the app's 0..1 slider share one mapping (`denormalise_condition` gives the display value).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import ndtr

from .config import Preset

DENSITY_MAX = 16.0  # onsets per second mapped to 1.0 by `normalise_density`
TEMPO_MIN = 60.0  # BPM mapped to 0.0 by `normalise_tempo` (and lower edge of octave folding)
TEMPO_MAX = 200.0  # BPM mapped to 1.0 (and upper edge of octave folding)
CONDITION_UNITS = {"density": "onsets/s", "tempo": "BPM"}
# Version of what `stored_conditions` writes per condition (part of a latent store's fingerprint,
# so a store from an older version is re-encoded): tempo v2 added the beat phase, density v2 the
# onset phase.
STORED_VERSION = {"none": 1, "density": 2, "tempo": 2}
ONSETS_PER_CYCLE = 4  # onsets per cycle of the onset phase (density_phase models)

MADMOM_RATE = 44100  # Hz: madmom's onset and beat networks were trained at this rate
MADMOM_FPS = 100  # activation frames per second of both networks
MIN_BEAT_ACTIVATION = 0.2  # below this peak beat activation there is no tempo (silence: ~0.02)
# Peak picking of madmom's CNNOnsetDetector program (threshold, 50 ms smoothing, local maxima
# over +-1 frame, at most one onset per 30 ms).
ONSET_PEAK_PICKING = dict(threshold=0.54, smooth=0.05, pre_max=0.01, post_max=0.01, combine=0.03)


class NoBeatsError(ValueError):
    """Tempo estimation found no beats (silence, beatless music, too short)."""


# ---------------------------------------------------------------------------------------------
# madmom front end


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Float32 ``[samples, channels]`` or ``[samples]`` -> mono ``[samples]`` (channel mean)."""
    audio = np.asarray(audio, np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def _madmom_signal(audio: np.ndarray, sample_rate: int):
    """Mono madmom `Signal` at 44.1 kHz (resampled with soxr: madmom itself would call ffmpeg)."""
    from madmom.audio.signal import Signal

    mono = to_mono(audio)
    if sample_rate != MADMOM_RATE:
        from .audio import resample

        mono = resample(mono, sample_rate, MADMOM_RATE)
    return Signal(np.ascontiguousarray(mono), sample_rate=MADMOM_RATE, num_channels=1)


@lru_cache(maxsize=None)
def _onset_processors():
    """(CNN onset activation processor, peak picker), built once (loading the models)."""
    from madmom.features.onsets import CNNOnsetProcessor, OnsetPeakPickingProcessor

    return CNNOnsetProcessor(), OnsetPeakPickingProcessor(fps=MADMOM_FPS, **ONSET_PEAK_PICKING)


@lru_cache(maxsize=None)
def _tempo_processors():
    """(RNN beat activation processor, comb-filter tempo estimator), built once."""
    from madmom.features.beats import RNNBeatProcessor
    from madmom.features.tempo import TempoEstimationProcessor

    return RNNBeatProcessor(), TempoEstimationProcessor(fps=MADMOM_FPS)


def onset_times(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times in seconds ``[num_onsets]`` (float64, ascending) of ``[samples(, channels)]`` audio.

    madmom CNN onset detector (Schlüter & Böck 2013) at 100 frames/s with its program's peak
    picking. About 1.6 s of CPU per minute of audio.
    """
    activation, peak_picker = _onset_processors()
    return np.asarray(peak_picker(activation(_madmom_signal(audio, sample_rate))), np.float64)


def beat_activation(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """madmom RNN beat activation ``[frames]`` float64 at MADMOM_FPS of ``[samples(, channels)]`` audio.

    About 6 s of CPU per minute of audio. Raises NoBeatsError when it never exceeds
    MIN_BEAT_ACTIVATION (silence, beatless music, too short).
    """
    beats, _ = _tempo_processors()
    activation = np.asarray(beats(_madmom_signal(audio, sample_rate)), np.float64)
    if activation.size == 0 or activation.max() < MIN_BEAT_ACTIVATION:
        raise NoBeatsError("no beats found in the audio (silent, beatless or too short?): no tempo "
                           "to condition on")
    return activation


def estimate_tempo(audio: np.ndarray, sample_rate: int,
                   fold: tuple[float, float] | None = (TEMPO_MIN, TEMPO_MAX),
                   activation: np.ndarray | None = None) -> float:
    """Global tempo in BPM of ``[samples(, channels)]`` audio (or of its `beat_activation`).

    madmom RNN beat activations -> `TempoEstimationProcessor`'s smoothed comb-filter histogram of
    beat intervals (40-250 BPM) -> its highest bin, refined to a fractional interval by a parabola
    through the bin and its neighbours (100 fps lags alone are ~1.5 BPM apart at 140 BPM) ->
    folded by octaves into ``fold`` (None: keep as detected). Raises NoBeatsError without beats.
    """
    if activation is None:
        activation = beat_activation(audio, sample_rate)
    bpm = 60.0 * MADMOM_FPS / _strongest_interval(activation, _tempo_processors()[1])
    return fold_tempo(bpm, *fold) if fold else bpm


def _strongest_interval(activation: np.ndarray, tempo) -> float:
    """Beat interval in frames (fractional) of the tempo histogram's highest bin."""
    from madmom.audio.signal import smooth
    from madmom.features.tempo import smooth_histogram

    activation = smooth(activation.astype(np.float64), int(round(tempo.fps * tempo.act_smooth)))
    strength, intervals = smooth_histogram(tempo.interval_histogram(activation), tempo.hist_smooth)
    k = int(np.argmax(strength))
    if 0 < k < len(strength) - 1:
        left, mid, right = strength[k - 1:k + 2]
        curvature = left - 2.0 * mid + right
        if curvature < 0:
            return float(intervals[k] + 0.5 * (left - right) / curvature)
    return float(intervals[k])


def fold_tempo(bpm: float, low: float = TEMPO_MIN, high: float = TEMPO_MAX) -> float:
    """Double or halve `bpm` until it lies in [low, high] (needs ``high >= 2 * low``)."""
    if high < 2 * low:
        raise ValueError(f"folding range [{low}, {high}] spans less than an octave")
    while bpm < low:
        bpm *= 2.0
    while bpm > high:
        bpm /= 2.0
    return bpm


# ---------------------------------------------------------------------------------------------
# Note density


def note_density(onsets_seconds: np.ndarray, num_frames: int, frame_seconds: float,
                 bandwidth_seconds: float, duration_seconds: float | None = None) -> np.ndarray:
    """Gaussian kernel density of onsets at each frame centre ``(i + 0.5) * frame_seconds``.

    Returns ``[num_frames]`` float32 in onsets per second (a steady 4 onsets/s gives ~4). Edge
    corrected: each value is divided by the kernel mass inside ``[0, duration_seconds]`` (default
    ``num_frames * frame_seconds``), so a steady rate reads the same at the ends of the audio.
    """
    centres = (np.arange(num_frames) + 0.5) * frame_seconds
    onsets = np.sort(np.asarray(onsets_seconds, np.float64).ravel())
    duration = num_frames * frame_seconds if duration_seconds is None else duration_seconds
    reach = 8.0 * bandwidth_seconds  # kernel is < 1e-13 of its peak beyond this
    first = np.searchsorted(onsets, centres - reach)
    last = np.searchsorted(onsets, centres + reach)
    density = np.zeros(num_frames)
    for start in range(0, num_frames, 1024):  # blocks keep the frame x onset matrix small
        stop = min(start + 1024, num_frames)
        near = onsets[first[start]:last[stop - 1]]
        z = (centres[start:stop, None] - near[None, :]) / bandwidth_seconds
        density[start:stop] = np.exp(-0.5 * z * z).sum(axis=1)
    density /= bandwidth_seconds * np.sqrt(2.0 * np.pi)
    inside = ndtr((duration - centres) / bandwidth_seconds) - ndtr(-centres / bandwidth_seconds)
    return (density / np.maximum(inside, 1e-6)).astype(np.float32)


def normalise_density(density: np.ndarray | float) -> np.ndarray:
    """Onsets per second -> network input ``log1p(d) / log1p(DENSITY_MAX)`` clipped to [0, 1]."""
    value = np.log1p(np.maximum(np.asarray(density, np.float64), 0.0)) / np.log1p(DENSITY_MAX)
    return np.clip(value, 0.0, 1.0).astype(np.float32)


def density_to_onsets_per_second(value: np.ndarray | float) -> np.ndarray:
    """Inverse of `normalise_density` (on [0, 1]): network input -> onsets per second."""
    return np.expm1(np.clip(np.asarray(value, np.float64), 0.0, 1.0) * np.log1p(DENSITY_MAX))


def latent_frames(num_samples: int, preset: Preset) -> int:
    """Whole second-level latent frames in `num_samples` samples."""
    return num_samples // preset.samples_per_latent


def density_curve(audio: np.ndarray, preset: Preset, num_frames: int | None = None,
                  normalised: bool = True, onsets: np.ndarray | None = None) -> np.ndarray:
    """Per-latent-frame note density of audio at the preset's rate -> ``[num_frames]`` float32.

    ``num_frames`` defaults to ``len(audio) // samples_per_latent``; values are network inputs in
    [0, 1] (`normalise_density`) unless ``normalised=False`` (onsets per second). ``onsets``: the
    audio's `onset_times` when already known.
    """
    sample_rate = preset.audio.sample_rate
    if num_frames is None:
        num_frames = latent_frames(len(audio), preset)
    if onsets is None:
        onsets = onset_times(audio, sample_rate)
    density = note_density(onsets, num_frames, 1.0 / preset.latent_rate,
                           preset.gan.density_bandwidth, duration_seconds=len(audio) / sample_rate)
    return normalise_density(density) if normalised else density


def onset_phase(onsets_seconds: np.ndarray, num_frames: int, frame_seconds: float) -> np.ndarray:
    """Onset phase in cycles [0, 1) at each frame start ``i * frame_seconds`` -> ``[num_frames]`` float32.

    The phase is ``k / ONSETS_PER_CYCLE`` at the k-th onset (k = 0, 1, ...) and linear between
    onsets; before the first and after the last onset it stands still (no onsets, no motion).
    Fewer than two onsets: zeros.
    """
    onsets = np.unique(np.asarray(onsets_seconds, np.float64).ravel())
    if len(onsets) < 2:
        return np.zeros(num_frames, np.float32)
    starts = np.arange(num_frames) * frame_seconds
    phase = np.interp(starts, onsets, np.arange(len(onsets)) / ONSETS_PER_CYCLE)
    return np.mod(phase, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Tempo


def normalise_tempo(bpm: np.ndarray | float) -> np.ndarray:
    """BPM -> network input, linear from TEMPO_MIN (0) to TEMPO_MAX (1), clipped."""
    value = (np.asarray(bpm, np.float64) - TEMPO_MIN) / (TEMPO_MAX - TEMPO_MIN)
    return np.clip(value, 0.0, 1.0).astype(np.float32)


def tempo_from_normalised(value: np.ndarray | float) -> np.ndarray:
    """Inverse of `normalise_tempo` (on [0, 1]): network input -> BPM."""
    return TEMPO_MIN + np.clip(np.asarray(value, np.float64), 0.0, 1.0) * (TEMPO_MAX - TEMPO_MIN)


# ---------------------------------------------------------------------------------------------
# Dispatch on preset.gan.cond

_NORMALISE = {"density": normalise_density, "tempo": normalise_tempo}
_DENORMALISE = {"density": density_to_onsets_per_second, "tempo": tempo_from_normalised}


def normalise_condition(cond: str, value: np.ndarray | float) -> np.ndarray:
    """Display units (onsets/s or BPM, see CONDITION_UNITS) -> network input in [0, 1]."""
    return _NORMALISE[cond](value)


def denormalise_condition(cond: str, value: np.ndarray | float) -> np.ndarray:
    """Network input in [0, 1] -> display units (onsets/s or BPM)."""
    return _DENORMALISE[cond](value)


def stored_conditions(preset: Preset, audio: np.ndarray, num_frames: int,
                      tempo_bpm: float | None = None) -> dict:
    """The arrays a latent store keeps beside one file's ``num_frames`` latents for ``preset.gan.cond``.

    ``'none'`` -> ``{}``; ``'density'`` -> ``density [num_frames]`` (`density_curve`) and
    ``onset_phase [num_frames]`` (cycles, `onset_phase`); ``'tempo'`` ->
    ``tempo []`` (normalised), ``tempo_bpm []`` and ``beat_phase [num_frames]`` (cycles, `beat_offset`)
    for `tempo_bpm` when the data set lists it (ground truth), else for `estimate_tempo(audio)`.
    Raises NoBeatsError for a beatless file under tempo conditioning.
    """
    cond, rate = preset.gan.cond, preset.audio.sample_rate
    if cond == "density":
        onsets = onset_times(audio, rate)
        return {"density": density_curve(audio, preset, num_frames, onsets=onsets),
                "onset_phase": onset_phase(onsets, num_frames, 1.0 / preset.latent_rate)}
    if cond != "tempo":
        return {}
    activation = beat_activation(audio, rate)
    bpm = float(tempo_bpm) if tempo_bpm else estimate_tempo(audio, rate, activation=activation)
    offset = beat_offset(activation, bpm)
    phase = offset + np.arange(num_frames) * (bpm / 60.0 / preset.latent_rate)
    return {"tempo": np.float32(normalise_tempo(bpm)), "tempo_bpm": np.float32(bpm),
            "beat_phase": np.mod(phase, 1.0).astype(np.float32)}


def beat_offset(activation: np.ndarray, bpm: float) -> float:
    """Beat phase in cycles [0, 1) at the first sample of a `beat_activation`, for a steady `bpm`.

    The phase ``offset + t * bpm / 60`` is an integer on the beats: `offset` maximises the
    correlation of ``cos(2 pi phase(t))`` with the activation (the argument of one complex sum).
    """
    times = np.arange(len(activation)) / MADMOM_FPS
    moment = np.sum(np.asarray(activation, np.float64) * np.exp(2j * np.pi * times * bpm / 60.0))
    return float(np.mod(-np.angle(moment) / (2.0 * np.pi), 1.0))


# ---------------------------------------------------------------------------------------------
# Network inputs


def network_cond(preset: Preset) -> str:
    """The condition's network form: ``preset.gan.cond``, or ``'density_phase'`` for a density
    model with ``preset.gan.density_phase`` (value plus onset phase)."""
    cond = preset.gan.cond
    return "density_phase" if cond == "density" and preset.gan.density_phase else cond


# The stored phase array each phased network form reads (`stored_conditions`).
PHASE_ARRAY = {"density_phase": "onset_phase", "tempo": "beat_phase"}


def condition_channels(cond: str) -> int:
    """Condition channels the generator and critic take for a `network_cond`: none 0, density 1,
    density_phase 3, tempo 3."""
    return {"none": 0, "density": 1, "density_phase": 3, "tempo": 3}[cond]


def network_condition(cond: str, values: np.ndarray, phase: np.ndarray | None = None
                      ) -> np.ndarray:
    """Network input ``[..., T, condition_channels(cond)]`` float32 from normalised values ``[..., T]``.

    `cond` is a `network_cond`. density: the value itself. tempo and density_phase:
    ``[value, cos 2 pi phase, sin 2 pi phase]`` with `phase` ``[..., T]`` in cycles (the beat or
    onset phase), so the networks see where the beats or onsets fall, not only how many there are:
    a pulse is then a local pattern the generator can place and the critic can check.
    """
    values = np.asarray(values, np.float32)
    if cond == "density":
        return values[..., None]
    if cond not in PHASE_ARRAY:
        raise ValueError(f"no network condition for cond={cond!r}")
    if phase is None:
        raise ValueError(f"the {cond} condition needs the phase of every frame")
    angle = 2.0 * np.pi * np.asarray(phase, np.float64)
    return np.stack([values, np.cos(angle), np.sin(angle)], axis=-1).astype(np.float32)


def phase_rate(cond: str, values: np.ndarray) -> np.ndarray:
    """Phase speed in cycles per second of a phased `network_cond` at normalised `values`:
    tempo BPM / 60 (one cycle per beat); density_phase onsets/s / ONSETS_PER_CYCLE."""
    if cond == "tempo":
        return tempo_from_normalised(values) / 60.0
    if cond == "density_phase":
        return density_to_onsets_per_second(values) / ONSETS_PER_CYCLE
    raise ValueError(f"cond={cond!r} has no phase")


def advance_phase(cond: str, values: np.ndarray, start: float, frame_seconds: float) -> tuple:
    """Phase of consecutive frames with normalised `values` ``[T]``, the first at `start`.

    Returns ``(phase [T] float64 cycles, phase of the frame after the last)``; each frame advances
    the phase by `phase_rate` times `frame_seconds`, so a change of tempo or density bends the grid
    without a jump.
    """
    steps = phase_rate(cond, values) * frame_seconds
    phase = start + np.concatenate([[0.0], np.cumsum(steps)])
    return np.mod(phase[:-1], 1.0), float(np.mod(phase[-1], 1.0))


def generation_condition(cond: str, values: np.ndarray, start_phase: float,
                         frame_seconds: float) -> tuple:
    """Network condition for generating consecutive frames with normalised `values` ``[T]``.

    `cond` is a `network_cond`. Returns ``(network condition [T, K], phase after the last frame)``:
    phased forms integrate the phase from `start_phase` (`advance_phase`); density passes it through.
    """
    if cond not in PHASE_ARRAY:
        return network_condition(cond, values), start_phase
    phase, after = advance_phase(cond, values, start_phase, frame_seconds)
    return network_condition(cond, values, phase), after


def constant_condition(preset: Preset, value: float, num_frames: int) -> np.ndarray | None:
    """Constant curve for inference from a user value in display units (onsets/s or BPM).

    Returns ``[num_frames]`` float32 in [0, 1], or None when ``preset.gan.cond == 'none'``.
    """
    if preset.gan.cond == "none":
        return None
    return np.full(num_frames, normalise_condition(preset.gan.cond, value), np.float32)


def condition_from_user(cond: str, density: float | None = None, tempo: float | None = None,
                        warn=None) -> float | None:
    """The normalised condition in [0, 1] for a model trained with `cond`, from the user's density
    (onsets/s) or tempo (BPM); None for unconditional models; the middle of the range when the
    user gives none. Raises ValueError for a signal the model was not trained with."""
    given = {"density": density, "tempo": tempo}
    for name, value in given.items():
        if value is not None and name != cond:
            trained = "without conditioning" if cond == "none" else f"with {cond} conditioning"
            raise ValueError(f"--{name} is not supported: this model was trained {trained}")
    if cond == "none":
        return None
    if given[cond] is None:
        middle = float(denormalise_condition(cond, 0.5))
        if warn:
            warn(f"no --{cond} given: using {middle:.3g} {CONDITION_UNITS[cond]}")
        return 0.5
    if given[cond] < 0:
        raise ValueError(f"--{cond} must be >= 0 {CONDITION_UNITS[cond]}")
    return float(normalise_condition(cond, given[cond]))
