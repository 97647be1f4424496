"""Make tests/fixtures/musicnn_reference.npz: the original musicnn's embeddings of synthetic clips.

Run once, by a developer, when the port in `musika_tf/evaluation/musicnn.py` needs a new reference
(never by tests or install). It needs musicnn's own code (TF1 graphs through tf.compat.v1 and
Keras 2), so it runs in a throwaway virtualenv, not the project's:

    python3 -m venv /tmp/musicnn-ref
    /tmp/musicnn-ref/bin/pip install tensorflow-cpu==2.16.2 tf-keras==2.16.0 librosa==0.11.0 \
        numpy==1.26.4 scipy==1.13.1 soxr==1.1.0
    /tmp/musicnn-ref/bin/pip install --no-deps musicnn==0.1.0   # it requires numpy<1.17
    TF_USE_LEGACY_KERAS=1 /tmp/musicnn-ref/bin/python scripts/make_musicnn_fixture.py

(scipy and soxr are pinned to the project's versions so the STFT and resampler are the same.)

Each clip is written as a 16-bit WAV at its own rate and channel count and run through musicnn's
original graph, for both musicnn models of the wheel (MSD_musicnn, MTT_musicnn). musicnn 0.1.0
runs unchanged on TF 2.16, but its `extractor.extractor(..., extract_features=True)` has a bug:
from the second patch on it returns the FIRST patch's 'penultimate' (and 'cnn1-3') again (its
loop unpacks the new value as `backend_` but concatenates the stale `penultimate_`). So the
reference is `original_features`: the extractor's own steps with musicnn's own functions (its
`batch_data` front end: `librosa.load(sr=16000)` = mono downmix + soxr_hq, mel, float16, log;
`models.define_model`; `Saver.restore`; one patch per `sess.run`), minus that bug. The extractor
itself is run as well and must agree bit for bit wherever the bug does not reach (all pools, the
first patch's penultimate). The only run-time patch makes a failed checkpoint restore fatal
inside the extractor (it swallows the error and would silently run with random weights).

The fixture holds the clips themselves (int16, so the test feeds the port exactly what the WAVs
held; 190 kB in all), their generation parameters, and the original's `penultimate`
`[patches, 200]` of each model, plus `max_pool` and `mean_pool` `[patches, 753]` of MSD_musicnn.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "musicnn_reference.npz"
# Layers recorded per model (the pools of the default model only: the fixture stays < 200 kB).
LAYERS = {"MSD_musicnn": ("penultimate", "max_pool", "mean_pool"), "MTT_musicnn": ("penultimate",)}
# Three kinds of sound, three rates (none, up- and down-sampling), mono and stereo, 1 and 2
# patches of 3 s (a patch needs 2.976 s at least).
CLIPS = {
    "piano": {"sample_rate": 16000, "channels": 1, "seconds": 3.1, "seed": 1},
    "clicks": {"sample_rate": 44100, "channels": 2, "seconds": 6.4, "seed": 2},
    "noise": {"sample_rate": 8000, "channels": 1, "seconds": 3.3, "seed": 3},
}


def piano(t: np.ndarray, rng) -> np.ndarray:
    """Six decaying harmonic tones (8 partials, slight inharmonicity), one every 0.5 s."""
    out = np.zeros_like(t)
    for onset, midi in zip(np.arange(6) * 0.5, rng.choice([48, 52, 55, 60, 64, 67, 72], 6)):
        f0, age = 440.0 * 2 ** ((midi - 69) / 12), np.clip(t - onset, 0.0, None)
        for k in range(1, 9):
            partial = np.sin(2 * np.pi * f0 * k * np.sqrt(1 + 1e-4 * k * k) * age) / k
            out += (t >= onset) * partial * np.exp(-age * (1.5 + 0.8 * k))
    return out


def clicks(t: np.ndarray, rng) -> np.ndarray:
    """Left: 8-ms 2 kHz blips every 0.23 s; right: louder 1 kHz blips every 0.37 s."""
    def track(period: float, freq: float, gain: float) -> np.ndarray:
        age = np.mod(t, period)
        return gain * np.sin(2 * np.pi * freq * age) * np.exp(-age / 0.002) * (age < 0.008)
    return np.stack([track(0.23, 2000.0, 0.5), track(0.37, 1000.0, 0.9)], axis=-1)


def noise(t: np.ndarray, rng) -> np.ndarray:
    """White-noise bursts of random length (50-300 ms) and level, decaying, with gaps."""
    out, start = np.zeros_like(t), 0.0
    while start < t[-1]:
        length = rng.uniform(0.05, 0.3)
        age = t - start
        burst = (age >= 0) & (age < length)
        out[burst] = rng.uniform(0.2, 0.9) * rng.standard_normal(burst.sum()) * np.exp(
            -age[burst] / (0.5 * length))
        start += length + rng.uniform(0.05, 0.2)
    return out


def make_clip(kind: str, sample_rate: int, channels: int, seconds: float, seed: int) -> np.ndarray:
    """Deterministic clip as int16 `[samples]` (mono) or `[samples, 2]`, peak at 0.8 full scale."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    audio = {"piano": piano, "clicks": clicks, "noise": noise}[kind](t, np.random.default_rng(seed))
    assert audio.ndim == (1 if channels == 1 else 2)
    return np.round(0.8 * 32767 * audio / np.abs(audio).max()).astype(np.int16)


