"""`python -m musika_tf evaluate`: every quality number of one exported model, the same way for all.

Steps (each with a progress bar):

1. Real excerpts of ``seconds`` from the data set: the *reference* set is the test split (validation
   + test when the test split alone is too small; all files if the set has no splits), the *training*
   set an equally large random draw from the training split.
2. Generated pieces: ``samples`` seeds; a conditioned model gets the condition of a random reference
   excerpt per piece (so the generated set follows the data's condition distribution).
3. FAD-infinity (MusiCNN embeddings of 3-s patches) of generated vs reference, with its floor
   (training vs reference) and the ceiling the GAN can reach (the model's own autoencoder
   reconstructions of the reference vs the reference); each with the fit's standard error and the
   spread expected from another set of as many pieces (`fad.sampling_spread`).
4. Condition control on a grid (density: 5 rates spanning the 10th-90th percentile of the
   training excerpts' per-latent density, the values the condition took in training;
   tempo: 120..150 BPM in steps of 5 plus 110 and 160 outside the techno set's range, 20-s pieces,
   Tempo-CNN with quadratic peak interpolation). Density also reports the autoencoder's ceiling:
   the onset rates of the reference excerpts against those of their reconstructions.
5. Seams at the generator's half-window joins, with three controls (real audio, independent
   windows, real audio through the autoencoder); autoencoder reconstruction per level;
   real-time factor.

Returns a JSON-serialisable report (`evaluate`); `musika_tf.evaluation.report` writes it out.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from .. import conditioning
from ..data import datasets
from ..encoding import reconstruct
from ..inference import DEFAULT_BOUND, Engine
from . import control, fad, reconstruction, seams

TEMPO_GRID_INSIDE = (120.0, 125.0, 130.0, 135.0, 140.0, 145.0, 150.0)
TEMPO_GRID_OUTSIDE = (110.0, 160.0)
TECHNO_TEMPO_RANGE = (120.0, 150.0)  # the embedded techno set's range (musika_tf.data.techno)
TEMPO_PIECE_SECONDS = 20.0  # tempo-grid pieces: Tempo-CNN needs >= 11.84 s, longer is steadier
DENSITY_GRID_POINTS = 5
MIN_REFERENCE_EXCERPTS = 8
SPEED_SECONDS = 60.0


@dataclass(frozen=True)
class Settings:
    """What `evaluate` measures and how much (CLI flags of the same names)."""

    samples: int = 48  # generated pieces for FAD
    seconds: float = 12.0  # length of every excerpt and piece
    seed: int = 0
    bound: float = DEFAULT_BOUND  # variety / truncation of generated pieces
    grid_repeats: int = 3  # generated pieces per condition grid point
    seam_pieces: int = 8  # long pieces for the seam metric (6 joins each)
    max_reference: int = 96  # cap on reference (and training) excerpts
    recon_excerpts: int = 16  # excerpts for the autoencoder distances


@dataclass
class Excerpt:
    audio: np.ndarray  # [samples, 2] float32 at the model's rate
    source: str
    tempo: float | None  # BPM from the data set, where it has one


class EvaluationError(ValueError):
    """The evaluation cannot run as asked (message names the problem and the fix)."""


# ---------------------------------------------------------------------------------------------
# Real audio


def _excerpts(items, sample_rate: int, seconds: float, limit: int, rng) -> list[Excerpt]:
    """Non-overlapping excerpts of `seconds` from `items`, at most `limit`, drawn at random."""
    length = int(round(seconds * sample_rate))
    out = []
    for item, audio in datasets.iter_audio(items, sample_rate, length):
        out += [Excerpt(audio[s:s + length], item.path, item.tempo)
                for s in range(0, len(audio) - length + 1, length)]
    if len(out) > limit:
        out = [out[i] for i in sorted(rng.choice(len(out), limit, replace=False))]
    return out


def real_sets(data: str, sample_rate: int, settings: Settings) -> tuple[list, list, list]:
    """(reference excerpts, training excerpts, held-out items) of the data set; see the module doc."""
    items = datasets.read_dataset(data)
    by_split = {s: [i for i in items if i.split == s] for s in ("train", "validation", "test")}
    rng = np.random.default_rng(settings.seed)
    held_out = by_split["test"]
    reference = _excerpts(held_out, sample_rate, settings.seconds, settings.max_reference, rng)
    if len(reference) < MIN_REFERENCE_EXCERPTS and by_split["validation"]:
        held_out = by_split["test"] + by_split["validation"]
        reference = _excerpts(held_out, sample_rate, settings.seconds, settings.max_reference, rng)
    train_items = by_split["train"] if held_out else items
    if not held_out:  # no splits: reference and training sets are two halves of the files
        train_items, held_out = items[::2], items[1::2]
        reference = _excerpts(held_out, sample_rate, settings.seconds, settings.max_reference, rng)
    training = _excerpts(train_items, sample_rate, settings.seconds, len(reference), rng)
    if len(reference) < MIN_REFERENCE_EXCERPTS or len(training) < MIN_REFERENCE_EXCERPTS:
        raise EvaluationError(
            f"{data}: too little audio for an evaluation with --seconds {settings.seconds:g}: "
            f"{len(reference)} held-out and {len(training)} training excerpts, at least "
            f"{MIN_REFERENCE_EXCERPTS} each needed; use more data or shorter --seconds")
    return reference, training, held_out


# ---------------------------------------------------------------------------------------------
# Generation


def reference_conditions(engine: Engine, reference: list[Excerpt]) -> np.ndarray | None:
    """The condition of every reference excerpt in display units (onsets/s or BPM), or None."""
    cond, rate = engine.preset.gan.cond, engine.sample_rate
    if cond == "density":
        return np.array([control.onset_rate(x.audio, rate) for x in tqdm(reference, desc="onsets")])
    if cond == "tempo":
        return np.array([x.tempo if x.tempo else conditioning.estimate_tempo(x.audio, rate)
                         for x in reference], float)
    return None


def generate_set(engine: Engine, count: int, seconds: float, seed: int, bound: float,
                 values: list | None, desc: str) -> list[np.ndarray]:
    """`count` pieces with seeds seed, seed+1, ...; `values[i]` the display-unit condition of piece i."""
    cond = engine.preset.gan.cond
    pieces = []
    for i in tqdm(range(count), desc=desc):
        condition = None
        if values is not None:
            condition = float(conditioning.normalise_condition(cond, values[i]))
        pieces.append(engine.generate(seconds, seed=seed + i, bound=bound, condition=condition))
    return pieces


# ---------------------------------------------------------------------------------------------
# The metrics


def _embed(embedder, clips: list, rate: int, desc: str) -> list[np.ndarray]:
    """Patch embeddings ``[patches, d]`` of every clip, one array per clip."""
    return [embedder.embed(c, rate) for c in tqdm(clips, desc=desc)]


def fad_section(embedder, generated: list, reference: list, training: list, reconstructed: list,
                rate: int, seed: int) -> dict:
    """FAD-infinity of generated, floor (training) and ceiling (AE reconstructions) vs reference,
    each with its `fad.sampling_spread` over the pieces (``sampling_stderr``)."""
    ref = np.concatenate(_embed(embedder, [x.audio for x in reference], rate, "embed reference"))
    sets = {"generated": generated, "floor_training_real": [x.audio for x in training],
            "ceiling_autoencoder": reconstructed}
    out = {"embedding": "MusiCNN (MSD) penultimate layer, 200-d, 3-s patches",
           "reference_patches": int(len(ref))}
    for name, clips in sets.items():
        pieces = _embed(embedder, clips, rate, f"embed {name}")
        out[name] = fad.fad_infinity(np.concatenate(pieces), ref, seed=seed).to_dict()
        out[name]["sampling_stderr"] = fad.sampling_spread(pieces, ref, seed=seed)
    return out


def training_density_range(engine: Engine, training: list[Excerpt]) -> tuple[float, float]:
    """10th and 90th percentile (onsets/s) of the per-latent density of the training excerpts:
    the span of condition values the model saw in training."""
    frames = [conditioning.density_curve(x.audio, engine.preset, normalised=False)
              for x in tqdm(training, desc="training densities")]
    low, high = np.percentile(np.concatenate(frames), [10, 90])
    return float(low), float(high)


def condition_section(engine: Engine, settings: Settings, ref_values: np.ndarray | None,
                      training: list[Excerpt], reconstructed: list[np.ndarray]) -> dict:
    """Condition control on a grid; "not applicable" for an unconditioned model. Density also
    gets the autoencoder's ceiling: `ref_values` (the reference excerpts' onset rates) against
    the onset rates of their reconstructions `reconstructed`."""
    cond, rate = engine.preset.gan.cond, engine.sample_rate
    if cond == "none":
        return {"density": "not applicable (model is not conditioned)",
                "tempo": "not applicable (model is not conditioned)"}
    reps = settings.grid_repeats
    if cond == "density":
        low, high = training_density_range(engine, training)
        grid = np.linspace(max(low, 0.1), max(high, low + 0.5), DENSITY_GRID_POINTS)
        requested = np.repeat(grid, reps)
        pieces = generate_set(engine, len(requested), settings.seconds, settings.seed + 10_000,
                              settings.bound, list(requested), "density grid")
        measured = np.array([control.onset_rate(p, rate) for p in pieces])
        density = control.density_control(requested, measured)
        density["independent"] = {
            "detector": "librosa spectral flux",
            **control.density_control(requested, [control.flux_onset_rate(p, rate) for p in pieces])}
        density["autoencoder_ceiling"] = control.density_ceiling(
            ref_values, [control.onset_rate(x, rate) for x in tqdm(reconstructed, desc="onsets (AE)")])
        return {"density": density,
                "tempo": "not applicable (model is conditioned on density)",
                "curve": {"requested": requested.tolist(), "measured": measured.tolist(),
                          "unit": "onsets/s"}}
    from .tempo import TempoEstimator

    grid = np.array(TEMPO_GRID_INSIDE + TEMPO_GRID_OUTSIDE)
    requested = np.repeat(grid, reps)
    pieces = generate_set(engine, len(requested), max(settings.seconds, TEMPO_PIECE_SECONDS),
                          settings.seed + 10_000, settings.bound, list(requested), "tempo grid")
    estimator = TempoEstimator()
    estimated = np.array([estimator.estimate(p, rate, interpolate=True) for p in pieces])
    listed = [x.tempo for x in training if x.tempo]  # the data set's own tempo labels
    values = listed or list(ref_values)
    train_range = (float(np.min(values)), float(np.max(values)))
    return {"tempo": control.tempo_control(requested, estimated, train_range),
            "density": "not applicable (model is conditioned on tempo)",
            "curve": {"requested": requested.tolist(), "measured": estimated.tolist(), "unit": "BPM"}}


def seam_section(engine: Engine, settings: Settings, held_out: list,
                 ref_values: np.ndarray | None, ae) -> dict:
    """Seam ratio at half-window joins: generated, independent windows cut together, and whole
    held-out files (`held_out` items) measured at the same positions, as they are and through the
    model's autoencoder `ae`, decoded as the model decodes (without ``decode_context`` its decoders
    work on independent blocks of ``chunk_frames / 2`` frames and every join is also a block edge:
    seams the GAN cannot avoid; with it, whole sequences)."""
    preset, rate = engine.preset, engine.sample_rate
    join = preset.gan.latlen // 2 * preset.samples_per_latent
    n_joins = 6
    seconds = (n_joins + 1) * join / rate
    values = None if ref_values is None else [float(np.median(ref_values))] * (n_joins + 1)
    gen, naive = [], []
    for k in tqdm(range(settings.seam_pieces), desc="seams"):
        piece = engine.generate(seconds, seed=settings.seed + 20_000 + k, bound=settings.bound,
                                condition=None if values is None else
                                float(conditioning.normalise_condition(preset.gan.cond, values[0])))
        gen.append(seams.seam_ratio(piece, seams.window_joins(len(piece), join)))
        parts = generate_set(engine, n_joins + 1, join / rate, settings.seed + 30_000 + 100 * k,
                             settings.bound, values, "independent windows")
        cut = np.concatenate(parts)
        naive.append(seams.seam_ratio(cut, seams.window_joins(len(cut), join)))
    real, through_ae = [], []
    for _, audio in datasets.iter_audio(held_out[: settings.seam_pieces], rate, 2 * join):
        joins = seams.window_joins(len(audio), join)
        real.append(seams.seam_ratio(audio, joins))
        through_ae.append(seams.seam_ratio(reconstruct(ae, audio), joins))
    out = {"join_every_seconds": join / rate, "pieces": len(gen)}
    for name, ratios in (("generated", gen), ("naive_concatenation", naive), ("real_audio", real),
                         ("autoencoder_reconstruction", through_ae)):
        out[name] = float(np.mean(ratios)) if ratios else None
        out[f"{name}_stderr"] = _stderr(ratios)
    return out


def _stderr(values: list) -> float | None:
    """Standard error of the mean of `values` (None for fewer than two)."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None


