"""Global tempo estimation with Tempo-CNN (Schreiber & Mueller), ported to Keras 3.

Only the trained Keras `.h5` files of the `tempocnn` wheel are used (install it with
``pip install --no-deps tempocnn==0.0.8``); its code is not imported: it needs Keras 2. What is
reimplemented, after tempocnn 0.0.8's ``feature.read_features`` and ``classifier.TempoClassifier``:

* audio -> mono (mean of the channels) -> 11025 Hz (librosa's ``soxr_hq``, as ``librosa.load``);
* magnitude (power 1) mel spectrogram: n_fft 1024, hop 512 (46.4 ms frames), 40 bands 20-5000 Hz;
* windows of 256 frames (11.9 s) every 128 frames; no padding, so shorter audio is refused;
* the whole window stack divided by its maximum (``max_normalizer``; ``std_normalizer`` for the
  deeptemp / deepsquare / shallowtemp / dt_maz models);
* the network's 256-class softmax per window (class i = 30 + i BPM), averaged over the windows;
  the tempo is the argmax (+ optional quadratic interpolation, as ``tempo --interpolate``).

The default model is ``cnn`` (Schreiber's MIREX 2018 CNN, 2.9 M parameters). Note that
tempocnn's own ``tempo`` command and ``TempoClassifier`` default to ``fcn`` (0.3 M, fully
convolutional): both are ported and checked, and agree on the embedded techno set, but ``fcn``
halves or doubles plain drum loops at 70 and 100 BPM where ``cnn`` does not.
``tests/test_tempo.py`` checks the port against outputs of the original recorded by
``scripts/make_tempocnn_fixture.py``.

Also Accuracy1 / Accuracy2 (Gouyon et al. 2006, MIREX), for tempo-conditioned generation.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np

from .signal import mono_at_rate

logger = logging.getLogger(__name__)

SAMPLE_RATE = 11025  # Hz, the rate the models were trained at
N_FFT = 1024
HOP = 512  # samples at SAMPLE_RATE per spectrogram frame
N_MELS = 40
FMIN, FMAX = 20.0, 5000.0  # Hz
WINDOW_FRAMES = 256  # frames per network input
WINDOW_HOP = 128  # frames between windows
MIN_BPM = 30  # BPM of class 0; class i is MIN_BPM + i
CLASSES = 256
MIN_SAMPLES = (WINDOW_FRAMES - 1) * HOP  # at SAMPLE_RATE: librosa's centred STFT gives 1 + n // HOP
MIN_SECONDS = MIN_SAMPLES / SAMPLE_RATE  # 11.84 s
DEFAULT_MODEL = "cnn"
INSTALL_HINT = "pip install --no-deps tempocnn==0.0.8"


# ---------------------------------------------------------------------------------------------
# Model files


def models_folder() -> Path:
    """The `models/` folder of the installed tempocnn wheel, found without importing tempocnn."""
    spec = importlib.util.find_spec("tempocnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the tempocnn wheel (its trained models) is not installed: "
                                  f"run `{INSTALL_HINT}`")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(model: str = DEFAULT_MODEL) -> Path:
    """Path of tempocnn's `<model>.h5` (e.g. 'fcn', 'cnn', 'ismir2018', 'deeptemp_k8')."""
    folder = models_folder()
    path = folder / f"{model}.h5"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.h5"))
        raise ValueError(f"no Tempo-CNN model {model!r} in {folder}; available: {available}")
    return path


def load_model(path: str | Path):
    """The Keras 3 model of a legacy (Keras 2.4) tempocnn `.h5` file, for inference.

    Keras 3 reads these files itself; should a Keras version refuse, the functional graph is
    rebuilt from the file's `model_config` and the weights copied by layer name with h5py."""
    import keras

    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as error:  # noqa: BLE001 - any failure: fall back to the manual rebuild
        logger.warning("keras could not load %s (%s: %s); rebuilding it from its model_config",
                       path, type(error).__name__, error)
        return rebuild_model(path)
    # Legacy files load with a one-element input list; a single-tensor model avoids Keras 3's
    # input-structure warning on every call.
    return keras.Model(model.inputs[0], model.outputs[0], name=model.name)


