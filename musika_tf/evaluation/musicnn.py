"""MusiCNN audio embeddings (Pons & Serra 2019), ported to Keras 3, for the Frechet Audio Distance.

Only the trained TF1 checkpoints of the `musicnn` wheel are read (install it with
``pip install --no-deps musicnn==0.1.0``); its code is not imported: it needs TF1 graphs and
Keras 2. What is reimplemented, after musicnn 0.1.0's ``extractor.extractor`` and
``models.build_musicnn``:

* audio -> mono (mean of the channels) -> 16 kHz (librosa's ``soxr_hq``, as ``librosa.load``);
* power mel spectrogram (librosa defaults: Slaney mel, Hann window, centred frames): n_fft 512,
  hop 256 (16 ms frames), 96 bands; rounded to float16, then ``log10(10000 x + 1)`` (float32);
* consecutive non-overlapping patches of 187 frames (3 s); frames after the last full patch are
  dropped, as musicnn does;
* the network, batch norm in inference mode, dropout off:

  - front end, on the batch-normalised ``[187, 96]`` patch: timbral convolutions 7x38 and 7x67
    (204 filters each, time padded by 3) and temporal convolutions 128x1, 64x1, 32x1 (51 filters,
    'same'), each ReLU -> batch norm -> max over frequency: ``[187, 561]``;
  - mid end: three 7-frame 1-d convolutions of 64 filters (ReLU -> batch norm), the 2nd and 3rd
    residual, densely concatenated with the front end: ``[187, 753]``;
  - back end: max and mean over time (``max_pool``, ``mean_pool``, ``[753]`` each), interleaved
    ``[1506]`` -> batch norm -> dense 200 + ReLU -> batch norm = ``penultimate`` ``[200]``, the
    embedding. The 50-tag output layer is not part of the network; `tag_probabilities` applies it
    to embeddings (diagnostics: which tags the generated audio gets that the real audio does not).

Layers carry the TF1 auto-names of the original graph ('conv2d_3', 'batch_normalization_7', ...),
so each Keras variable's path is its checkpoint key. ``tests/test_musicnn.py`` checks this port
against outputs of the original recorded by ``scripts/make_musicnn_fixture.py``.
"""

from __future__ import annotations

import collections
import importlib.util
from pathlib import Path

import numpy as np

from .signal import mono_at_rate

SAMPLE_RATE = 16000  # Hz, the rate the models were trained at
N_FFT = 512
HOP = 256  # samples at SAMPLE_RATE per spectrogram frame
N_MELS = 96
PATCH_FRAMES = 187  # frames per network input: librosa.time_to_frames(3 s) + 1, as musicnn
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP  # at SAMPLE_RATE: librosa's centred STFT gives 1 + n // HOP
MIN_SECONDS = MIN_SAMPLES / SAMPLE_RATE  # 2.976 s
MODELS = ("MSD_musicnn", "MTT_musicnn")  # the musicnn architectures shipped in the wheel
DEFAULT_MODEL = "MSD_musicnn"
LAYERS = ("penultimate", "max_pool", "mean_pool")  # what `embed` can return
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"


# ---------------------------------------------------------------------------------------------
# Checkpoint


def checkpoint_prefix(model: str = DEFAULT_MODEL) -> str:
    """Prefix of musicnn's TF1 checkpoint `<model>/` (files `.index`, `.data-*`), found without
    importing musicnn."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the musicnn wheel (its trained models) is not installed: "
                                  f"run `{INSTALL_HINT}`")
    if model not in MODELS:
        raise ValueError(f"unsupported musicnn model {model!r}; available: {list(MODELS)}")
    folder = Path(list(spec.submodule_search_locations)[0]) / model
    if not (folder / ".index").is_file():
        raise FileNotFoundError(f"no checkpoint in {folder}: reinstall with `{INSTALL_HINT}`")
    return f"{folder}/"


def read_checkpoint(model: str = DEFAULT_MODEL):
    """A `tf.train.CheckpointReader` of a musicnn model.

    (Not `tf.train.load_checkpoint`: given the folder it follows the `checkpoint` file, which
    names the authors' own absolute path; the reader is opened on the prefix itself.)"""
    import tensorflow as tf

    return tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(model))


