"""Reading original Musika checkpoints (Keras-2 weight files, read by `musika_tf.keras2_h5`).

Whole checkpoints (`load_reference_checkpoint`, `import_reference`): a reference folder holds the
four AE files ``enc.h5 dec.h5 enc2.h5 dec2.h5`` (the original's ``ae/`` download, or next to the
GAN files) and ``gen_ema.h5``, optionally ``gen.h5`` and ``critic.h5`` (the original's ``techno/``,
``misc/``, ``misc_small/``). The generator width C (``--base_channels``) and ``--small`` are read
from the ``gen_ema.h5`` weight shapes (`infer_generator_size`), so any width loads.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import keras
import numpy as np

from .autoencoder import Autoencoder
from .config import Preset, get_preset
from .gan import build_critic, build_generator
from .keras2_h5 import H5Layer, ReferenceWeightError, load_keras2_h5, read_keras2_h5, weight_layers

__all__ = ["H5Layer", "read_keras2_h5", "weight_layers", "load_keras2_h5", "ReferenceWeightError",
           "AE_FILES", "infer_generator_size", "ReferenceCheckpoint", "reference_files",
           "load_reference_checkpoint", "reference_card", "import_reference"]


AE_FILES = ("enc", "dec", "enc2", "dec2")  # the reference's ae/ folder (file stems)
OPTIONAL_FILES = ("gen", "critic")  # beside the required gen_ema
HEAD_STEPS = 4  # time steps of the generator's Dense head output: Dense width = 4 * 7C
HEAD_WIDTH = 7  # head channels in units of C


def infer_generator_size(gen_path: str, variant: str) -> dict:
    """Preset overrides read from a reference ``gen_ema.h5``: ``base_channels`` (both variants) and,
    for v44, ``small`` and its ``latlen`` (128 small, else 256).

    C = (Dense head width) / 28, the head being the first weight-bearing layer (kernel
    ``[256, 4*7C]``); the v44 model is small when its fourth weight-bearing layer (block 1's first
    conv) has kernel width 1 instead of the transposed conv's 4.
    """
    groups = read_keras2_h5(gen_path)
    dense = groups[0].values[0] if groups else np.zeros(0)
    if dense.ndim != 2 or dense.shape[1] % (HEAD_STEPS * HEAD_WIDTH):
        raise ReferenceWeightError(
            f"{gen_path}: first weight-bearing layer {groups[0].name if groups else None!r} has "
            f"kernel {dense.shape}, not a generator Dense head [in, 4*7C]")
    sizes = {"base_channels": dense.shape[1] // (HEAD_STEPS * HEAD_WIDTH)}
    if variant == "v44":
        block1 = groups[3].values[0] if len(groups) > 3 else np.zeros(0)
        if block1.ndim != 4:
            raise ReferenceWeightError(f"{gen_path}: weight-bearing layer #3 has kernel "
                                       f"{block1.shape}, not a v44 generator block-1 conv")
        small = block1.shape[1] == 1
        sizes.update(small=small, latlen=128 if small else 256)
    return sizes


@dataclass
class ReferenceCheckpoint:
    """An original Musika checkpoint loaded into our networks (all in inference use)."""

    preset: Preset
    autoencoder: Autoencoder
    generator: keras.Model  # gen_ema.h5, the one every reference script generates with
    critic: keras.Model | None = None  # critic.h5 when present
    raw_generator: keras.Model | None = None  # gen.h5 when present
    files: dict[str, str] = field(default_factory=dict)  # file stem -> path of every file read


def reference_files(folder: str, ae_folder: str | None = None) -> dict[str, str]:
    """``stem -> path`` of the reference files present: the four AE files (from ``ae_folder`` or
    ``folder``), ``gen_ema`` (required), ``gen`` and ``critic`` (optional)."""
    ae_dir = ae_folder or folder
    files = {stem: os.path.join(ae_dir, f"{stem}.h5") for stem in AE_FILES}
    files.update({stem: os.path.join(folder, f"{stem}.h5")
                  for stem in ("gen_ema", *OPTIONAL_FILES)})
    missing = [path for stem, path in files.items()
               if stem not in OPTIONAL_FILES and not os.path.isfile(path)]
    if missing:
        hint = "" if ae_folder else " (AE files elsewhere, e.g. the original's ae/? use --ae)"
        raise FileNotFoundError(f"missing reference weight file(s): {', '.join(missing)}{hint}")
    return {stem: path for stem, path in files.items() if os.path.isfile(path)}


def _loaded(builder, preset: Preset, path: str) -> keras.Model:
    model = builder(preset)
    load_keras2_h5(model, path)
    return model


def load_reference_checkpoint(folder: str, preset_name: str = "musika44",
                              ae_folder: str | None = None) -> ReferenceCheckpoint:
    """Build our networks for ``preset_name`` (musika44 or paper22, sized from ``gen_ema.h5``) and
    load every reference file of ``folder`` / ``ae_folder`` into them.

    Raises FileNotFoundError naming missing files and `ReferenceWeightError` naming the first
    missing or mismatched weight (e.g. v22 files with the musika44 preset).
    """
    files = reference_files(folder, ae_folder)
    base = get_preset(preset_name)
    preset = base.with_overrides(**infer_generator_size(files["gen_ema"], base.ae.variant))
    autoencoder = Autoencoder.build(preset)
    for stem in AE_FILES:
        load_keras2_h5(autoencoder.models[stem], files[stem])
    builders = {"gen_ema": build_generator, "gen": build_generator, "critic": build_critic}
    models = {stem: _loaded(build, preset, files[stem])
              for stem, build in builders.items() if stem in files}
    return ReferenceCheckpoint(preset, autoencoder, models["gen_ema"], models.get("critic"),
                               models.get("gen"), files)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reference_card(checkpoint: ReferenceCheckpoint, folder: str) -> dict:
    """Model-card fields for an imported checkpoint: origin, sizes and the sha256 of every file."""
    gan = checkpoint.preset.gan
    return {
        "source": "original Musika checkpoint (marcoppasini/musika), imported by musika-tf",
        "source_folder": os.path.basename(os.path.normpath(folder)),
        "variant": checkpoint.preset.ae.variant,
        "base_channels": gan.base_channels,
        "small": gan.small,
        "latlen": gan.latlen,
        "files_sha256": {f"{stem}.h5": _sha256(path) for stem, path in checkpoint.files.items()},
        "exported_generator": "gen_ema.h5",
    }


def import_reference(folder: str, preset_name: str, out_dir: str,
                     ae_folder: str | None = None) -> str:
    """Load a reference checkpoint folder (see `load_reference_checkpoint`) and export it as one of
    our model folders at ``out_dir`` (`musika_tf.export.export_model`); returns the folder."""
    checkpoint = load_reference_checkpoint(folder, preset_name, ae_folder)
    try:  # EXPORT CALL: musika_tf/export.py (SavedModel + preset.json + model card)
        from .export import export_model
    except ModuleNotFoundError as error:
        if error.name != f"{__package__}.export":
            raise
        raise RuntimeError("the checkpoint loads, but model export (musika_tf.export) is not "
                           "available in this version yet") from error
    return export_model(out_dir, checkpoint.preset, checkpoint.generator, checkpoint.autoencoder,
                        card=reference_card(checkpoint, folder))
