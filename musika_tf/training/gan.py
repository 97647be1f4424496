"""Latent-GAN training stage (reference sections 4.1, 4.9-4.12) on the shared loop.

Data: random crops of ``latlen`` latents from a latent store (`musika_tf.data.latents`), plus the
matching crop of the condition curve when ``preset.gan.cond != 'none'``. Everything random in a step
(crop choice, left/right swap, coordinates, generator noise) is drawn on the host from the key
``(preset.train.seed, draw)``, where ``draw`` counts batches; after a resume it restarts at the number
of finished steps, so a resumed run sees the same batches as an uninterrupted one.

One step (simultaneous G and D update from one forward pass):

- v44: real windows are left/right swapped with p = 0.5 per batch; the adaptive R1 switch (in [-1, 0],
  init -1) is updated from this step's logits before the losses are formed and used at once;
  ``L_D = 0.5 (hinge_r + hinge_f) + gp_max_weight * (-switch) * R1``, ``L_G = -mean D(fake)``.
- v22: one-centred gradient penalty at reals with weight ``gp_max_weight``.
- Either variant with ``critic_reconstruction``: the head decodes the critic's features of the real
  window; ``+ 10 * msesum(real, rec)`` in ``L_D`` (head trained by the critic's optimiser).
- With ``condition_loss_weight`` w > 0 (conditioned models): an auxiliary regressor R estimates the
  condition value of every frame from latents alone; ``+ w * mse(R(real), c_real)`` in ``L_D`` (R is
  trained by the critic's optimiser, on real windows only) and ``+ w * mse(R(fake), c_requested)``
  in ``L_G``, so a generator that ignores the requested condition pays for it (AC-GAN style).
- With ``critic_translation`` / ``critic_cutout`` > 0: every window the critic sees, real or
  generated, is first augmented (`augment`, DiffAugment), against a critic that memorises a small
  training set.
- With ``critic_crop_halves`` n > 0: real crops and generated sequences are n half-windows longer
  than a window, and the critic sees each from a random offset (`augment.crop`), so the joins of
  the generator's half-windows fall anywhere in its input.
- With ``critic_mismatch_weight`` w > 0 (conditioned models; matching-aware critic, Reed et al.
  2016): the real windows, paired with the condition curves of the batch rolled by one example,
  are scored as fakes: ``+ 0.5 * w * hinge_f(D(real, c_other))`` in ``L_D``. Real music with a
  condition it does not have is then "fake", so the critic must learn what the condition sounds
  like (where the onset or beat phase puts the notes, how dense they are), and a generator that
  ignores it is caught by the critic itself, not only by a regressor it can fool.
- With ``join_critic_weight`` w > 0: a small local critic J (`gan.build_join_critic`) sees the
  latents around the join of each generated window's two half-windows and the same span of the
  real windows (a uniformly random place in the data), never augmented:
  ``+ 0.5 * w * (hinge_r + hinge_f)`` of J in ``L_D``, ``- w * mean J(fake)`` in ``L_G``. The main
  critic's translation moves the join about; this one keeps it where every generated seam is.
- With ``local_critic_weight`` w > 0: a second critic of J's architecture with its own weights
  judges a span at a random place of every window (``local_starts``, the same for the real and the
  generated window of an example): local texture everywhere, ``+ 0.5 * w * (hinge_r + hinge_f)``
  in ``L_D`` and ``- w * mean(fake)`` in ``L_G``, so J can keep to the join.
- With ``condition_feedback_every`` k > 0 (density models with the regressor; `feedback`): every
  k steps a few generated windows are decoded and measured with the training labels' onset
  detector; every batch then carries ``fb_latents`` / ``fb_cond`` drawn from the most recent ones,
  and ``+ w * mse(R(fb_latents), fb_cond)`` in ``L_D``, so R learns what generated latents sound
  like and the generator cannot fool it.
- The EMA generator (a separate model, checkpointed, used for previews and export) moves towards the
  generator every step: ``ema <- d * ema + (1 - d) * gen``.

Under a `tf.distribute` strategy (`distribute`) the switch moves by the global batch's logits and,
like the EMA and the step counter, only after an applied update, on every replica alike.

A non-finite step changes nothing (weights, optimiser slots, EMA, switch); the loop's NaN guard does
the rest. Under mixed precision the loss-scale optimisers handle overflowing gradients themselves, so
only the losses are checked there.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from musika_tf import conditioning, coordinates, gan, losses
from musika_tf.audio import save_audio, save_spectrogram_png
from musika_tf.config import Preset
from musika_tf.data.latents import mapped_entries, window
from musika_tf.layers import dtype_policy, reseed_noise
from musika_tf.training import augment, distribute, feedback, loop

REC_WEIGHT = 10.0  # v22 critic reconstruction loss weight (reference 4.10.6)
SWAP_PROBABILITY = 0.5  # v44 left/right swap of real windows, one draw per batch
PREVIEW_WINDOWS = 4
PREVIEW_BOUND = 2.0  # truncation bound of preview coordinates (the v44 UI default)
_DATA_STREAM, _NOISE_STREAM, _AUGMENT_STREAM, _CROP_STREAM = 1000, 1001, 1002, 1003  # coordinates: 0..4
_FEEDBACK_STREAM, _LOCAL_STREAM = 1004, 1005

DecodeFn = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Data: crops of stored latents (+ condition curves)


def stored_condition(arrays: dict, cond: str) -> np.ndarray:
    """Network condition ``[T, K]`` (`conditioning.network_condition`) of one stored entry.

    `cond` is a `conditioning.network_cond`. density: the stored per-frame curve; density_phase:
    that curve with the stored onset phase; tempo: the stored scalar repeated, with the stored beat
    phase of every frame. Stores written by `musika_tf.encoding` hold the values normalised.
    """
    length = len(arrays["latents"])
    value = "tempo" if cond == "tempo" else "density"
    phase = conditioning.PHASE_ARRAY.get(cond)
    needed = [value] + ([phase] if phase else [])
    missing = [name for name in needed if name not in arrays]
    if missing:
        raise ValueError(f"preset asks for a {cond} condition but a latent store entry has no "
                         f"{', '.join(missing)} array; re-encode the data with this version "
                         "(delete the run's latents/ folder)")
    values = np.asarray(arrays[value], np.float32)
    values = np.full(length, float(values), np.float32) if values.ndim == 0 else values[:length]
    return conditioning.network_condition(
        cond, values, None if phase is None else np.asarray(arrays[phase])[:length])


class LatentCrops:
    """Uniformly placed ``latlen`` crops of stored latents ``[T, 2D]`` and their network conditions.

    Arrays shorter than ``latlen`` are skipped. Every possible window is equally likely (an array is
    picked with probability proportional to its number of crop positions). The arrays are kept as
    given, not copied: from a store (`from_store`) they are memory-mapped views, so memory does not
    grow with the data set; the network condition is computed per crop (it is frame-wise).
    """

    def __init__(self, entries: list, latlen: int, cond: str = "none"):
        kept = [e for e in entries if len(e["latents"]) >= latlen]
        if not kept:
            raise ValueError(f"no stored latent array is at least latlen={latlen} latents long")
        self.latlen, self.cond = latlen, cond
        self.entries = kept
        self.latents = [e["latents"] for e in kept]
        if cond != "none":
            for entry in kept:  # fail now, not at the first batch that picks the entry
                stored_condition(window(entry, 0, 1), cond)
        counts = np.array([len(x) - latlen + 1 for x in self.latents], np.float64)
        self.weights = counts / counts.sum()

    @classmethod
    def from_store(cls, folder: str, preset: Preset, split: str = "train") -> "LatentCrops":
        """Crops of every `split` entry of the latent store in `folder` (memory-mapped), as long as
        the critic's windows are cropped from (`augment.crop_length`: latlen without the crop)."""
        return cls(mapped_entries(folder, split), augment.crop_length(preset.gan),
                   conditioning.network_cond(preset))

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple:
        """``(latents [B, latlen, 2D] float32, conditions [B, latlen, K] float32 or None)``."""
        picks = rng.choice(len(self.latents), size=batch_size, p=self.weights)
        starts = [rng.integers(len(self.latents[i]) - self.latlen + 1) for i in picks]
        real = np.stack([np.asarray(self.latents[i][s:s + self.latlen], np.float32)
                         for i, s in zip(picks, starts)])
        if self.cond == "none":
            return real, None
        return real, np.stack([stored_condition(window(self.entries[i], s, self.latlen), self.cond)
                               for i, s in zip(picks, starts)])