def _layer(class_name: str, c: dict):
    """A Keras 3 layer from a Keras 2.4 layer config (the layer types tempocnn's models use)."""
    from keras import layers

    conv = dict(strides=c.get("strides", 1), padding=c.get("padding", "valid"), name=c["name"])
    if class_name == "BatchNormalization":
        axis = c["axis"][0] if isinstance(c["axis"], list) else c["axis"]
        return layers.BatchNormalization(axis=axis, epsilon=c["epsilon"], momentum=c["momentum"],
                                         center=c["center"], scale=c["scale"], name=c["name"])
    if class_name == "Conv2D":
        return layers.Conv2D(c["filters"], c["kernel_size"], dilation_rate=c["dilation_rate"],
                             activation=c["activation"], use_bias=c["use_bias"], **conv)
    if class_name in ("AveragePooling2D", "MaxPooling2D"):
        return getattr(layers, class_name)(c["pool_size"], **conv)
    if class_name == "Dense":
        return layers.Dense(c["units"], activation=c["activation"], use_bias=c["use_bias"],
                            name=c["name"])
    simple = {"Concatenate": lambda: layers.Concatenate(axis=c["axis"], name=c["name"]),
              "Flatten": lambda: layers.Flatten(name=c["name"]),
              "Dropout": lambda: layers.Dropout(c["rate"], name=c["name"]),
              "GlobalAveragePooling2D": lambda: layers.GlobalAveragePooling2D(name=c["name"]),
              "Activation": lambda: layers.Activation(c["activation"], name=c["name"])}
    if class_name not in simple:
        raise NotImplementedError(f"Tempo-CNN rebuild: layer type {class_name} not supported")
    return simple[class_name]()


def rebuild_model(path: str | Path):
    """Keras 3 functional model rebuilt from a Keras 2 `.h5`'s `model_config`, with its weights."""
    import h5py
    import keras

    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])["config"]
        tensors, layers = {}, {}
        for spec in config["layers"]:
            name, c = spec["config"]["name"], spec["config"]
            if spec["class_name"] == "InputLayer":
                tensors[name] = keras.Input(shape=tuple(c["batch_input_shape"][1:]), name=name)
                continue
            layers[name] = _layer(spec["class_name"], c)
            inputs = [tensors[node[0]] for node in spec["inbound_nodes"][0]]
            tensors[name] = layers[name](inputs if len(inputs) > 1 else inputs[0])
        inputs = [tensors[i[0]] for i in config["input_layers"]]
        outputs = [tensors[o[0]] for o in config["output_layers"]]
        model = keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                            outputs[0] if len(outputs) == 1 else outputs, name=config["name"])
        weights = f["model_weights"]
        for name, layer in layers.items():
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in weights[name].attrs["weight_names"]]
            layer.set_weights([np.asarray(weights[name][n]) for n in names])
    return model


# ---------------------------------------------------------------------------------------------
# Features