def speed_section(engine: Engine, seed: int) -> dict:
    """Real-time factor of generating `SPEED_SECONDS` (second run, so graphs are warm)."""
    condition = None if engine.preset.gan.cond == "none" else 0.5
    engine.generate(5.0, seed=seed, condition=condition)
    start = time.perf_counter()
    engine.generate(SPEED_SECONDS, seed=seed, condition=condition)
    elapsed = time.perf_counter() - start
    return {"seconds_generated": SPEED_SECONDS, "wall_seconds": elapsed,
            "real_time_factor": SPEED_SECONDS / elapsed, "cpu_count": os.cpu_count()}


# ---------------------------------------------------------------------------------------------
# Everything


@dataclass
class EvaluationSets:
    """What every measurement of one model on one data set starts from (`evaluation_sets`)."""

    engine: Engine
    autoencoder: object  # the model folder's `Autoencoder`
    reference: list  # held-out excerpts (`Excerpt`)
    training: list  # as many training excerpts
    held_out: list  # held-out data set items (the seam section's long pieces)
    ref_values: np.ndarray | None  # condition of every reference excerpt (display units)
    generated: list  # `samples` generated pieces ``[samples, 2]``
    reconstructed: list  # the autoencoder's reconstructions of the reference excerpts


def evaluation_sets(model_dir: str, data: str, settings: Settings) -> EvaluationSets:
    """Load the model in `model_dir`, draw the real excerpts of `data`, generate the pieces (each
    with the condition of a random reference excerpt) and reconstruct the reference (module doc,
    steps 1-2)."""
    from ..training.ae import load_autoencoder

    engine = Engine.load(model_dir)
    reference, training, held_out = real_sets(data, engine.sample_rate, settings)
    ref_values = reference_conditions(engine, reference)
    draw = np.random.default_rng(settings.seed).integers(0, len(reference), settings.samples)
    values = None if ref_values is None else [float(ref_values[i]) for i in draw]
    generated = generate_set(engine, settings.samples, settings.seconds, settings.seed,
                             settings.bound, values, "generate")
    ae = load_autoencoder(engine.preset, model_dir)
    reconstructed = [reconstruct(ae, x.audio) for x in tqdm(reference, desc="reconstruct")]
    return EvaluationSets(engine, ae, reference, training, held_out, ref_values, generated,
                          reconstructed)


