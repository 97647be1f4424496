"""Record the original Tempo-CNN's outputs on synthetic clips: tests/fixtures/tempocnn_reference.npz

Run once, by a developer, when the port in `musika_tf/evaluation/tempo.py` needs a new reference
(never by tests or install). It needs tempocnn's own code on Keras 2, so it runs in a throwaway
virtualenv, not the project's:

    python3 -m venv /tmp/tempocnn-ref
    /tmp/tempocnn-ref/bin/pip install tensorflow-cpu==2.16.2 tf-keras==2.16.0 librosa==0.11.0 \
        soundfile==0.14.0 numpy==1.26.4 scipy==1.13.1 pandas==2.2.3 jams matplotlib setuptools
    /tmp/tempocnn-ref/bin/pip install --no-deps tempocnn==0.0.8   # it pins tensorflow==2.17.0
    TF_USE_LEGACY_KERAS=1 HOME=/tmp/tempocnn-home /tmp/tempocnn-ref/bin/python \
        scripts/make_tempocnn_fixture.py

(HOME only keeps tempocnn's model cache, ~/.tempocnn, out of your home folder.)

Each clip is written as a float32 WAV and fed through tempocnn's own `read_features` (what its
`tempo` command does), then `TempoClassifier.estimate` / `estimate_tempo`. The clips themselves
are not stored: `make_clip` regenerates them from the parameters saved in the fixture (tests
import this file for it, and check the stored checksums). Only numpy is needed at import time.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tempocnn_reference.npz"
MODELS = ("fcn", "cnn")
# Three clips: different tempi, sample rates (resampling path), channels (downmix) and lengths
# (1, 2 and 4 sliding windows of 256 frames).
CLIPS = (
    {"bpm": 120.0, "sample_rate": 44100, "channels": 1, "seconds": 14.0, "seed": 1},
    {"bpm": 93.0, "sample_rate": 22050, "channels": 2, "seconds": 20.0, "seed": 2},
    {"bpm": 137.0, "sample_rate": 11025, "channels": 1, "seconds": 36.0, "seed": 3},
)


def make_clip(bpm: float, sample_rate: int, channels: int = 1, seconds: float = 12.0,
              seed: int = 0, clap: float = 0.0) -> np.ndarray:
    """Deterministic drum loop: float32 `[samples]` (mono) or `[samples, channels]` in [-1, 1].

    A sine kick with a pitch drop on every beat, a noise hi-hat on every off-beat (panned right
    in stereo), a quieter hat on the sixteenths after the beat (panned left) and, with `clap` > 0,
    a noise clap of that gain on beats 2 and 4 of each bar (a backbeat, centred).
    """
    samples = int(round(seconds * sample_rate))
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * np.cumsum(50.0 + 110.0 * np.exp(-t / 0.03)) / sample_rate)
    kick *= np.exp(-t / 0.18)
    rng = np.random.default_rng(seed)
    hat = rng.uniform(-1.0, 1.0, int(0.05 * sample_rate)) * np.exp(-t[: int(0.05 * sample_rate)]
                                                                   / 0.01)
    beat = 60.0 / bpm

    def track(sound: np.ndarray, offset_beats: float, gain: float, every: int = 1) -> np.ndarray:
        out = np.zeros(samples + sound.size)
        for start in np.arange(offset_beats * beat, seconds, every * beat):
            i = int(round(start * sample_rate))
            out[i:i + sound.size] += gain * sound
        return out[:samples]

    drums = track(kick, 0.0, 0.8)
    if clap > 0:
        burst = rng.uniform(-1.0, 1.0, int(0.15 * sample_rate)) * np.exp(
            -t[: int(0.15 * sample_rate)] / 0.04)
        drums = drums + track(burst, 1.0, clap, every=2)
    off_hat, sixteenth_hat = track(hat, 0.5, 0.35), track(hat, 0.25, 0.15)
    if channels == 1:
        return (drums + off_hat + sixteenth_hat).astype(np.float32)
    left, right = drums + sixteenth_hat, drums + off_hat
    return np.stack([left, right] + [drums] * (channels - 2), axis=1).astype(np.float32)


def checksum(clip: np.ndarray) -> np.ndarray:
    """float64 [3]: sum, sum of squares, position-weighted sum of |x| (catches generator drift)."""
    x = clip.astype(np.float64).reshape(-1)
    return np.array([x.sum(), (x * x).sum(), (np.abs(x) * np.linspace(0, 1, x.size)).sum()])


def main() -> None:
    import soundfile as sf
    from tempocnn.classifier import TempoClassifier
    from tempocnn.feature import read_features

    classifiers = {name: TempoClassifier(name) for name in MODELS}
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as folder:
        for k, params in enumerate(CLIPS):
            clip = make_clip(**params)
            path = str(Path(folder) / f"clip{k}.wav")
            sf.write(path, clip, params["sample_rate"], subtype="FLOAT")
            features = read_features(path)  # tempocnn's defaults: frames=256, hop 128, no padding
            arrays[f"clip{k}_checksum"] = checksum(clip)
            arrays[f"clip{k}_features_max"] = np.float64(features.max())
            arrays[f"clip{k}_windows"] = np.int64(features.shape[0])
            for name, classifier in classifiers.items():
                windows = classifier.estimate(np.copy(features))  # [windows, 256]
                arrays[f"clip{k}_{name}_windows"] = windows.astype(np.float32)
                arrays[f"clip{k}_{name}_mean"] = np.average(windows, axis=0).astype(np.float32)
                arrays[f"clip{k}_{name}_bpm"] = np.float64(
                    classifier.estimate_tempo(np.copy(features)))
                arrays[f"clip{k}_{name}_bpm_interpolated"] = np.float64(
                    classifier.estimate_tempo(np.copy(features), interpolate=True))
                print(f"clip{k} {params} {name}: {features.shape[0]} windows, "
                      f"{arrays[f'clip{k}_{name}_bpm']} BPM "
                      f"({arrays[f'clip{k}_{name}_bpm_interpolated']:.2f} interpolated)")
    import librosa
    import tensorflow as tf
    import tempocnn.version
    versions = {"tempocnn": tempocnn.version.__version__, "tensorflow": tf.__version__,
                "librosa": librosa.__version__, "numpy": np.__version__,
                "python": sys.version.split()[0]}
    arrays["clips"] = np.array(json.dumps(CLIPS))
    arrays["models"] = np.array(json.dumps(MODELS))
    arrays["versions"] = np.array(json.dumps(versions))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, **arrays)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes), {versions}")


if __name__ == "__main__":
    main()
