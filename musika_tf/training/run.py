"""One training run from data to GAN: what `train.py` calls.

A run folder ``runs/NAME/`` holds everything of one model family:

```
runs/NAME/preset.json          the run's configuration (architecture fixed once written)
runs/NAME/ae1/phase1|phase2/   autoencoder level 1 (checkpoints, logs, previews)
runs/NAME/ae2/                 autoencoder level 2
runs/NAME/decoders/            optional: both decoders fine-tuned end to end (`--stage decoders`)
runs/NAME/latents/DATA/        latent store of data set DATA (re-encoded when stale)
runs/NAME/gan/                 latent GAN
```

`--stage gan` trains whatever earlier stage is missing first, so
``python train.py --stage gan --data maestro`` works on a fresh checkout.
"""

from __future__ import annotations

import dataclasses
import os
import re

import tensorflow as tf
from tqdm import tqdm

from .. import conditioning
from ..config import Preset, load_preset, save_preset
from ..data import datasets
from ..data import latents as store
from ..data.audio_cache import build_audio_cache
from . import ae as ae_stages
from . import distribute, loop

STAGES = ("ae1", "ae2", "gan", "decoders")
RUNS_DIR = "runs"


def run_folder(name: str) -> str:
    """The folder of run `name`: a path as given (it holds a separator or exists), else runs/NAME."""
    return name if os.sep in name or os.path.isdir(name) else os.path.join(RUNS_DIR, name)


# Non-training fields an existing run takes from the call: they change how data is labelled, how
# audio is decoded or what the condition regressor learns from, no network's weights.
_FREE_GAN_FIELDS = ("cond", "density_bandwidth", "condition_feedback_every")
_FREE_FIELDS = _FREE_GAN_FIELDS + ("decode_context",)


def run_preset(run_dir: str, requested: Preset) -> Preset:
    """The preset of a run: `requested` for a new run; for an existing run its saved preset, with
    only training fields (``preset.train``) taken from `requested`. Other differences are errors,
    since the saved networks were built with the saved architecture."""
    path = os.path.join(run_dir, "preset.json")
    if not os.path.exists(path):
        _write_preset(requested, run_dir)
        return requested
    saved = load_preset(run_dir)
    for group in ("audio", "ae", "gan"):
        a, b = getattr(saved, group), getattr(requested, group)
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name) and f.name not in _FREE_FIELDS:
                raise ValueError(
                    f"{run_dir} was created with {f.name}={getattr(a, f.name)!r} but this call asks for "
                    f"{getattr(b, f.name)!r}; use another --run name or drop the flag")
    merged = dataclasses.replace(
        saved, train=requested.train,
        ae=dataclasses.replace(saved.ae, decode_context=requested.ae.decode_context),
        gan=dataclasses.replace(saved.gan, **{f: getattr(requested.gan, f) for f in _FREE_GAN_FIELDS}))
    _write_preset(merged, run_dir)
    return merged


def _write_preset(preset: Preset, run_dir: str) -> None:
    """Save the run's preset; on several machines only the chief writes the shared run folder."""
    if distribute.is_chief(distribute.strategy_for(preset)):
        save_preset(preset, run_dir)


def data_name(spec: str) -> str:
    """A folder-safe name for a `--data` value."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(os.path.normpath(spec))) or "data"


def cached_audio(preset: Preset, data: str, progress: bool = True):
    """Training files of the data set's training split (all files if it has no splits), read in
    place or decoded into the bounded cache (`build_audio_cache`, budget
    ``preset.train.audio_cache_gb``), and the held-out file for previews: the longest listed
    file of the other splits (only it is decoded), else the training files."""
    items = datasets.read_dataset(data)
    train = [i for i in items if i.split == "train"] or items
    held_out = [i for i in items if i.split != "train"]
    rate = preset.audio.sample_rate
    cache_dir = os.path.join("cache", "audio", str(rate))
    budget = preset.train.audio_cache_gb * 1e9
    summary = datasets.LoadSummary()
    min_len = ae_stages.crop_samples(preset)
    files = build_audio_cache(train, cache_dir, rate, min_len, progress, summary, budget)
    tqdm.write(f"data {data}: {summary.line()}")
    if not files:
        raise ValueError(f"{data}: no usable audio for training ({summary.line()})")
    preview = build_audio_cache(preview_items(held_out), cache_dir, rate, min_len, False,
                                budget_bytes=budget)
    return files, preview or files


def preview_items(held_out: list) -> list:
    """The one held-out item previews use: the longest by listed duration (first if none listed)."""
    return [max(held_out, key=lambda item: item.duration or 0.0)] if held_out else []


def ae_complete(run_dir: str, preset: Preset) -> dict[str, bool]:
    """Whether each autoencoder stage of the run has reached its step count (both, once the run has
    fine-tuned decoders: that stage starts from a complete autoencoder)."""
    def step_of(folder):
        path = tf.train.latest_checkpoint(os.path.join(folder, loop.CHECKPOINT_DIR))
        return int(path.rsplit("-", 1)[1]) if path else 0

    dirs = ae_stages.stage_dirs(run_dir)
    if step_of(dirs["decoders"]):
        return {"ae1": True, "ae2": True}
    phase2_steps = preset.train.ae1_steps - min(preset.train.phase1_steps, preset.train.ae1_steps)
    ae1_done = step_of(dirs["ae1_phase1"]) >= min(preset.train.phase1_steps, preset.train.ae1_steps) and (
        phase2_steps <= 0 or step_of(dirs["ae1_phase2"]) >= phase2_steps)
    return {"ae1": ae1_done, "ae2": step_of(dirs["ae2"]) >= preset.train.ae2_steps}


def ensure_latents(preset: Preset, run_dir: str, data: str, progress: bool = True) -> str:
    """Encode `data` with the run's autoencoder unless an up-to-date store exists; return its folder."""
    from ..encoding import encode_dataset

    ae_source = ae_stages.autoencoder_source(run_dir)
    items = datasets.read_dataset(data)
    sources = [(i.path, *_stat(i.path)) for i in items]
    fp = store.fingerprint(ae_stages.autoencoder_identity(ae_source),
                           sources, preset.audio, preset.ae, preset.gan.cond,
                           preset.gan.max_lat_len, "chunks",
                           conditioning.STORED_VERSION[preset.gan.cond])
    folder = os.path.join(run_dir, "latents", data_name(data))
    if store.is_current(folder, fp):
        return folder
    tqdm.write(f"encoding {data} into {folder}")
    ae = ae_stages.load_autoencoder(preset, ae_source)
    summary = encode_dataset(ae, items, folder, "chunks", fp, progress)
    tqdm.write(f"encoded {summary.line()}")
    return folder


