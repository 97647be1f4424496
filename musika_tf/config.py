"""Dataclass presets: the one place where every model, audio and training number lives.

A `Preset` bundles four groups (audio front end, autoencoder, latent GAN, training). Named presets:

- ``musika44``: the later 44.1 kHz reference release (default).
- ``paper22``: the 22.05 kHz version described in the ISMIR 2022 paper.
- ``piano``: paper variant with the paper's piano second stage (4096 samples per latent, 32-d latents,
  generator half-window of 64 latents).
- ``techno``: paper variant with the paper's techno second stage (2048 samples per latent, 64-d).
- ``tiny``: the 44.1 kHz structure with narrow layers, for tests and CPU demos.

Every field is reachable from the command line (`add_preset_arguments`), and a preset is saved as
JSON beside every checkpoint (`save_preset` / `load_preset`) so a model always reloads with the
configuration it was trained with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .files import atomic_path

VARIANTS = ("v44", "v22")
STRATEGIES = ("default", "mirrored", "multi-worker")  # musika_tf.training.distribute


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field carrying its own `--help` text."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults (presets are immutable)")
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class AudioConfig:
    """Audio front end (reference sections 1.2-1.5)."""

    sample_rate: int = _f(44100, "audio sample rate in Hz; every input file is resampled to it")
    hop: int = _f(256, "STFT hop in samples; window = FFT size = 4*hop")
    mu: float = _f(-25.0, "log-magnitude normalisation offset in dB: S = (dB - mu) / sigma")
    sigma: float = _f(75.0, "log-magnitude normalisation scale in dB")
    mel_bins: int = _f(256, "mel bands of display spectrograms (PNG previews)")
    display_hop: int = _f(512, "STFT hop of display spectrograms (v44: 2*hop, v22: hop)")

    @property
    def n_fft(self) -> int:
        """FFT size = window length in samples."""
        return 4 * self.hop

    @property
    def bins(self) -> int:
        """Frequency bins of the analysis STFT (n_fft/2 + 1)."""
        return 2 * self.hop + 1


@dataclass(frozen=True)
class AutoencoderConfig:
    """Two-level autoencoder (reference section 2). Width tuples are read in layer order."""

    variant: str = _f("v44", "network structure: v44 (44.1 kHz release) or v22 (paper)", choices=VARIANTS)
    chunk_frames: int = _f(128, "STFT frames per encoder chunk (reference --shape)")
    latent1_dim: int = _f(64, "first-level latent dims per STFT frame (v44 64, v22 128)")
    latent_dim: int = _f(64, "second-level latent dims per audio channel (reference --latdepth)")
    frames_per_latent: int = _f(16, "STFT frames per second-level latent (16 -> 4096 samples at hop 256)")
    enc_widths: tuple = _f((1024, 1024, 1024, 1024, 1024), "ENC hidden widths (frame-wise convs)")
    dec_widths: tuple = _f((768, 768, 512, 256), "DEC widths of the down path g0..g3 (v22: plus u4)")
    enc2_widths: tuple = _f((256, 384, 384, 512, 512, 768, 768), "ENC2 hidden widths")
    dec2_widths: tuple = _f((768, 640, 640, 512, 512, 384, 256), "DEC2 hidden widths")
    batch_norm: bool = _f(False, "BatchNorm after every hidden AE conv (v22 True)")
    decode_context: int = _f(
        0, "how DEC2 and DEC decode (generation, reconstruction; not training): 0 = each block of "
           "chunk_frames/2 frames on its own, as the reference (every block edge can be heard); "
           "N > 0 = whole sequences, the engine's decode units with N latents of their "
           "neighbours on each side, so no block edge is left (musika_tf.autoencoder."
           "decode_sequence)")


@dataclass(frozen=True)
class GANConfig:
    """Latent GAN and coordinate system (reference section 4)."""

    latlen: int = _f(256, "generator window in latents; two independent halves of latlen/2 each")
    coorddepth: int = _f(64, "dims of the anchor part and of the style part of a coordinate vector")
    base_channels: int = _f(128, "generator/critic width unit C (v44)")
    small: bool = _f(False, "short-context v44 generator (reference --small; latlen 128)")
    max_lat_len: int = _f(512, "length in latents of each stored training chunk")
    cond: str = _f("none", "conditioning signal: none, density (note density) or tempo",
                   choices=("none", "density", "tempo"))
    density_bandwidth: float = _f(1.0, "density condition: std of the Gaussian onset kernel in seconds")
    density_phase: bool = _f(False, "density condition: also give the networks an onset phase "
                             "(cos, sin; a quarter cycle per onset), as tempo models get the beat "
                             "phase, so that the requested density sets where notes start")
    critic_translation: float = _f(
        0.0, "DiffAugment of the critic's input (musika_tf.training.augment): shift every real and "
             "generated window in time by up to this fraction of latlen, zeros shifted in (0 = off)")
    critic_cutout: float = _f(
        0.0, "DiffAugment of the critic's input: zero one random span of this fraction of latlen in "
             "every real and generated window (0 = off)")
    critic_crop_halves: int = _f(
        0, "join-position augmentation of the critic's input (musika_tf.training.augment.crop): the "
           "generator makes this many half-windows more than a window, and the critic sees a "
           "latlen crop at a random offset of every real and generated sequence, so the joins "
           "between generated half-windows fall anywhere in its input, as no edge does in real "
           "data (0 = off; costs this many half-windows of generator work per example)")
    critic_mismatch_weight: float = _f(
        0.0, "conditioned models: matching-aware critic (Reed et al. 2016): real windows paired "
             "with another example's condition curve are scored as fakes, with this weight beside "
             "the generated ones in the critic's hinge loss, so the critic must check that the "
             "music fits its condition (0 = off)")
    join_critic_weight: float = _f(
        0.0, "weight of a small local critic that judges the latents around the join of the "
             "generator's two half-windows against real latents at the same place of a real "
             "window (musika_tf.gan.build_join_critic; no augmentation, so the join stays where "
             "it is made): the seams of every generated piece (0 = off)")
    local_critic_weight: float = _f(
        0.0, "weight of a second small critic, the join critic's architecture with its own "
             "weights, that judges a span at a uniformly random place of every generated window "
             "against the same place of a real one (musika_tf.gan.local_span): local texture "
             "everywhere, while the join critic keeps to the join (0 = off)")
    critic_reconstruction: bool = _f(False, "paper variant's auxiliary critic reconstruction head")
    condition_loss_weight: float = _f(
        0.0, "conditioned models: weight of an auxiliary condition regressor's error on generated "
             "windows in the generator loss (0 = off); the regressor learns the condition value "
             "from real latents alone, so the generator must make it audible")
    condition_feedback_every: int = _f(
        0, "density models with the condition regressor: every this many steps, decode a few "
           "windows of the generator, measure their note density with the training labels' onset "
           "detector and let the regressor learn from these too (musika_tf.training.feedback), "
           "so that it reads generated latents as they sound and cannot be fooled (0 = off; "
           "about 2.5 s of CPU per refresh)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping shared by all training stages."""

    batch_size: int = _f(32, "batch size")
    lr: float = _f(1e-4, "Adam learning rate (generator and critic)")
    beta1: float = _f(0.5, "Adam beta1")
    beta2: float = _f(0.999, "Adam beta2")
    gp_max_weight: float = _f(10.0, "maximum adaptive R1 weight (v44) / gradient-penalty weight (v22)")
    ema_decay: float = _f(0.999, "decay of the generator's exponential moving average")
    steps: int = _f(2_000_000, "latent-GAN steps (the --stage gan default)")
    ae1_steps: int = _f(1_000_000, "autoencoder level-1 steps, both phases together (paper: 1M)")
    ae2_steps: int = _f(400_000, "autoencoder level-2 steps (paper: 400k)")
    decoders_steps: int = _f(0, "optional stage `decoders`: steps of fine-tuning DEC2 and DEC end "
                             "to end on frozen encoders (0: not part of `--stage gan`)")
    save_every: int = _f(10_000, "steps between checkpoints and previews")
    log_every: int = _f(20, "steps between progress-bar / TensorBoard updates")
    mixed_precision: str = _f("auto", "auto (mixed_float16 on GPU, float32 on CPU), on or off",
                              choices=("auto", "on", "off"))
    xla: bool = _f(False, "XLA-compile the training step")
    strategy: str = _f("default", "tf.distribute strategy of every training stage: default (one "
                       "device), mirrored (all local GPUs, else all logical CPU devices) or "
                       "multi-worker (MultiWorkerMirroredStrategy, cluster from TF_CONFIG); "
                       "batch_size is the global batch, split evenly over the replicas",
                       choices=STRATEGIES)
    seed: int = _f(0, "random seed for initialisation and data order")
    phase1_steps: int = _f(200_000, "AE level 1: steps of phase 1 (L1 on log-magnitude) before "
                           "phase 2 (magnitude+phase through the iSTFT, adversarial)")
    lambda_rec: float = _f(10.0, "AE phase 2 / level 2: weight of the L1 log-magnitude reconstruction")
    lambda_ms: float = _f(1.0, "AE phase 2 / level 2: weight of the multi-scale spectral distance")
    ms_fft_sizes: tuple = _f((2048, 1024, 512, 256, 128),
                             "FFT sizes of the multi-scale spectral distance (hop = size/4)")
    spec_critic_widths: tuple = _f((64, 128, 256, 256, 512),
                                   "AE spectrogram critic: channels of its stride-2 2-D conv stages")
    audio_cache_gb: float = _f(
        20.0, "disk budget in GB of the decoded-audio cache (cache/audio/RATE/) of AE training: "
              "integer-PCM WAV/FLAC/AIFF sources at the preset's sample rate are read in place "
              "(no copy), other files are decoded there, and training stops with a message when "
              "they would not fit")
    encode_chunks: int = _f(64, "encoder chunks (chunk_frames STFT frames each) encoded at a time: "
                                "bounds the memory of encoding (64: ~48 s of audio at musika44 "
                                "sizes); the latents are the same for any value")