def swap_channels(latents: np.ndarray) -> np.ndarray:
    """Exchange the left and right halves of the last axis: ``[..., 2D] -> [..., 2D]``."""
    left, right = np.split(latents, 2, axis=-1)
    return np.concatenate([right, left], axis=-1)


def make_batch(preset: Preset, crops: LatentCrops, draw: int) -> dict:
    """Host-side batch number `draw`, a pure function of ``(preset.train.seed, draw)``.

    Keys: ``real`` ``[B, L, 2D]``, ``coords`` ``[B, L, 2*coorddepth]``, ``noise_seed`` int64
    ``[]``, with conditioning ``cond`` ``[B, L, K]`` (network condition), with critic augmentation
    ``aug_real`` / ``aug_fake`` ``[B, 3]`` int32 (`augment.draw`), and with the join-position crop
    ``crop_offsets`` ``[B]`` int32 (`augment.draw_crop_offsets`), and with the local critic
    (`gan.uses_local_critic`) ``local_starts`` ``[B]`` int32 (first latent of each window's random
    span). L = `augment.crop_length` (latlen without the crop).
    """
    key = (preset.train.seed, draw)
    rng = np.random.default_rng([*key, _DATA_STREAM])
    real, curve = crops.sample(preset.train.batch_size, rng)
    if preset.ae.variant == "v44" and rng.random() < SWAP_PROBABILITY:
        real = swap_channels(real)
    g = preset.gan
    batch = {
        "real": real,
        "coords": coordinates.training_coordinates(preset, preset.train.batch_size, key,
                                                   augment.crop_length(g)),
        "noise_seed": np.int64(np.random.default_rng([*key, _NOISE_STREAM]).integers(2 ** 31)),
    }
    if curve is not None:
        batch["cond"] = curve
    if g.critic_crop_halves:
        batch["crop_offsets"] = augment.draw_crop_offsets(
            np.random.default_rng([*key, _CROP_STREAM]), preset.train.batch_size, g)
    if gan.uses_local_critic(preset):
        batch["local_starts"] = np.random.default_rng([*key, _LOCAL_STREAM]).integers(
            0, g.latlen - gan.JOIN_SPAN + 1, preset.train.batch_size).astype(np.int32)
    if augment.enabled(g):
        aug_rng = np.random.default_rng([*key, _AUGMENT_STREAM])
        for name in ("aug_real", "aug_fake"):
            batch[name] = augment.draw(aug_rng, preset.train.batch_size, g.latlen,
                                       g.critic_translation, g.critic_cutout)
    return batch


