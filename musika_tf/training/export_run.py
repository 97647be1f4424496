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


def shipped_networks(models: dict) -> dict:
    """The GAN networks a model folder keeps for training on: all but the raw generator. The EMA
    generator is the model (it is what the folder generates with), and fine-tuning from a folder
    starts the generator from it (`musika_tf.training.gan.GANTrainer`), so the raw generator's
    weights would only double the folder's largest network."""
    return {k: m for k, m in models.items() if k != "generator"}


def restore_gan(preset: Preset, gan_dir: str) -> tuple[dict, float, int]:
    """The GAN networks (float32) of the latest checkpoint in `gan_dir`: ``gen_ema`` and those of
    ``generator, critic, critic_rec, cond_regressor`` the checkpoint holds, the R1 switch value and the step."""
    path = tf.train.latest_checkpoint(os.path.join(gan_dir, loop.CHECKPOINT_DIR))
    saved = loop.checkpoint_children(path)
    models = {k: m for k, m in gan.build_networks(preset).items() if k in saved or k == "gen_ema"}
    switch = tf.Variable(-1.0, trainable=False)
    state = {"r1_switch": switch} if "r1_switch" in saved else {}
    status = tf.train.Checkpoint(**models, **state).restore(path).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise ValueError(f"{path}: checkpoint has no GAN matching preset.json: {err}") from err
    return models, float(switch.numpy()), int(path.rsplit("-", 1)[1])


def _with_decode_context(preset: Preset, decode_context: int | None) -> Preset:
    """`preset` with ``ae.decode_context`` replaced when given (it changes how the folder decodes,
    not any weight)."""
    if decode_context is None:
        return preset
    if decode_context < 0:
        raise ValueError(f"--decode-context must be >= 0 latents, got {decode_context}")
    return preset.with_overrides(decode_context=decode_context)


def export_from_run(run_dir: str, out_dir: str, autoencoder_dir: str | None = None,
                    card: dict | None = None, overwrite: bool = False,
                    decode_context: int | None = None) -> str:
    """Export a GAN run's latest EMA generator with its run's autoencoder; returns `out_dir`.

    `run_dir`: a run folder (``runs/NAME`` holding ``gan/``, ``ae1/``, ``ae2/``) or its ``gan``
    folder. The autoencoder comes from the run root (the GAN folder's parent, where `train.py`
    puts it) unless `autoencoder_dir` names another run folder. The card records the step, the run
    and the data sets encoded for it (``RUN/latents/*``). `decode_context`: see `export_from_model`.
    """
    gan_dir = _gan_dir(run_dir)
    root = os.path.dirname(os.path.normpath(gan_dir))
    ae_root = autoencoder_dir or autoencoder_source(root)
    preset = load_preset(gan_dir)
    models, switch, step = restore_gan(preset, gan_dir)
    preset = _with_decode_context(preset, decode_context)
    autoencoder = load_autoencoder(preset, ae_root)
    latents = os.path.join(root, "latents")
    data = sorted(os.listdir(latents)) if os.path.isdir(latents) else []
    fields = {"name": os.path.basename(os.path.normpath(out_dir)), "steps": step,
              "data": ", ".join(data) or "not recorded", "source_run": os.path.basename(root),
              "r1_switch": switch}
    return export_model(out_dir, preset, models["gen_ema"], autoencoder, {**fields, **(card or {})},
                        overwrite=overwrite, gan_models=shipped_networks(models))


# Card fields a re-export does not carry over: those the folder itself determines (written again)
# and the evaluation, which belongs to the audio of the old folder.
_NOT_CARRIED = ("format", "format_version", "preset", "sample_rate", "channels", "conditioning",
                "conditioning_input", "latent_rate_hz", "window_seconds", "inference_layout",
                "signatures", "exported", "tensorflow", "keras", "evaluation")


def export_from_model(model_dir: str, out_dir: str, autoencoder_dir: str | None = None,
                      card: dict | None = None, overwrite: bool = False,
                      decode_context: int | None = None) -> str:
    """Re-export a model folder (e.g. to the current format, or with another autoencoder).

    The GAN networks come from `model_dir`'s ``weights/``, the autoencoder from `autoencoder_dir`
    (a run or model folder, e.g. a run whose decoders were fine-tuned) or else `model_dir` itself.
    The old card's training fields are kept, its evaluation is dropped (re-run ``evaluate``), and
    `card` fields are added on top. `out_dir` may be `model_dir` itself (with `overwrite`).
    `decode_context` (latents, ``preset.ae.decode_context``) replaces the preset's: how the
    folder's decoders see neighbouring decode units (0: independent chunks, as the reference).
    """
    from musika_tf.export import has_weights, read_card, read_weights

    preset = load_preset(model_dir)
    models = {k: m for k, m in gan.build_networks(preset).items() if has_weights(model_dir, k)}
    if "gen_ema" not in models:
        raise FileNotFoundError(f"{model_dir}: no weights/gen_ema.weights.h5; re-export it from its "
                                "training run with `python -m musika_tf export RUN OUT`")
    read_weights(model_dir, **models)
    preset = _with_decode_context(preset, decode_context)
    autoencoder = load_autoencoder(preset, autoencoder_dir or model_dir)
    old = {k: v for k, v in read_card(model_dir).items() if k not in _NOT_CARRIED}
    fields = {**old, "name": os.path.basename(os.path.normpath(out_dir)), **(card or {})}
    return export_model(out_dir, preset, models["gen_ema"], autoencoder, fields,
                        overwrite=overwrite, gan_models=shipped_networks(models))