@dataclass(frozen=True)
class Preset:
    """A complete configuration: the four groups plus the preset's name."""

    name: str = "musika44"
    audio: AudioConfig = AudioConfig()
    ae: AutoencoderConfig = AutoencoderConfig()
    gan: GANConfig = GANConfig()
    train: TrainConfig = TrainConfig()

    @property
    def samples_per_latent(self) -> int:
        """Audio samples per second-level latent (v44 4096, v22 2048)."""
        return self.ae.frames_per_latent * self.audio.hop

    @property
    def latent_rate(self) -> float:
        """Second-level latents per second of audio (Hz)."""
        return self.audio.sample_rate / self.samples_per_latent

    @property
    def stereo_latent_dim(self) -> int:
        """Width of the stereo latent vector [L || R] the GAN sees."""
        return 2 * self.ae.latent_dim

    @property
    def chunk_samples(self) -> int:
        """Samples covered by one encoder chunk's frames (hop * chunk_frames)."""
        return self.audio.hop * self.ae.chunk_frames

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def with_overrides(self, **overrides: Any) -> "Preset":
        """Return a copy with fields replaced by name (field names are unique across groups)."""
        groups = {g.name: getattr(self, g.name) for g in fields(self) if g.name != "name"}
        changes: dict[str, dict] = {k: {} for k in groups}
        top: dict[str, Any] = {}
        for key, value in overrides.items():
            if key == "name":
                top["name"] = value
                continue
            group = FIELD_GROUP.get(key)
            if group is None:
                raise KeyError(f"unknown preset field {key!r}; known: {sorted(FIELD_GROUP)}")
            changes[group][key] = _coerce(groups[group], key, value)
        new_groups = {g: replace(groups[g], **c) if c else groups[g] for g, c in changes.items()}
        return replace(self, **top, **new_groups)