def mel_windows(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Network inputs, float32 `[windows, 40, 256, 1]` (mel bands, frames), not yet normalised.

    `audio`: `[samples]` or `[samples, 2]` at `sample_rate` Hz, at least MIN_SECONDS (11.84 s)
    long. There are 1 + (frames - 256) // 128 windows, frames = 1 + samples at 11025 Hz // 512;
    frames after the last full window are dropped, as tempocnn does."""
    import librosa

    y = mono_at_rate(audio, sample_rate, SAMPLE_RATE)
    if y.size < MIN_SAMPLES:
        raise ValueError(f"audio of {y.size / SAMPLE_RATE:.2f} s is shorter than one Tempo-CNN "
                         f"window of {WINDOW_FRAMES} frames: at least {MIN_SECONDS:.2f} s needed")
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                         power=1, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
    starts = range(0, mel.shape[1] - WINDOW_FRAMES + 1, WINDOW_HOP)
    return np.stack([mel[:, s:s + WINDOW_FRAMES] for s in starts])[..., None]


def max_normalize(windows: np.ndarray) -> np.ndarray:
    """Windows divided by their overall maximum (one scale for the whole stack), float32."""
    peak = windows.max()
    return windows / peak if peak != 0 else windows


def std_normalize(windows: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole stack, rounded through float16 as tempocnn does."""
    data = windows.astype(np.float64)
    std = data.std()
    if std != 0.0:
        data = (data - data.mean()) / std
    return data.astype(np.float16).astype(np.float32)


def normalizer(model: str):
    """tempocnn's choice of input normalisation for a model name."""
    std = ("dt_maz", "deeptemp", "deepsquare", "shallowtemp")
    return std_normalize if any(s in model for s in std) else max_normalize


def quadratic_peak(y: np.ndarray) -> float:
    """Fractional index of the maximum of `y` `[n]`: vertex of the parabola through the argmax
    and its neighbours (the argmax itself at either end), like tempocnn's `quad_interpol_argmax`."""
    x = int(np.argmax(y))
    if x == 0 or x == y.size - 1:
        return float(x)
    left, mid, right = (float(v) for v in y[x - 1:x + 2])
    curvature = left - 2.0 * mid + right
    return x if curvature == 0 else x + 0.5 * (left - right) / curvature


# ---------------------------------------------------------------------------------------------
# Estimator


class TempoEstimator:
    """Global tempo (BPM) of audio with a Tempo-CNN model, on CPU (about a second per minute).

    Usage: ``TempoEstimator().estimate(audio, 44100)`` -> e.g. ``128.0``, for `audio`
    `[samples]` or `[samples, 2]` of at least MIN_SECONDS (11.84 s).
    ``TempoEstimator("fcn")`` is tempocnn's own default model.
    """

    def __init__(self, model: str = DEFAULT_MODEL):
        """`model`: name of a `.h5` in tempocnn's models folder ('fcn', 'cnn', 'ismir2018', ...;
        the 'fma' models with their log-BPM classes are not supported)."""
        if "fma" in model:
            raise ValueError("the fma models use log-scaled BPM classes; not supported here")
        self.model_name = model
        self.model = load_model(model_path(model))
        self.normalize = normalizer(model)

    def window_probabilities(self, audio: np.ndarray, sample_rate: int,
                             batch_size: int = 32) -> np.ndarray:
        """Softmax per window, float32 `[windows, 256]`; column i is 30 + i BPM.

        `audio`: float `[samples]` or `[samples, 2]` at `sample_rate` Hz, >= MIN_SECONDS long
        (scale does not matter: inputs are normalised)."""
        windows = self.normalize(mel_windows(audio, sample_rate))
        out = [np.asarray(self.model(windows[i:i + batch_size], training=False))
               for i in range(0, len(windows), batch_size)]
        return np.concatenate(out).astype(np.float32)

    def probabilities(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Tempo distribution, float32 `[256]` summing to 1: the window softmaxes averaged;
        index i is 30 + i BPM. Same `audio` as `estimate`."""
        return self.window_probabilities(audio, sample_rate).mean(axis=0)

    def estimate(self, audio: np.ndarray, sample_rate: int, interpolate: bool = False) -> float:
        """Global tempo in BPM (30-285) of `audio`, float `[samples]` or `[samples, 2]` at
        `sample_rate` Hz, at least MIN_SECONDS (11.84 s) long, else ValueError.

        The argmax of `probabilities` (a whole BPM, as tempocnn's `tempo` command); with
        `interpolate`, refined by a parabola through its neighbours (`tempo --interpolate`)."""
        p = self.probabilities(audio, sample_rate)
        index = quadratic_peak(p) if interpolate else int(np.argmax(p))
        return float(MIN_BPM + index)


# ---------------------------------------------------------------------------------------------
# Metrics


def accuracy1(estimated, reference, tolerance: float = 0.02) -> np.ndarray:
    """Accuracy1: bool array (broadcast shape), True where |estimated - reference| <=
    tolerance * reference. Both in BPM, reference > 0; tolerance 0.02 = 2 % (MIREX)."""
    estimated = np.asarray(estimated, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if np.any(reference <= 0):
        raise ValueError("reference tempi must be positive")
    return np.abs(estimated - reference) <= tolerance * reference


def accuracy2(estimated, reference, tolerance: float = 0.02) -> np.ndarray:
    """Accuracy2: like `accuracy1`, but an estimate within `tolerance` of 2, 3, 1/2 or 1/3 times
    the reference (octave and triple/third errors) counts as correct too (tolerance relative to
    the scaled reference)."""
    factors = (1.0, 2.0, 3.0, 1.0 / 2.0, 1.0 / 3.0)
    reference = np.asarray(reference, dtype=np.float64)
    return np.logical_or.reduce([accuracy1(estimated, f * reference, tolerance) for f in factors])