def require_restore() -> None:
    """Make musicnn's extractor fail loudly if its checkpoint does not restore."""
    import tensorflow as tf

    class CheckedSaver(tf.compat.v1.train.Saver):
        def restore(self, sess, save_path):
            try:
                return super().restore(sess, save_path)
            except Exception as error:  # the extractor's bare `except:` would swallow it
                sys.exit(f"musicnn checkpoint {save_path} did not restore: {error}")

    tf.compat.v1.train.Saver = CheckedSaver


def original_features(path: str, model: str) -> dict:
    """{'penultimate', 'max_pool', 'mean_pool': float32 `[patches, d]`} of musicnn's graph on the
    WAV at `path`, built and fed as `extractor.extractor` does (see module doc)."""
    import librosa
    import tensorflow as tf
    from musicnn import configuration as config, extractor, models

    n_frames = librosa.time_to_frames(3, sr=config.SR, n_fft=config.FFT_SIZE,
                                      hop_length=config.FFT_HOP) + 1
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outputs = models.define_model(x, is_training, model, len(config.MSD_LABELS))
    fetch = dict(zip(("mean_pool", "max_pool", "penultimate"), outputs[-3:]))
    batch, _ = extractor.batch_data(path, n_frames, n_frames)
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, f"{Path(extractor.__file__).parent}/{model}/")
        runs = [sess.run(fetch, {x: patch[None], is_training: False}) for patch in batch]
    return {layer: np.concatenate([r[layer] for r in runs]).astype(np.float32) for layer in fetch}


def check_against_extractor(path: str, model: str, features: dict) -> None:
    """musicnn's own extractor agrees with `original_features` wherever its bug does not reach."""
    from musicnn.extractor import extractor

    _, _, theirs = extractor(path, model=model, input_length=3, input_overlap=False,
                             extract_features=True)
    for layer in ("max_pool", "mean_pool"):
        np.testing.assert_array_equal(theirs[layer], features[layer], err_msg=f"{model} {layer}")
    np.testing.assert_array_equal(theirs["penultimate"][0], features["penultimate"][0])


def main() -> None:
    import librosa
    import soundfile as sf
    import soxr
    import tensorflow as tf

    require_restore()
    clips = {name: make_clip(name, **params) for name, params in CLIPS.items()}
    arrays = {f"clip/{name}": clip for name, clip in clips.items()}
    with tempfile.TemporaryDirectory() as folder:
        for name, clip in clips.items():
            path = f"{folder}/{name}.wav"
            sf.write(path, clip, CLIPS[name]["sample_rate"], subtype="PCM_16")
            for model, layers in LAYERS.items():
                features = original_features(path, model)
                check_against_extractor(path, model, features)
                for layer in layers:
                    arrays[f"{model}/{name}/{layer}"] = features[layer]
    meta = {"clips": CLIPS, "layers": LAYERS, "musicnn": "0.1.0",
            "versions": {"tensorflow": tf.__version__, "librosa": librosa.__version__,
                         "numpy": np.__version__, "soxr": soxr.__version__},
            "reference": "scripts/make_musicnn_fixture.py original_features: musicnn 0.1.0's "
                         "extractor steps, one patch per sess.run, without its penultimate bug"}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, meta=json.dumps(meta), **arrays)
    for key, value in arrays.items():
        print(f"{key:32s} {value.shape} {value.dtype}")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