def tag_names(model: str = DEFAULT_MODEL) -> list[str]:
    """The tag labels of a musicnn model's output layer, from the wheel's ``configuration.py``
    (read as text: importing the package would import its TF1 code)."""
    import ast

    folder = Path(checkpoint_prefix(model)).parent  # the prefix is <wheel>/<model>/
    source = (folder / "configuration.py").read_text()
    name = "MSD_LABELS" if model.startswith("MSD") else "MTT_LABELS"
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return list(ast.literal_eval(node.value))
    raise ValueError(f"{folder / 'configuration.py'} has no {name}")


def tag_probabilities(embeddings: np.ndarray, model: str = DEFAULT_MODEL) -> np.ndarray:
    """Tag probabilities ``[n, tags]`` (sigmoid of musicnn's output layer ``dense_1``) of
    penultimate embeddings ``[n, 200]``; the labels are `tag_names(model)`."""
    reader = read_checkpoint(model)
    logits = np.asarray(embeddings, np.float64) @ reader.get_tensor("dense_1/kernel")
    return 1.0 / (1.0 + np.exp(-(logits + reader.get_tensor("dense_1/bias"))))


# ---------------------------------------------------------------------------------------------
# Network


class _TF1Names:
    """TF1's layer auto-naming: 'conv2d', 'conv2d_1', ... in creation order."""

    def __init__(self):
        self.counts = collections.Counter()

    def __call__(self, kind: str) -> str:
        count = self.counts[kind]
        self.counts[kind] += 1
        return kind if count == 0 else f"{kind}_{count}"


def _conv_block(x, names, conv, **conv_args):
    """ReLU convolution then batch norm (musicnn's conv -> BN order)."""
    from keras import layers

    x = conv(activation="relu", name=names("conv2d"), **conv_args)(x)
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=names("batch_normalization"))(x)


def _frequency_max(x, names, **conv_args):
    """`[b, t, f, 1]` -> conv block -> max over frequency: `[b, t, filters]`."""
    from keras import layers, ops

    return ops.max(_conv_block(x, names, layers.Conv2D, **conv_args), axis=2)


def _front_end(patches, names):
    """Batch-normalised `[b, 187, 96]` log-mel -> timbral + temporal features `[b, 187, 561]`."""
    from keras import layers, ops

    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=names("batch_normalization"))(
        ops.expand_dims(patches, -1))
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)))(x)  # 'same' in time only
    timbral = [_frequency_max(padded, names, filters=204, kernel_size=(7, int(f * N_MELS)))
               for f in (0.4, 0.7)]
    temporal = [_frequency_max(x, names, filters=51, kernel_size=(k, 1), padding="same")
                for k in (128, 64, 32)]
    return layers.Concatenate()(timbral + temporal)


def _mid_end(front, names):
    """`[b, t, 561]` -> three 7-frame conv blocks (2nd, 3rd residual), all concatenated with
    the input: `[b, t, 753]`."""
    from keras import layers

    outputs = [_conv_block(front, names, layers.Conv1D, filters=64, kernel_size=7, padding="same")]
    for _ in range(2):
        conv = _conv_block(outputs[-1], names, layers.Conv1D, filters=64, kernel_size=7,
                           padding="same")
        outputs.append(layers.Add()([conv, outputs[-1]]))
    return layers.Concatenate()([front] + outputs)


def _back_end(features, names) -> dict:
    """`[b, t, 753]` -> {'max_pool', 'mean_pool': `[b, 753]`, 'penultimate': `[b, 200]`}."""
    from keras import layers, ops

    max_pool, mean_pool = ops.max(features, axis=1), ops.mean(features, axis=1)
    # musicnn flattens concat([max, mean], axis=2) of [b, 753, 1] tensors: interleaved.
    x = ops.reshape(ops.stack([max_pool, mean_pool], axis=-1), (-1, 2 * features.shape[-1]))
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=names("batch_normalization"))(x)
    x = layers.Dense(200, activation="relu", name=names("dense"))(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=names("batch_normalization"))(x)
    return {"penultimate": x, "max_pool": max_pool, "mean_pool": mean_pool}


