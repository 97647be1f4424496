"""Autoencoder training, both levels (paper section 3; the reference never released it).

Stages and their run folders (``RUN/ae1/phase1``, ``RUN/ae1/phase2``, ``RUN/ae2``):

- **ae1, phase 1**: ENC + DEC on log-magnitude chunks, loss ``L1(DEC_mag(ENC(s)), s)``.
- **ae1, phase 2**: ENC frozen; DEC's magnitude and phase go through the iSTFT; the log-magnitude
  ``s~`` is recomputed from that waveform. Critic (2-D, spectral norm, `spec_critic`) trained with the
  hinge loss on ``s`` vs ``s~``; decoder loss ``-D(s~) + lambda_rec L1(s~, s) + lambda_ms L_ms``,
  L_ms the multi-scale spectral distance between the waveforms (FFT sizes ``ms_fft_sizes``).
- **ae2**: ENC2 + DEC2 on the frozen ENC's latents, decoded through the frozen DEC and the iSTFT;
  losses as phase 2 plus ``lambda_rec L1(DEC2(ENC2(z)), z)`` on the first-level latents, with a
  fresh critic judging the audio decoded through both decoders.
- **decoders** (optional, ``RUN/decoders``): DEC2 and DEC fine-tuned together on the frozen ENC and
  ENC2, losses as ae2: the decoding path of generation, trained end to end. The latents do not
  change, so GANs trained on the source autoencoder keep working with the tuned decoders.

Batches are mono waveform crops ``[B, crop]`` with ``crop = (chunk - 1) * hop + 4 * hop`` samples,
i.e. exactly one encoder chunk of frames; both channels of the data are used (a random one per crop).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from .. import audio as audio_lib
from .. import losses
from ..autoencoder import Autoencoder
from ..config import Preset
from ..data.audio_cache import CachedAudio, crop_dataset, read_cached
from ..files import atomic_path
from ..layers import dtype_policy, fold, reseed_noise, unfold
from ..spec_critic import build_spec_critic
from . import distribute, loop

NOISE_SEED_STRIDE = 2 ** 40  # step n's noise seed: preset seed * stride + n


def crop_samples(preset: Preset) -> int:
    """Samples of one training crop: exactly ``chunk_frames`` STFT frames."""
    return audio_lib.num_samples(preset.ae.chunk_frames, preset.audio.hop)


def encoder_input(spec: tf.Tensor) -> tf.Tensor:
    """``[B, frames, bins]`` -> ENC's ``[B, bins, frames, 1]`` (frequency x time image)."""
    return tf.transpose(spec, [0, 2, 1])[..., None]


def latest_checkpoint(run_dir: str) -> str:
    path = tf.train.latest_checkpoint(os.path.join(run_dir, loop.CHECKPOINT_DIR))
    if path is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint found; train that stage first")
    return path


def restore_models(run_dir: str, **models) -> str:
    """Restore the named models (checkpoint keys) from the latest checkpoint of `run_dir`."""
    path = latest_checkpoint(run_dir)
    tf.train.Checkpoint(**models).restore(path).expect_partial()
    return path