def _coerce(group: Any, key: str, value: Any) -> Any:
    """Convert JSON/CLI values to the field's type (lists -> tuples)."""
    current = getattr(group, key)
    if isinstance(current, tuple):
        return tuple(value)
    if isinstance(current, bool):
        return bool(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, int):
        return int(value)
    return value


GROUPS = {"audio": AudioConfig, "ae": AutoencoderConfig, "gan": GANConfig, "train": TrainConfig}
FIELD_GROUP = {f.name: g for g, cls in GROUPS.items() for f in fields(cls)}

_V22_AE = dict(
    variant="v22",
    latent1_dim=128,
    frames_per_latent=8,
    enc_widths=(544, 576, 640, 704, 768),
    dec_widths=(768, 512, 384, 320, 1280),
    enc2_widths=(256, 512, 640, 640, 768, 768),
    dec2_widths=(768, 768, 640, 512, 384),
    batch_norm=True,
)

PRESETS: dict[str, Preset] = {}


def _register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


MUSIKA44 = _register(Preset(name="musika44"))
PAPER22 = _register(
    Preset(name="paper22").with_overrides(sample_rate=22050, display_hop=256, beta1=0.9,
                                          critic_reconstruction=True, **_V22_AE)
)
TECHNO = _register(PAPER22.with_overrides(name="techno"))
# The paper's piano second stage compresses 16 first-level frames (4096 samples) into 32 dims; its
# generator's half-window is 64 latents (~11.9 s). 16-frame groups use the v44 ENC2/DEC2 layout.
PIANO = _register(
    PAPER22.with_overrides(
        name="piano",
        latent_dim=32,
        frames_per_latent=16,
        enc2_widths=(256, 384, 384, 512, 512, 768, 768),
        dec2_widths=(768, 640, 640, 512, 512, 384, 256),
        latlen=128,
    )
)
TINY = _register(
    MUSIKA44.with_overrides(
        name="tiny",
        sample_rate=22050,
        latent1_dim=16,
        latent_dim=16,
        enc_widths=(64, 64),
        dec_widths=(48, 48, 32, 32),
        enc2_widths=(32, 32, 32, 48, 48, 64, 64),
        dec2_widths=(64, 48, 48, 32, 32, 32, 32),
        latlen=128,
        small=True,
        coorddepth=16,
        base_channels=8,
        max_lat_len=256,
        batch_size=4,
        steps=2000,
        ae1_steps=600,
        ae2_steps=300,
        phase1_steps=300,
        spec_critic_widths=(8, 16, 16, 32),
        save_every=500,
        log_every=10,
    )
)