# ---------------------------------------------------------------------------------------------
# Losses and helpers


def ema_update(ema_vars: list, vars_: list, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * var`` for each pair."""
    for e, v in zip(ema_vars, vars_):
        e.assign(decay * e + (1.0 - decay) * tf.cast(v, e.dtype))


def _split_critic_output(out) -> tuple:
    """``(logit [B, 1], features or None)`` from a critic returning a logit or ``[logit, features]``."""
    return (out[0], out[1]) if isinstance(out, (list, tuple)) else (out, None)


# ---------------------------------------------------------------------------------------------
# The trainer


class GANTrainer(loop.Trainer):
    """Generator + critic (+ reconstruction head) + EMA generator on a latent store.

    `lr` overrides ``preset.train.lr`` (and wins over a learning rate stored in a resumed checkpoint).
    `init_from`: another run folder whose latest checkpoint (or an exported model folder whose
    ``weights/``) provides the initial generator, critic, EMA generator, reconstruction head and R1
    switch (optimisers start fresh): fine-tuning.
    `decode_fn(latents [T, 2D]) -> audio [samples, 2]` turns previews into audio (None: latents only).
    Building seeds Keras/NumPy/Python globally with ``preset.train.seed`` (reproducible initial weights).
    """

    name = "gan"

    def __init__(self, preset: Preset, run_dir: str, latents_dir: str, *, lr: float | None = None,
                 init_from: str | None = None, decode_fn: DecodeFn | None = None,
                 split: str = "train"):
        super().__init__(preset, run_dir)
        if augment.enabled(preset.gan) and preset.gan.critic_reconstruction:
            raise ValueError("critic augmentation (critic_translation / critic_cutout) and the "
                             "critic reconstruction head cannot be combined: the head would "
                             "reconstruct the window without its augmentation; set one of them off")
        halves = 2 + preset.gan.critic_crop_halves
        if preset.train.batch_size * halves % 2:
            raise ValueError(f"critic_crop_halves={preset.gan.critic_crop_halves} needs an even "
                             f"batch_size * {halves} (half-windows are paired into generator "
                             f"windows); batch_size is {preset.train.batch_size}")
        feedback.check_feedback(preset, decode_fn)
        self.crops = LatentCrops.from_store(latents_dir, preset, split)
        self.decode_fn = decode_fn
        self.feedback = (feedback.ConditionFeedback(preset, decode_fn, run_dir)
                         if preset.gan.condition_feedback_every else None)
        self.lr = preset.train.lr if lr is None else float(lr)
        self.mixed = loop.use_mixed_precision(preset)
        keras.utils.set_random_seed(preset.train.seed)
        with dtype_policy(loop.precision_policy(preset)):
            self.networks = gan.build_networks(preset)
        self.generator, self.critic = self.networks["generator"], self.networks["critic"]
        self.gen_ema = self.networks["gen_ema"]
        self.critic_rec = self.networks.get("critic_rec")
        self.regressor = self.networks.get("cond_regressor")
        self.join_critic = self.networks.get("join_critic")
        self.local_critic = self.networks.get("local_critic")
        self.gen_ema.set_weights(self.generator.get_weights())
        self.g_opt = loop.make_optimizer(preset, self.lr, self.mixed)
        self.d_opt = loop.make_optimizer(preset, self.lr, self.mixed)
        self.switch = tf.Variable(-1.0, trainable=False, name="r1_switch")
        self.finished_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="gan_step")
        if init_from:
            self._init_from(init_from)

    # -- loop.Trainer interface ----------------------------------------------------------------

    def models(self) -> dict:
        return dict(self.networks)

    def optimizers(self) -> dict:
        return {"generator": self.g_opt, "critic": self.d_opt}

    def trainable_variables_for(self, optimizer_name: str) -> list:
        if optimizer_name == "critic":
            heads = [m for m in (self.critic_rec, self.regressor, self.join_critic,
                                 self.local_critic) if m is not None]
            return self.critic.trainable_variables + [v for m in heads for v in m.trainable_variables]
        return super().trainable_variables_for(optimizer_name)

    def extra_state(self) -> dict:
        return {"r1_switch": self.switch, "gan_step": self.finished_steps}

    def batches(self, start_step: int = 0) -> Iterator[dict]:
        """Endless batches from draw = `start_step` on (called by `loop.fit` after any restore)."""
        for opt in (self.g_opt, self.d_opt):
            opt.learning_rate.assign(self.lr)  # a resumed checkpoint stores its own lr
        return self._stream(int(start_step))

    def _stream(self, draw: int) -> Iterator[dict]:
        while True:
            batch = make_batch(self.preset, self.crops, draw)
            if self.feedback is not None:  # generated windows measured so far (`feedback`)
                if self.feedback.due(draw):
                    self.feedback.refresh(self.generator, batch, draw)
                rng = np.random.default_rng([self.preset.train.seed, draw, _FEEDBACK_STREAM])
                batch.update(self.feedback.sample(rng))
            yield batch
            draw += 1

    def train_step(self, batch: dict) -> dict:
        """One simultaneous G/D update (reference 4.9 / 4.10); returns losses and ``finite``."""
        real_seq = tf.expand_dims(tf.convert_to_tensor(batch["real"], tf.float32), 1)  # [B,1,L,2D]
        cond = batch.get("cond")
        coords = batch["coords"] if cond is None else gan.append_condition(batch["coords"], cond)
        offsets, latlen = batch.get("crop_offsets"), self.preset.gan.latlen
        real = real_seq
        if offsets is not None:  # the critic's windows: latlen latents from the offsets on
            real = augment.crop(real_seq, offsets, latlen)
            cond = None if cond is None else augment.crop(cond, offsets, latlen)
        reseed_noise(self.generator, batch["noise_seed"])
        g_vars = self.trainable_variables_for("generator")
        d_vars = self.trainable_variables_for("critic")
        with tf.GradientTape() as d_tape:
            with tf.GradientTape() as g_tape:  # the generator's tape skips the penalty graph
                fake_seq = gan.generate_halves(self.generator, coords)  # [B, 1, L, 2D]
                fake = fake_seq if offsets is None else augment.crop(fake_seq, offsets, latlen)
                fake_logit, _ = _split_critic_output(self._critic(fake, cond, batch.get("aug_fake")))
                g_loss = losses.hinge_generator(fake_logit)
                extra = {}
                local_terms = self._local_terms(batch.get("local_starts"))
                small_fake_logits = {}
                for name, (critic, starts, weight) in local_terms.items():
                    small_fake_logits[name] = self._small_critic(critic, fake_seq, batch.get("cond"),
                                                                 starts)
                    extra[f"g_{name}"] = losses.hinge_generator(small_fake_logits[name])
                    g_loss += weight * extra[f"g_{name}"]
                if self.regressor is not None:
                    extra["g_cond"] = self._condition_error(fake, cond)
                    g_loss += self.preset.gan.condition_loss_weight * extra["g_cond"]
                g_scaled = loop.scale_loss(self.g_opt, g_loss)
            logs = {**self._critic_losses(real, fake_logit, cond, batch.get("aug_real")),
                    "g_loss": g_loss, **extra}
            if "fb_latents" in batch:  # the regressor also learns measured generated windows
                logs["d_cond_fb"] = self._condition_error(batch["fb_latents"], batch["fb_cond"])
                logs["d_loss"] += self.preset.gan.condition_loss_weight * logs["d_cond_fb"]
            for name, (critic, starts, weight) in local_terms.items():
                real_logit = self._small_critic(critic, real_seq, batch.get("cond"), starts)
                r, f = losses.hinge_critic(real_logit, small_fake_logits[name])
                logs[f"d_{name}_r"], logs[f"d_{name}_f"] = r, f
                logs["d_loss"] += weight * 0.5 * (r + f)
            d_scaled = loop.scale_loss(self.d_opt, logs["d_loss"])
        g_grads = g_tape.gradient(g_scaled, g_vars)
        d_grads = d_tape.gradient(d_scaled, d_vars)
        finite = loop.update_is_finite(list(logs.values()), g_grads + d_grads, self.mixed)
        applied = loop.update_applied(finite, g_grads + d_grads, self.mixed)
        loop.apply_if_finite(self.g_opt, g_grads, g_vars, finite)
        loop.apply_if_finite(self.d_opt, d_grads, d_vars, finite)
        switch = logs.pop("r1_switch", None)  # the adaptive switch moves only with an update
        distribute.apply_in_sync(self._after_update, applied,
                                 self.switch.read_value() if switch is None else switch)
        return {**logs, "lr": tf.identity(self.g_opt.learning_rate), "finite": finite,
                "applied": applied}

    def preview(self, out_dir: str) -> None:
        """Four EMA-generator windows (fixed seeds) as ``latents{i}.npy``; with `decode_fn` also
        ``out{i}.wav`` and ``output.png`` (display mel spectrograms)."""
        os.makedirs(out_dir, exist_ok=True)
        windows = generate_preview(self.preset, self.gen_ema)
        for i, latents in enumerate(windows, start=1):
            np.save(os.path.join(out_dir, f"latents{i}.npy"), latents)
        if self.decode_fn is None:
            return
        audios = [np.asarray(self.decode_fn(latents)) for latents in windows]
        sr = self.preset.audio.sample_rate
        for i, audio in enumerate(audios, start=1):
            save_audio(os.path.join(out_dir, f"out{i}.wav"), audio, sr)
        save_spectrogram_png(os.path.join(out_dir, "output.png"), audios, self.preset.audio,
                             titles=[f"Generated{i}" for i in range(1, len(audios) + 1)])

    # -- pieces of the step --------------------------------------------------------------------

    def _critic(self, latents, cond, augmentation=None):
        """Critic on ``[B,1,T,2D]`` windows, with the condition channel appended when conditioned,
        and the input augmented by `augmentation` ``[B, 3]`` (`augment.draw`) when given."""
        x = latents if cond is None else gan.append_condition(latents, cond)
        if augmentation is not None:
            x = augment.apply(x, augmentation)
        return self.critic(x, training=True)

    def _critic_losses(self, real, fake_logit, cond, augmentation=None) -> dict:
        """Hinge terms, the variant's penalty (+ reconstruction) and ``d_loss``; scalars. The
        penalty is the input gradient at the real windows, through their augmentation."""
        seen = {}

        def critic_on_real(x, training=True):  # records the real call for reuse
            seen["out"] = self._critic(x, cond, augmentation)
            return seen["out"]

        t, v44 = self.preset.train, self.preset.ae.variant == "v44"
        penalty_fn = losses.r1_penalty if v44 else losses.one_centred_gradient_penalty
        penalty = penalty_fn(critic_on_real, real)
        real_logit, real_feats = _split_critic_output(seen["out"])
        if v44:  # adaptive weight, updated from this step's (global-batch) logits and used at once
            switch = tf.stop_gradient(losses.next_r1_switch(
                self.switch, real_logit, fake_logit,
                mean=lambda x: distribute.global_mean(tf.reduce_mean(x))))
            weight = t.gp_max_weight * -switch
            logs = {"r1": penalty, "gp_weight": weight, "r1_switch": switch}
        else:
            weight, logs = t.gp_max_weight, {"gp": penalty}
        logs["d_loss_r"], logs["d_loss_f"] = losses.hinge_critic(real_logit, fake_logit)
        d_loss = 0.5 * (logs["d_loss_r"] + logs["d_loss_f"]) + weight * penalty
        mismatch = self.preset.gan.critic_mismatch_weight
        if mismatch > 0 and cond is not None:
            other = tf.roll(tf.convert_to_tensor(cond, tf.float32), shift=1, axis=0)
            mismatched_logit, _ = _split_critic_output(self._critic(real, other, augmentation))
            logs["d_loss_m"] = losses.hinge_critic(real_logit, mismatched_logit)[1]
            d_loss += 0.5 * mismatch * logs["d_loss_m"]
        if self.critic_rec is not None:
            logs["rec_loss"] = losses.msesum(real, self.critic_rec(real_feats, training=True))
            d_loss += REC_WEIGHT * logs["rec_loss"]
        if self.regressor is not None:
            logs["d_cond"] = self._condition_error(real, cond)
            d_loss += self.preset.gan.condition_loss_weight * logs["d_cond"]
        logs["d_loss"] = d_loss
        return logs

    def _local_terms(self, starts) -> dict:
        """The small critics' terms by log name: ``(critic, starts or None, weight)``: ``join``
        (join critic at the join) and ``local_critic`` (the local critic at `starts`)."""
        g, terms = self.preset.gan, {}
        if self.join_critic is not None:
            terms["join"] = (self.join_critic, None, g.join_critic_weight)
        if self.local_critic is not None:
            terms["local_critic"] = (self.local_critic, starts, g.local_critic_weight)
        return terms

    def _small_critic(self, critic, sequences, cond, starts=None):
        """Logits ``[B, 1]`` of a small `critic` (join or local) on the `gan.join_span` of the
        first window of `sequences` ``[B, 1, L, 2D]`` (of a generated one: around the join of its
        two halves), or with `starts` ``[B]`` on the `gan.local_span` from there, with the same
        span of the network condition `cond` ``[B, L, K]`` appended when conditioned."""
        cut = gan.join_span if starts is None else (lambda x: gan.local_span(x, starts))
        span = cut(sequences[:, :, :self.preset.gan.latlen])
        if cond is not None:
            curve = tf.convert_to_tensor(cond, tf.float32)[:, :self.preset.gan.latlen]
            span = gan.append_condition(span, cut(curve))
        return critic(span, training=True)

    def _condition_error(self, latents, cond):
        """Mean squared error of the regressor's per-frame estimate vs the condition value
        (channel 0 of the network condition ``[B, T, K]``, or the value itself ``[B, T]``) of
        `latents` ``[B, 1, T, 2D]``."""
        values = tf.convert_to_tensor(cond, tf.float32)
        values = values[..., 0] if len(values.shape) == 3 else values
        return losses.mse(values, self.regressor(latents, training=True))

    def _after_update(self, switch):
        """State that moves only with an applied update, from values equal on every replica:
        the R1 switch (from global-batch logits), the EMA generator (from the synchronised
        generator) and the step counter."""
        self.switch.assign(switch)
        ema_update(self.gen_ema.weights, self.generator.weights, self.preset.train.ema_decay)
        self.finished_steps.assign_add(1)

    def _init_from(self, run_dir: str) -> None:
        """Load models and R1 switch from `run_dir`'s latest checkpoint, or from the ``weights/``
        of an exported model folder (optimisers stay fresh). Critic and EMA generator must be
        there; the generator starts from the EMA generator where a folder has no raw one (exports
        since session 11); heads the source lacks (reconstruction, condition regressor, join
        critic) start fresh."""
        from musika_tf.export import has_weights, read_card, read_weights

        core = {k: m for k, m in self.models().items() if k in ("generator", "critic", "gen_ema")}
        if has_weights(run_dir, "critic", "gen_ema"):  # an exported model folder
            found = {k: m for k, m in self.models().items() if has_weights(run_dir, k)}
            read_weights(run_dir, **found)
            if "generator" not in found:  # folders keep only the EMA generator: start from it
                self.generator.set_weights(self.gen_ema.get_weights())
            self.switch.assign(float(read_card(run_dir).get("r1_switch", -1.0)))
            return
        path = tf.train.latest_checkpoint(os.path.join(run_dir, loop.CHECKPOINT_DIR))
        if path is None:
            raise FileNotFoundError(f"{run_dir}: no checkpoint under {loop.CHECKPOINT_DIR}/ to "
                                    "fine-tune from")
        saved = loop.checkpoint_children(path)  # heads added since (regressor) start fresh
        models = {k: m for k, m in self.models().items() if k in saved or k in core}
        ckpt = tf.train.Checkpoint(**models, r1_switch=self.switch)
        try:
            ckpt.restore(path).expect_partial().assert_existing_objects_matched()
        except (AssertionError, ValueError) as err:
            raise ValueError(f"{path}: checkpoint does not fit this preset's networks (compare "
                             f"preset.json in {run_dir}): {err}") from err


def generate_preview(preset: Preset, generator: keras.Model, n: int = PREVIEW_WINDOWS) -> np.ndarray:
    """`n` independent windows ``[n, latlen, 2D]`` from the inference sampler with fixed seeds.

    Window i uses path seed ``(preset.train.seed, i)`` and, when conditioned, the constant condition
    ``(i + 0.5) / n`` (tempo: with its beat phase from 0); the generator's noise is reseeded, so
    previews of one checkpoint repeat.
    """
    coords = np.concatenate([coordinates.inference_coordinates(
        preset, 1, PREVIEW_BOUND, (preset.train.seed, i)) for i in range(n)])
    if gan.condition_channels(preset):
        levels = (np.arange(n, dtype=np.float32) + 0.5) / n
        coords = gan.append_condition(coords, np.stack([
            constant_network_condition(preset, level, preset.gan.latlen) for level in levels]))
    reseed_noise(generator, preset.train.seed)
    return np.asarray(generator(coords, training=False))[:, 0]


def constant_network_condition(preset: Preset, value: float, frames: int) -> np.ndarray:
    """Network condition ``[frames, K]`` of a constant normalised `value` (tempo: phase from 0)."""
    values = np.full(frames, value, np.float32)
    return conditioning.generation_condition(conditioning.network_cond(preset), values, 0.0,
                                             1.0 / preset.latent_rate)[0]


# ---------------------------------------------------------------------------------------------
# Entry point


def train_gan(preset: Preset, latents_dir: str, run_dir: str, steps: int | None = None,
              resume: bool = True, init_from: str | None = None, lr: float | None = None,
              decode_fn: DecodeFn | None = None, progress: bool = True) -> dict:
    """Train the latent GAN on the store in `latents_dir`, checkpointing into `run_dir`.

    `steps`: total steps (default ``preset.train.steps``); `resume` continues `run_dir`'s latest
    checkpoint (it takes precedence over `init_from`); `init_from`/`lr`: fine-tune from another
    run with a fresh optimiser at this learning rate. Returns the last logged running means.
    """
    with distribute.strategy_for(preset).scope():
        trainer = GANTrainer(preset, run_dir, latents_dir, lr=lr, init_from=init_from,
                             decode_fn=decode_fn)
    return loop.fit(trainer, steps, resume=resume, progress=progress)