class _AETrainer(loop.Trainer):
    """Shared set-up: the autoencoder, crop batches, a preview excerpt, the waveform losses."""

    def __init__(self, preset: Preset, run_dir: str, files: list[CachedAudio],
                 preview_files: list[CachedAudio] | None = None):
        super().__init__(preset, run_dir)
        self.mixed = loop.use_mixed_precision(preset)
        with dtype_policy(loop.precision_policy(preset)):
            self.ae = Autoencoder.build(preset)
        self.cfg = preset.audio
        self.files = files
        self.preview_audio = _preview_excerpt(preview_files or files, preset)

    def build_critic(self):
        """A fresh spectrogram critic under the run's precision policy."""
        with dtype_policy(loop.precision_policy(self.preset)):
            return build_spec_critic(self.preset)

    def batches(self, start_step: int = 0):
        """Batches ``{"wave": [B, crop], "noise_seed": int64 []}`` from step `start_step` on.

        Crop k is a pure function of (seed, k) and step n reseeds the networks' injected noise
        from (seed, n), so a stopped and resumed run trains exactly as an uninterrupted one."""
        t = self.preset.train
        crops = crop_dataset(self.files, crop_samples(self.preset), t.batch_size, t.seed,
                             start=start_step * t.batch_size)
        steps = tf.data.Dataset.range(start_step, 2 ** 62)
        return iter(tf.data.Dataset.zip(crops, steps).map(
            lambda wave, n: {"wave": wave, "noise_seed": t.seed * NOISE_SEED_STRIDE + n}))

    def unpack(self, batch) -> tf.Tensor:
        """The crop batch ``[B, crop]`` of `batch`, after reseeding every network's noise."""
        for model in self.models().values():
            reseed_noise(model, batch["noise_seed"])
        return batch["wave"]

    # -- shared loss pieces -------------------------------------------------------------------

    def waveform_losses(self, wave, spec, fake_wave, critic) -> dict:
        """Losses of a decoded waveform ``fake_wave`` against the crop ``wave`` (both ``[B, crop]``)."""
        t = self.preset.train
        fake_spec = audio_lib.log_magnitude(fake_wave, self.cfg)
        real_logits, fake_logits = critic(spec, training=True), critic(fake_spec, training=True)
        d_real, d_fake = losses.hinge_critic(real_logits, fake_logits)
        adv = losses.hinge_generator(fake_logits)
        rec = losses.l1(fake_spec, spec)
        ms = losses.multiscale_spectral_distance(wave, fake_wave, t.ms_fft_sizes,
                                                 mean=lambda x: distribute.global_mean(tf.reduce_mean(x)))
        return {"d_real": d_real, "d_fake": d_fake, "d_total": d_real + d_fake, "adv": adv,
                "rec": rec, "ms": ms, "g_total": adv + t.lambda_rec * rec + t.lambda_ms * ms}

    def reconstruct(self, audio: np.ndarray) -> np.ndarray:
        """Stereo reconstruction of `audio` through this stage's path (for previews)."""
        raise NotImplementedError

    def preview(self, out_dir: str) -> None:
        rebuilt = self.reconstruct(self.preview_audio)
        original = self.preview_audio[: len(rebuilt)]
        audio_lib.save_audio(os.path.join(out_dir, "original.wav"), original, self.cfg.sample_rate)
        audio_lib.save_audio(os.path.join(out_dir, "reconstruction.wav"), rebuilt, self.cfg.sample_rate)
        audio_lib.save_spectrogram_png(os.path.join(out_dir, "spectrogram.png"), [original, rebuilt],
                                       self.cfg, titles=["original", "reconstruction"])