# `make demo`: the tiny networks with step counts that run the whole pipeline in minutes on a CPU.
DEMO = _register(
    TINY.with_overrides(name="demo", lr=5e-4, ae1_steps=1500, phase1_steps=500, ae2_steps=500,
                        steps=1000, save_every=500)
)

# Shipped CPU models (`checkpoints/piano`, `checkpoints/techno`): the 44.1 kHz structure at 22.05 kHz,
# sized to train in CPU-hours (see docs/TRAINING.md). Both share one autoencoder, trained on the union
# of the embedded piano and techno sets (`--data maestro+techno`), as the original's models share its
# universal autoencoder; their GANs differ only in the condition.
_CPU_AE = dict(
    sample_rate=22050,
    latent1_dim=32,
    latent_dim=32,
    enc_widths=(256, 256),
    dec_widths=(192, 192, 128, 128),
    enc2_widths=(64, 96, 96, 128, 128, 192, 192),
    dec2_widths=(192, 128, 128, 128, 96, 96, 64),
)
PIANO_CPU = _register(
    TINY.with_overrides(name="piano-cpu", **_CPU_AE, base_channels=32, coorddepth=32, cond="density",
                        density_phase=True, condition_loss_weight=10.0, condition_feedback_every=100,
                        join_critic_weight=0.25, local_critic_weight=0.5, critic_translation=0.125,
                        critic_cutout=0.25, max_lat_len=256, batch_size=16, lr=1e-4,
                        ae1_steps=19000, phase1_steps=16000, ae2_steps=3000, steps=400_000,
                        save_every=1000, log_every=50, spec_critic_widths=(16, 32, 32, 64),
                        decode_context=2)
)
# decode_context 2: the decoders see 2 latents (0.37 s) of each neighbouring decode unit, so no
# block edge is left in the audio (docs/TRAINING.md, session 10).
# Condition feedback (docs/TRAINING.md, session 12): the density regressor also learns decoded,
# measured generated windows, so the generator cannot fool it. The join critic (0.25) and the local
# critic (0.5) are the shipped piano model's (sessions 13-14).
# The piano GAN's critic augmentation (docs/TRAINING.md, session 8) counters the critic memorising the
# small piano set. Tempo needs no regressor: the beat phase it is given makes the pulse a local
# pattern; the shipped techno model was trained without critic augmentation.
TECHNO_CPU = _register(PIANO_CPU.with_overrides(name="techno-cpu", cond="tempo", density_phase=False,
                                                condition_loss_weight=0.0, condition_feedback_every=0,
                                                join_critic_weight=0.0, local_critic_weight=0.0,
                                                critic_translation=0.0,
                                                critic_cutout=0.0))