def build_network(reader=None):
    """musicnn's graph as a Keras 3 model: log-mel patches `[b, 187, 96]` -> dict of LAYERS
    (float32). With a checkpoint `reader`, its weights are loaded (variable path = key)."""
    import keras

    names = _TF1Names()
    patches = keras.Input((PATCH_FRAMES, N_MELS), name="log_mel")
    outputs = _back_end(_mid_end(_front_end(patches, names), names), names)
    network = keras.Model(patches, outputs, name="musicnn")
    if reader is not None:
        for variable in network.weights:  # Conv1D kernels: [7, c, 1, 64] in the checkpoint
            variable.assign(reader.get_tensor(variable.path).reshape(variable.shape))
    return network


# ---------------------------------------------------------------------------------------------
# Features


def log_mel_patches(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Network inputs, float32 `[patches, 187, 96]` (frames, mel bands) of log-compressed power.

    `audio`: `[samples]` or `[samples, 2]` at `sample_rate` Hz, at least MIN_SECONDS (2.976 s)
    long, else ValueError. There are frames // 187 patches, frames = 1 + samples at 16 kHz // 256.
    The float16 rounding of the mel power is musicnn's; the log is taken in float32 (what numpy 1.x
    computes there; numpy 2 would compute it in float16)."""
    import librosa

    y = mono_at_rate(audio, sample_rate, SAMPLE_RATE)
    if y.size < MIN_SAMPLES:
        raise ValueError(f"audio of {y.size / SAMPLE_RATE:.3f} s is shorter than one musicnn patch "
                         f"of {PATCH_FRAMES} frames: at least {MIN_SECONDS:.3f} s "
                         f"({MIN_SAMPLES} samples at {SAMPLE_RATE} Hz) needed")
    mel = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP,
                                         n_mels=N_MELS).T
    log_mel = np.log10(np.float32(10000.0) * mel.astype(np.float16).astype(np.float32) + 1)
    patches = len(log_mel) // PATCH_FRAMES
    return log_mel[:patches * PATCH_FRAMES].reshape(patches, PATCH_FRAMES, N_MELS)


# ---------------------------------------------------------------------------------------------
# Embedder


class MusicnnEmbedder:
    """MusiCNN embeddings of consecutive 3-s patches of audio; CPU is fine (about 1.3 s per minute
    of 44.1 kHz stereo audio on two busy cores, after a ~4 s build).

    >>> embedder = MusicnnEmbedder()             # trained on the Million Song Dataset
    >>> embedder.embed(audio, 44100).shape       # audio [samples] or [samples, 2], >= 2.976 s
    (20, 200)                                    # 60 s of audio: 20 patches
    """

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 16):
        """`model`: 'MSD_musicnn' (Million Song Dataset tags) or 'MTT_musicnn' (MagnaTagATune).
        `batch_size`: patches per network call (~10 MB of activations per patch)."""
        self.model_name = model
        self.batch_size = batch_size
        self.network = build_network(read_checkpoint(model))

    def embed(self, audio: np.ndarray, sample_rate: int, layer: str = "penultimate") -> np.ndarray:
        """Float32 `[patches, 200]` penultimate-layer embeddings, one per consecutive
        non-overlapping 3-s patch (187 frames of 16 ms; the remainder is dropped).

        `audio`: float `[samples]` or `[samples, 2]` (downmixed) at `sample_rate` Hz (resampled to
        16 kHz), amplitude in [-1, 1], at least MIN_SECONDS (2.976 s) long, else ValueError.
        `layer`: 'penultimate' (200-d, after batch norm) or 'max_pool' / 'mean_pool' (753-d,
        the time pooled mid-end features)."""
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
        patches = log_mel_patches(audio, sample_rate)
        out = [np.asarray(self.network(patches[i:i + self.batch_size], training=False)[layer])
               for i in range(0, len(patches), self.batch_size)]
        return np.concatenate(out).astype(np.float32)

    def embed_many(self, clips: list, sample_rate: int, layer: str = "penultimate") -> np.ndarray:
        """Patch embeddings of several clips (each as in `embed`), concatenated: float32
        `[total patches, 200]`."""
        return np.concatenate([self.embed(clip, sample_rate, layer) for clip in clips])