def _stat(path: str) -> tuple:
    try:
        st = os.stat(path)
        return st.st_size, int(st.st_mtime)
    except OSError:
        return 0, 0


def with_autoencoder_of(preset: Preset, source: str) -> Preset:
    """`preset` with the audio and autoencoder groups of the trained autoencoder in `source`."""
    ae_preset = load_preset(source)
    return dataclasses.replace(preset, audio=ae_preset.audio, ae=ae_preset.ae)


def _same_folder(a: str, b: str) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)


def train(stage: str, preset: Preset, data: str, run_dir: str, steps: int | None = None,
          resume: bool = True, progress: bool = True, init_from: str | None = None,
          lr: float | None = None, ae_from: str | None = None) -> dict:
    """Train `stage` of the run in `run_dir`, first training any missing earlier stage.

    `ae_from`: a run folder or an exported / imported model folder whose trained autoencoder this
    run uses (recorded in ``RUN/autoencoder.json``); then only the GAN is trained, on latents of
    that autoencoder, and the run's audio / autoencoder settings are the source's.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
    distribute.strategy_for(preset)  # multi-worker: before TensorFlow runs its first op
    if ae_from is not None and stage not in ("gan", "decoders"):
        raise ValueError(f"--ae-from gives a trained autoencoder, so it goes with --stage gan or "
                         f"decoders (got --stage {stage})")
    if stage == "decoders":
        return {"decoders": _train_decoders(preset, run_dir, data, ae_from, steps, resume, progress)}
    ae_source = ae_from or ae_stages.autoencoder_source(run_dir)
    if not _same_folder(ae_source, run_dir):
        if stage != "gan":
            raise ValueError(f"{run_dir} uses the autoencoder of {ae_source} "
                             f"({ae_stages.AE_SOURCE_FILE}); train that one, or use another --run")
        ae_stages.check_autoencoder_source(ae_source)
        preset = run_preset(run_dir, with_autoencoder_of(preset, ae_source))
        if distribute.is_chief(distribute.strategy_for(preset)):
            ae_stages.set_autoencoder_source(run_dir, ae_source)
        return {"gan": _train_gan(preset, run_dir, data, ae_source, steps, resume, progress,
                                  init_from, lr)}
    preset = run_preset(run_dir, preset)
    results = {}
    done = ae_complete(run_dir, preset)
    needs_audio = stage in ("ae1", "ae2") or not all(done.values())
    files = preview = None
    if needs_audio:
        files, preview = cached_audio(preset, data, progress)
    if stage == "ae1" or (stage != "ae1" and not done["ae1"]):
        if stage != "ae1":
            tqdm.write("autoencoder level 1 not trained yet in this run: training it first")
        results["ae1"] = ae_stages.train_ae1(preset, run_dir, files,
                                             steps if stage == "ae1" else preset.train.ae1_steps,
                                             resume, progress, preview)
    if stage == "ae2" or (stage == "gan" and not done["ae2"]):
        if stage == "gan":
            tqdm.write("autoencoder level 2 not trained yet in this run: training it first")
        results["ae2"] = ae_stages.train_ae2(preset, run_dir, files,
                                             steps if stage == "ae2" else preset.train.ae2_steps,
                                             resume, progress, preview)
    if stage == "gan":
        results["gan"] = _train_gan(preset, run_dir, data, run_dir, steps, resume, progress,
                                    init_from, lr)
    return results


def _train_decoders(preset: Preset, run_dir: str, data: str, ae_from: str | None, steps, resume,
                    progress) -> dict:
    """Fine-tune the decoders of `ae_from` (else of the run's own trained autoencoder) in the run."""
    source = ae_from or ae_stages.autoencoder_source(run_dir)
    ae_stages.check_autoencoder_source(source)
    if not _same_folder(source, run_dir):
        preset = with_autoencoder_of(preset, source)
    preset = run_preset(run_dir, preset)
    files, preview = cached_audio(preset, data, progress)
    return ae_stages.train_decoders(preset, run_dir, files, source, steps, resume, progress, preview)


def _train_gan(preset: Preset, run_dir: str, data: str, ae_source: str, steps, resume, progress,
               init_from, lr) -> dict:
    """Encode `data` with the autoencoder of `ae_source` (cached) and train the run's GAN."""
    from ..encoding import decode_latents
    from .gan import train_gan

    latents_dir = ensure_latents(preset, run_dir, data, progress)
    ae = ae_stages.load_autoencoder(preset, ae_source)
    return train_gan(preset, latents_dir, os.path.join(run_dir, "gan"), steps=steps, resume=resume,
                     init_from=init_from, lr=lr, decode_fn=lambda z: decode_latents(ae, z, seed=0),
                     progress=progress)