def _preview_excerpt(files: list[CachedAudio], preset: Preset, seconds: float = 6.0) -> np.ndarray:
    """A fixed stereo excerpt (from the middle of the longest file) used for previews."""
    entry = max(files, key=lambda f: f.samples)
    length = min(entry.samples, int(seconds * preset.audio.sample_rate))
    return read_cached(entry, (entry.samples - length) // 2, length)


class AE1Phase1Trainer(_AETrainer):
    """Level 1, phase 1: L1 on log-magnitude chunks."""

    name = "ae1_phase1"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.opt = loop.make_optimizer(self.preset, mixed=self.mixed)

    def models(self):
        return {"enc": self.ae.encoder, "dec": self.ae.decoder}

    def optimizers(self):
        return {"ae": self.opt}

    def trainable_variables_for(self, name):
        return self.ae.encoder.trainable_variables + self.ae.decoder.trainable_variables

    def train_step(self, batch):
        wave = self.unpack(batch)
        spec = audio_lib.log_magnitude(wave, self.cfg)
        variables = self.trainable_variables_for("ae")
        with tf.GradientTape() as tape:
            magnitude, _ = self.ae.decoder(self.ae.encoder(encoder_input(spec), training=True),
                                           training=True)
            loss = losses.l1(magnitude, spec)
            scaled = loop.scale_loss(self.opt, loss)
        grads = tape.gradient(scaled, variables)
        used = [(g, v) for g, v in zip(grads, variables) if g is not None]  # phase head unused
        grads, used_vars = [g for g, _ in used], [v for _, v in used]
        finite = loop.update_is_finite([loss], grads, self.mixed)
        loop.apply_if_finite(self.opt, grads, used_vars, finite)
        return {"l1": loss, "finite": finite,
                "applied": loop.update_applied(finite, grads, self.mixed)}

    def reconstruct(self, audio):
        spec = audio_lib.stereo_log_magnitude(audio, self.cfg).numpy()
        magnitude, _ = self.ae.decode_level1(self.ae.encode_level1(spec))
        phase = audio_lib.normalised_phase(tf.transpose(audio), self.cfg)  # true phase: no phase yet
        return audio_lib.stereo_istft(magnitude, phase, self.cfg).numpy()


class _AdversarialAETrainer(_AETrainer):
    """A decoder side (named `gen_name`) trained through the iSTFT against a spectrogram critic.

    Subclasses implement `decode_crop(spec) -> (fake_wave, extra_losses)`; every extra loss is
    added to the decoder side's objective with weight ``lambda_rec``.
    """

    gen_name = "dec"

    def __init__(self, *args, level1_from: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.critic = self.build_critic()
        self.opt_gen = loop.make_optimizer(self.preset, mixed=self.mixed)
        self.opt_critic = loop.make_optimizer(self.preset, mixed=self.mixed)
        if level1_from:
            restore_models(level1_from, enc=self.ae.encoder, dec=self.ae.decoder)

    def optimizers(self):
        return {self.gen_name: self.opt_gen, "critic": self.opt_critic}

    def decode_crop(self, spec):
        raise NotImplementedError

    def train_step(self, batch):
        wave = self.unpack(batch)
        spec = audio_lib.log_magnitude(wave, self.cfg)
        gen_vars = self.trainable_variables_for(self.gen_name)
        with tf.GradientTape(persistent=True) as tape:
            fake_wave, extra = self.decode_crop(spec)
            logs = self.waveform_losses(wave, spec, fake_wave, self.critic)
            for name, value in extra.items():
                logs[name] = value
                logs["g_total"] = logs["g_total"] + self.preset.train.lambda_rec * value
            gen_scaled = loop.scale_loss(self.opt_gen, logs["g_total"])
            critic_scaled = loop.scale_loss(self.opt_critic, logs["d_total"])
        # Simultaneous update of the decoder side and the critic from one forward pass.
        critic_vars = self.critic.trainable_variables
        gen_grads = tape.gradient(gen_scaled, gen_vars)
        critic_grads = tape.gradient(critic_scaled, critic_vars)
        finite = loop.update_is_finite([logs["g_total"], logs["d_total"]],
                                       gen_grads + critic_grads, self.mixed)
        loop.apply_if_finite(self.opt_gen, gen_grads, gen_vars, finite)
        loop.apply_if_finite(self.opt_critic, critic_grads, critic_vars, finite)
        return {**logs, "finite": finite,
                "applied": loop.update_applied(finite, gen_grads + critic_grads, self.mixed)}


class AE1Phase2Trainer(_AdversarialAETrainer):
    """Level 1, phase 2: frozen ENC; DEC magnitude+phase through the iSTFT, adversarial."""

    name = "ae1_phase2"

    def models(self):
        return {"enc": self.ae.encoder, "dec": self.ae.decoder, "critic": self.critic}

    def decode_crop(self, spec):
        z = self.ae.encoder(encoder_input(spec), training=False)
        magnitude, phase = self.ae.decoder(z, training=True)
        return audio_lib.istft(magnitude, phase, self.cfg), {}

    def reconstruct(self, audio):
        spec = audio_lib.stereo_log_magnitude(audio, self.cfg).numpy()
        magnitude, phase = self.ae.decode_level1(self.ae.encode_level1(spec))
        return audio_lib.stereo_istft(magnitude, phase, self.cfg).numpy()


class AE2Trainer(_AdversarialAETrainer):
    """Level 2: ENC2 + DEC2 on frozen first-level latents, judged through the frozen DEC."""

    name = "ae2"
    gen_name = "ae2"
    tuned = ("enc2", "dec2")  # the networks the decoder-side optimiser trains, in this order

    def models(self):
        return {"enc": self.ae.encoder, "dec": self.ae.decoder, "enc2": self.ae.encoder2,
                "dec2": self.ae.decoder2, "critic": self.critic}

    def trainable_variables_for(self, name):
        if name == self.gen_name:
            networks = self.models()
            return [v for n in self.tuned for v in networks[n].trainable_variables]
        return super().trainable_variables_for(name)

    def decode_crop(self, spec):
        """ENC (frozen) -> ENC2 -> DEC2 -> DEC -> iSTFT, the `tuned` networks in training mode."""
        train = {n: n in self.tuned for n in ("enc2", "dec2", "dec")}
        latent1 = unfold(self.ae.encoder(encoder_input(spec), training=False), 2)  # [B,1,chunk,D1]
        latent1_hat = self.ae.decoder2(self.ae.encoder2(latent1, training=train["enc2"]),
                                       training=train["dec2"])
        magnitude, phase = self.ae.decoder(fold(latent1_hat, 2), training=train["dec"])
        fake_wave = audio_lib.istft(magnitude, phase, self.cfg)
        return fake_wave, {"latent_l1": losses.l1(latent1_hat, latent1)}

    def reconstruct(self, audio):
        spec = audio_lib.stereo_log_magnitude(audio, self.cfg).numpy()
        magnitude, phase = self.ae.decode_latents(self.ae.encode_frames(spec))
        return audio_lib.stereo_istft(magnitude, phase, self.cfg).numpy()


class DecoderTuner(AE2Trainer):
    """Both decoders end to end on frozen encoders: ENC -> ENC2 (frozen) -> DEC2 -> DEC -> iSTFT.

    This is the path every generated piece is decoded by. ENC2's latents, the GAN's training data,
    do not change, so a GAN trained on the source autoencoder works unchanged with the tuned
    decoders. Losses as level 2, with DEC trained as well.
    """

    name = "decoders"
    gen_name = "decoders"
    tuned = ("dec2", "dec")


# ---------------------------------------------------------------------------------------------
# Entry points


def stage_dirs(run_dir: str) -> dict[str, str]:
    """Run sub-folders of each autoencoder stage."""
    return {"ae1_phase1": os.path.join(run_dir, "ae1", "phase1"),
            "ae1_phase2": os.path.join(run_dir, "ae1", "phase2"),
            "ae2": os.path.join(run_dir, "ae2"),
            "decoders": os.path.join(run_dir, "decoders")}


def train_ae1(preset: Preset, run_dir: str, files: list[CachedAudio], steps: int | None = None,
              resume: bool = True, progress: bool = True, preview_files=None) -> dict:
    """Level 1: phase 1 for ``phase1_steps`` steps, then phase 2 up to ``steps`` in total."""
    total = preset.train.ae1_steps if steps is None else steps
    phase1_steps = min(preset.train.phase1_steps, total)
    dirs = stage_dirs(run_dir)
    with distribute.strategy_for(preset).scope():
        phase1 = AE1Phase1Trainer(preset, dirs["ae1_phase1"], files, preview_files)
    logs = {"phase1": loop.fit(phase1, phase1_steps, resume=resume, progress=progress)}
    if total > phase1_steps:
        fresh = not (resume and tf.train.latest_checkpoint(
            os.path.join(dirs["ae1_phase2"], loop.CHECKPOINT_DIR)))
        with distribute.strategy_for(preset).scope():
            phase2 = AE1Phase2Trainer(preset, dirs["ae1_phase2"], files, preview_files,
                                      level1_from=dirs["ae1_phase1"] if fresh else None)
        logs["phase2"] = loop.fit(phase2, total - phase1_steps, resume=resume, progress=progress)
    return logs


def level1_dir(run_dir: str) -> str:
    """The folder holding the final first-level weights (phase 2 if it ran, else phase 1)."""
    dirs = stage_dirs(run_dir)
    if tf.train.latest_checkpoint(os.path.join(dirs["ae1_phase2"], loop.CHECKPOINT_DIR)):
        return dirs["ae1_phase2"]
    return dirs["ae1_phase1"]


def train_ae2(preset: Preset, run_dir: str, files: list[CachedAudio], steps: int | None = None,
              resume: bool = True, progress: bool = True, preview_files=None) -> dict:
    """Level 2 on top of the trained level 1 of the same run."""
    dirs = stage_dirs(run_dir)
    fresh = not (resume and tf.train.latest_checkpoint(os.path.join(dirs["ae2"], loop.CHECKPOINT_DIR)))
    with distribute.strategy_for(preset).scope():
        trainer = AE2Trainer(preset, dirs["ae2"], files, preview_files,
                             level1_from=level1_dir(run_dir) if fresh else None)
    return loop.fit(trainer, preset.train.ae2_steps if steps is None else steps, resume=resume,
                    progress=progress)


def train_decoders(preset: Preset, run_dir: str, files: list[CachedAudio], source: str,
                   steps: int | None = None, resume: bool = True, progress: bool = True,
                   preview_files=None) -> dict:
    """Fine-tune the decoders of the trained autoencoder in `source` (a run or model folder; the
    run itself when it trained its own) on frozen encoders; the result lives in ``RUN/decoders``."""
    with distribute.strategy_for(preset).scope():
        trainer = DecoderTuner(preset, stage_dirs(run_dir)["decoders"], files, preview_files)
    if not (resume and _has_checkpoint(stage_dirs(run_dir)["decoders"])):
        start = load_autoencoder(preset, source)
        for name, model in trainer.ae.models.items():
            model.set_weights(start.models[name].get_weights())
    return loop.fit(trainer, preset.train.decoders_steps if steps is None else steps,
                    resume=resume, progress=progress)


def _has_checkpoint(folder: str) -> bool:
    return bool(tf.train.latest_checkpoint(os.path.join(folder, loop.CHECKPOINT_DIR)))


def load_trained_autoencoder(preset: Preset, run_dir: str) -> Autoencoder:
    """The four networks of a run: all from ``decoders`` when the decoders were fine-tuned, else
    level 2 from ``ae2`` and level 1 from ae2's copy (or ae1)."""
    ae = Autoencoder.build(preset)
    dirs = stage_dirs(run_dir)
    if _has_checkpoint(dirs["decoders"]):
        restore_models(dirs["decoders"], **ae.models)
    elif _has_checkpoint(dirs["ae2"]):
        restore_models(dirs["ae2"], **ae.models)
    else:
        restore_models(level1_dir(run_dir), enc=ae.encoder, dec=ae.decoder)
    return ae


# ---------------------------------------------------------------------------------------------
# An autoencoder from elsewhere: another run, or an exported / imported model folder

AE_SOURCE_FILE = "autoencoder.json"  # in a run that trains only the GAN: where its AE comes from
AE_NETWORKS = ("enc", "dec", "enc2", "dec2")


def set_autoencoder_source(run_dir: str, source: str) -> None:
    """Record in `run_dir` that its autoencoder is `source` (a run or model folder)."""
    os.makedirs(run_dir, exist_ok=True)
    with atomic_path(os.path.join(run_dir, AE_SOURCE_FILE)) as tmp, open(tmp, "w") as fh:
        json.dump({"source": os.path.abspath(source)}, fh, indent=2)


def autoencoder_source(run_dir: str) -> str:
    """Where the autoencoder of `run_dir` lives: the recorded source, else the run itself."""
    path = os.path.join(run_dir, AE_SOURCE_FILE)
    if not os.path.exists(path):
        return run_dir
    with open(path) as fh:
        return json.load(fh)["source"]


def _is_model_folder(source: str) -> bool:
    from ..export import has_weights

    return has_weights(source, *AE_NETWORKS)


def check_autoencoder_source(source: str) -> None:
    """Raise FileNotFoundError unless `source` holds a complete trained autoencoder."""
    if _is_model_folder(source):
        return
    dirs = stage_dirs(source)
    if not (_has_checkpoint(dirs["ae2"]) or _has_checkpoint(dirs["decoders"])):
        raise FileNotFoundError(
            f"{source}: no trained autoencoder; expected a run folder with a level-2 checkpoint "
            f"(ae2/{loop.CHECKPOINT_DIR}/ or decoders/{loop.CHECKPOINT_DIR}/) or a model folder with weights/enc|dec|enc2|dec2.weights.h5 "
            "(written by `python -m musika_tf export` or `import-reference`)")


def load_autoencoder(preset: Preset, source: str) -> Autoencoder:
    """The four trained networks of `source`: a run folder or an exported model folder."""
    if not _is_model_folder(source):
        check_autoencoder_source(source)
        return load_trained_autoencoder(preset, source)
    from ..export import read_weights

    ae = Autoencoder.build(preset)
    read_weights(source, **ae.models)
    return ae


def autoencoder_identity(source: str) -> str:
    """A string that changes whenever the autoencoder of `source` changes (for latent caches)."""
    if not _is_model_folder(source):
        dirs = stage_dirs(source)
        stage = dirs["decoders"] if _has_checkpoint(dirs["decoders"]) else dirs["ae2"]
        return str(tf.train.latest_checkpoint(os.path.join(stage, loop.CHECKPOINT_DIR)))
    from ..export import weights_path

    digest = hashlib.sha1()
    for name in AE_NETWORKS:
        with open(weights_path(source, name), "rb") as fh:
            digest.update(fh.read())
    return f"{os.path.abspath(source)}#{digest.hexdigest()[:16]}"
