"""Export a GAN training run as a model folder (the folder format itself is `musika_tf.export`)."""

from __future__ import annotations

import os

import tensorflow as tf

from musika_tf import gan
from musika_tf.config import Preset, load_preset
from musika_tf.export import export_model
from musika_tf.training import loop
from musika_tf.training.ae import autoencoder_source, load_autoencoder


def _gan_dir(run_dir: str) -> str:
    """The GAN stage folder of a run (``RUN/gan``) or `run_dir` itself when it is one."""
    for folder in (run_dir, os.path.join(run_dir, "gan")):
        if tf.train.latest_checkpoint(os.path.join(folder, loop.CHECKPOINT_DIR)):
            return folder
    raise FileNotFoundError(f"{run_dir}: no GAN checkpoint in {loop.CHECKPOINT_DIR}/ or "
                            f"gan/{loop.CHECKPOINT_DIR}/; train it with `train.py --stage gan`")


def restore_gan(preset: Preset, gan_dir: str) -> tuple[dict, float, int]:
    """The GAN networks (float32) of the latest checkpoint in `gan_dir`: ``gen_ema`` and those of
    ``generator, critic, critic_rec, cond_regressor`` the checkpoint holds, the R1 switch value and the step."""
    path = tf.train.latest_checkpoint(os.path.join(gan_dir, loop.CHECKPOINT_DIR))
    generator, critic, critic_rec = gan.build_gan(preset)
    models = {"generator": generator, "critic": critic, "gen_ema": gan.build_generator(preset),
              "critic_rec": critic_rec, "cond_regressor": gan.build_condition_regressor(preset)
              if gan.uses_condition_regressor(preset) else None}
    saved = loop.checkpoint_children(path)
    models = {k: m for k, m in models.items() if m is not None and (k in saved or k == "gen_ema")}
    switch = tf.Variable(-1.0, trainable=False)
    state = {"r1_switch": switch} if "r1_switch" in saved else {}
    status = tf.train.Checkpoint(**models, **state).restore(path).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise ValueError(f"{path}: checkpoint has no GAN matching preset.json: {err}") from err
    return models, float(switch.numpy()), int(path.rsplit("-", 1)[1])


def export_from_run(run_dir: str, out_dir: str, autoencoder_dir: str | None = None,
                    card: dict | None = None, overwrite: bool = False) -> str:
    """Export a GAN run's latest EMA generator with its run's autoencoder; returns `out_dir`.

    `run_dir`: a run folder (``runs/NAME`` holding ``gan/``, ``ae1/``, ``ae2/``) or its ``gan``
    folder. The autoencoder comes from the run root (the GAN folder's parent, where `train.py`
    puts it) unless `autoencoder_dir` names another run folder. The card records the step, the run
    and the data sets encoded for it (``RUN/latents/*``).
    """
    gan_dir = _gan_dir(run_dir)
    root = os.path.dirname(os.path.normpath(gan_dir))
    ae_root = autoencoder_dir or autoencoder_source(root)
    preset = load_preset(gan_dir)
    models, switch, step = restore_gan(preset, gan_dir)
    autoencoder = load_autoencoder(preset, ae_root)
    latents = os.path.join(root, "latents")
    data = sorted(os.listdir(latents)) if os.path.isdir(latents) else []
    fields = {"name": os.path.basename(os.path.normpath(out_dir)), "steps": step,
              "data": ", ".join(data) or "not recorded", "source_run": os.path.basename(root),
              "r1_switch": switch}
    return export_model(out_dir, preset, models["gen_ema"], autoencoder, {**fields, **(card or {})},
                        overwrite=overwrite, gan_models=models)
