"""What makes a model's FAD? (docs/TRAINING.md)

Generates pieces the way `python -m musika_tf evaluate` does (same seeds, conditions and held-out
reference excerpts) and prints, for the generated pieces, the training excerpts (floor) and the
autoencoder's reconstructions of the reference (ceiling), each against the reference:

* the two terms of the Frechet distance on the MusiCNN embeddings: the mean term (the sets lie
  apart on average) and the covariance term (they spread differently);
* mean power (dB re full scale) and the loudness spread inside a piece (std of 0.5-s frame levels,
  dB): a quiet or flat-dynamics model shows here;
* the MusiCNN tags (Million Song Dataset labels) whose mean probability differs most between the
  generated patches and the reference: a word for what the embedding hears.

    python scripts/fad_breakdown.py checkpoints/piano --data maestro [--samples 32 --seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import musika_tf  # noqa: E402,F401  (TensorFlow settings before TensorFlow is imported)
from musika_tf.evaluation import fad, harness, musicnn  # noqa: E402

FRAME_SECONDS = 0.5  # loudness frames
TOP_TAGS = 8


def power_db(audio: np.ndarray) -> float:
    """Mean power of `audio` ``[samples(, 2)]`` in dB re full scale."""
    return float(10 * np.log10(np.mean(np.square(audio)) + 1e-12))


def loudness_spread_db(audio: np.ndarray, sample_rate: int) -> float:
    """Std (dB) of the levels of consecutive FRAME_SECONDS frames of `audio`."""
    frame = int(FRAME_SECONDS * sample_rate)
    frames = [audio[i:i + frame] for i in range(0, len(audio) - frame + 1, frame)]
    return float(np.std([power_db(f) for f in frames]))


def describe(embeddings: np.ndarray, clips: list, reference: np.ndarray, sample_rate: int) -> dict:
    """FAD terms of the patch `embeddings` of `clips` against the `reference` embeddings, level
    and loudness spread of `clips`, and their mean tag probabilities ``[tags]`` (under ``"tags"``)."""
    mean_term, cov_term = fad.frechet_terms(fad.GaussianStats.of(embeddings),
                                            fad.GaussianStats.of(reference))
    return {"fad_mean_term": mean_term, "fad_covariance_term": cov_term,
            "power_db": float(np.mean([power_db(c) for c in clips])),
            "loudness_spread_db": float(np.mean([loudness_spread_db(c, sample_rate) for c in clips])),
            "tags": musicnn.tag_probabilities(embeddings).mean(axis=0)}


def breakdown(model_dir: str, data: str, settings: harness.Settings, embedder=None) -> dict:
    """The sets of `harness.evaluate` for `model_dir` on `data`, each described by `describe`;
    ``"tags"`` lists the TOP_TAGS tags whose mean probability differs most between the generated
    and the reference patches, as ``(tag, generated, reference)``."""
    found = harness.evaluation_sets(model_dir, data, settings)
    rate = found.engine.sample_rate
    embedder = embedder or musicnn.MusicnnEmbedder()
    sets = {"generated": found.generated, "floor_training_real": [x.audio for x in found.training],
            "ceiling_autoencoder": found.reconstructed,
            "reference": [x.audio for x in found.reference]}
    embeddings = {name: np.concatenate([embedder.embed(c, rate) for c in clips])
                  for name, clips in sets.items()}
    out = {name: describe(embeddings[name], clips, embeddings["reference"], rate)
           for name, clips in sets.items()}
    tags = {name: out[name].pop("tags") for name in sets}
    gen, ref = tags["generated"], tags["reference"]
    names = musicnn.tag_names()
    order = np.argsort(-np.abs(gen - ref))[:TOP_TAGS]
    out["tags"] = [(names[i], round(float(gen[i]), 3), round(float(ref[i]), 3)) for i in order]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="exported model folder, e.g. checkpoints/piano")
    parser.add_argument("--data", required=True, help="data set as for `evaluate --data`")
    parser.add_argument("--samples", type=int, default=32, help="generated pieces (default 32)")
    parser.add_argument("--seconds", type=float, default=12.0, help="piece length (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="first generation seed (default 0)")
    args = parser.parse_args(argv)
    result = breakdown(args.model, args.data, harness.Settings(
        samples=args.samples, seconds=args.seconds, seed=args.seed))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