def evaluate(model_dir: str, data: str, settings: Settings = Settings(), embedder=None) -> dict:
    """The full report of the exported model in `model_dir` on data set `data` (see module doc)."""
    from ..export import check_folder, read_card
    from .musicnn import MusicnnEmbedder

    check_folder(model_dir)
    card = read_card(model_dir)
    sets = evaluation_sets(model_dir, data, settings)
    engine, ae, rate = sets.engine, sets.autoencoder, sets.engine.sample_rate
    reference, training, ref_values = sets.reference, sets.training, sets.ref_values
    generated, reconstructed = sets.generated, sets.reconstructed
    embedder = embedder or MusicnnEmbedder()
    report = {
        "model": model_dir, "name": card.get("name"), "card": card,
        "data": data, "settings": asdict(settings),
        "reference_excerpts": len(reference), "training_excerpts": len(training),
        "fad": fad_section(embedder, generated, reference, training, reconstructed, rate, settings.seed),
        "condition": condition_section(engine, settings, ref_values, training, reconstructed),
        "seams": seam_section(engine, settings, sets.held_out, ref_values, ae),
        "autoencoder": reconstruction.reconstruction_quality(
            ae, [x.audio for x in reference[: settings.recon_excerpts]]),
        "speed": speed_section(engine, settings.seed),
    }
    report["examples"] = {"generated": generated[:3], "real": [x.audio for x in reference[:3]]}
    return report