DEFAULT_PRESET = "musika44"


def get_preset(name: str, **overrides: Any) -> Preset:
    """Return the named preset, optionally with field overrides."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    return preset.with_overrides(**overrides) if overrides else preset


# ---------------------------------------------------------------------------------------------
# JSON persistence

PRESET_FILENAME = "preset.json"


# Fields that no longer exist, with the value that meant "off": a preset file that still carries
# one at that value loads; at any other value it names what replaced the option.
RETIRED_FIELDS = {
    "gan": {"join_critic_anywhere": (False, "use local_critic_weight (a separate local critic), "
                                            "which judges the same random spans and holds the seams")},
}


def _without_retired(group: str, values: dict) -> dict:
    """`values` of preset group `group` without its retired fields; `ValueError` where one is on."""
    for name, (off, instead) in RETIRED_FIELDS.get(group, {}).items():
        if name in values and values.pop(name) != off:
            raise ValueError(f"preset field {group}.{name} was removed; {instead}")
    return values


def preset_from_dict(data: dict) -> Preset:
    """Inverse of `Preset.to_dict`; unknown keys are rejected, missing keys take defaults."""
    groups = {}
    for group, cls in GROUPS.items():
        values = _without_retired(group, dict(data.get(group, {})))
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"preset group {group!r} has unknown fields {sorted(unknown)}")
        groups[group] = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    return Preset(name=data.get("name", "custom"), **groups)


def save_preset(preset: Preset, folder: str) -> str:
    """Write `preset.json` into `folder` atomically; return its path."""
    path = os.path.join(folder, PRESET_FILENAME)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(preset.to_dict(), fh, indent=2)
    return path


def load_preset(path: str) -> Preset:
    """Read a preset from a `preset.json` file or from a folder that holds one."""
    if os.path.isdir(path):
        path = os.path.join(path, PRESET_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: no preset file; a checkpoint folder must contain {PRESET_FILENAME} "
            "(written by training and export)"
        )
    with open(path) as fh:
        return preset_from_dict(json.load(fh))


# ---------------------------------------------------------------------------------------------
# Command line: one flag per preset field

def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_preset_arguments(parser: argparse.ArgumentParser, groups: tuple = tuple(GROUPS)) -> None:
    """Add `--preset` plus one optional flag per field of the chosen groups (default: keep preset's)."""
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help=f"named configuration to start from (default {DEFAULT_PRESET}, or the "
                             "saved preset of an existing run/checkpoint where the command has one)")
    for group in groups:
        arg_group = parser.add_argument_group(f"preset fields: {group}")
        for f in fields(GROUPS[group]):
            default = f.default
            kw: dict[str, Any] = dict(dest=f.name, default=None,
                                      help=f"{f.metadata.get('help', '')} (preset default: {default})")
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            if isinstance(default, bool):
                kw["type"] = _str2bool
                kw["metavar"] = "BOOL"
            elif isinstance(default, tuple):
                kw["type"] = int
                kw["nargs"] = "+"
            else:
                kw["type"] = type(default)
            arg_group.add_argument(_flag(f.name), **kw)


def preset_from_args(args: argparse.Namespace, saved: Preset | None = None) -> Preset:
    """The preset named by `--preset` (else `saved`, else the default) with every flag the user
    gave applied on top."""
    overrides = {k: getattr(args, k) for k in FIELD_GROUP if getattr(args, k, None) is not None}
    if args.preset is None and saved is not None:
        return saved.with_overrides(**overrides)
    return get_preset(args.preset or DEFAULT_PRESET, **overrides)


def _str2bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "t", "yes", "y", "on"):
        return True
    if value in ("0", "false", "f", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")
