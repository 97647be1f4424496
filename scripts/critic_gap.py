"""Does the latent critic memorise its training windows? (docs/TRAINING.md)

Loads a GAN run's latest checkpoint (a run's ``gan/`` folder) or an exported model's ``weights/``,
with the critic it was trained against, and prints the critic's mean logit on random windows of
every split of a latent store and on windows of the (non-EMA) generator:

    python scripts/critic_gap.py runs/piano/gan --latents runs/piano/latents/maestro [--augmented]

A critic that generalises scores held-out real windows (validation, test) like training windows;
one that has memorised the training set scores held-out real windows between its training windows
and the fakes, and the generator is then pushed towards the training windows. ``--augmented`` also
passes every window through the preset's critic augmentation (`musika_tf.training.augment`), as in
training. Windows: ``--batches`` x 32 per set, fixed seed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import musika_tf  # noqa: E402,F401  (TensorFlow settings before TensorFlow is imported)
from musika_tf import gan  # noqa: E402
from musika_tf.config import load_preset  # noqa: E402
from musika_tf.training import augment  # noqa: E402
from musika_tf.training.gan import GANTrainer, LatentCrops, _split_critic_output, make_batch  # noqa: E402

BATCH = 32
FAKE_DRAWS = 10_000_000  # batch numbers far beyond any training run's, so no training batch repeats


def mean_logit(trainer: GANTrainer, windows, cond, augmentation) -> float:
    """Mean critic logit of latents ``[B, T, 2D]`` or ``[B, 1, T, 2D]`` (+ network condition
    ``[B, T, K]``)."""
    x = np.asarray(windows, np.float32)
    x = x[:, np.newaxis] if x.ndim == 3 else x
    logit, _ = _split_critic_output(trainer._critic(x, cond, augmentation))
    return float(np.mean(logit))


def critic_gap(source: str, latents: str, batches: int, augmented: bool) -> dict:
    """Mean critic logit per real split and for generated windows."""
    # no condition feedback: it needs a decoder, and nothing here trains
    preset = load_preset(os.path.join(source, "preset.json")).with_overrides(condition_feedback_every=0)
    augmented = augmented and augment.enabled(preset.gan)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = GANTrainer(preset, scratch, latents, init_from=source)
    rng = np.random.default_rng(1)
    g = preset.gan

    def draws():
        return (augment.draw(rng, BATCH, g.latlen, g.critic_translation, g.critic_cutout)
                if augmented else None)

    out = {}
    for split in ("train", "validation", "test"):
        try:
            crops = LatentCrops.from_store(latents, preset, split)
        except ValueError:  # no window of this split is latlen long
            continue
        out[split] = float(np.mean([mean_logit(trainer, *crops.sample(BATCH, rng), draws())
                                    for _ in range(batches)]))
    fakes = []
    for draw in range(batches):
        batch = make_batch(preset, trainer.crops, FAKE_DRAWS + draw)
        cond = batch.get("cond")
        coords = batch["coords"] if cond is None else gan.append_condition(batch["coords"], cond)
        fakes.append(mean_logit(trainer, trainer.generator(coords, training=False), cond, draws()))
    out["generated"] = float(np.mean(fakes))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a run's gan/ folder (latest checkpoint) or an exported "
                                       "model folder (its weights/)")
    parser.add_argument("--latents", required=True, help="latent store folder (index.json) the GAN "
                                                         "trained on, with its splits")
    parser.add_argument("--batches", type=int, default=8, help="batches of 32 windows per set")
    parser.add_argument("--augmented", action="store_true",
                        help="augment every window as in training (presets with critic augmentation)")
    args = parser.parse_args(argv)
    print(json.dumps(critic_gap(args.source, args.latents, args.batches, args.augmented)))


if __name__ == "__main__":
    main()
