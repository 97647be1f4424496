"""The shared training loop: loss goes down, resume is exact, NaN steps change nothing."""

from __future__ import annotations

import numpy as np
import keras
import pytest
import tensorflow as tf

from musika_tf import config
from musika_tf.training import loop


class ToyTrainer(loop.Trainer):
    """Linear regression y = x @ w on a fixed batch; `poison` steps feed NaN inputs."""

    name = "toy"

    def __init__(self, preset, run_dir, poison=()):
        super().__init__(preset, run_dir)
        keras.utils.set_random_seed(0)
        self.model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, use_bias=False)])
        self.opt = loop.make_optimizer(preset, lr=0.05)
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((32, 4)).astype(np.float32)
        self.y = self.x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
        self.poison = set(poison)
        self.calls = 0

    def models(self):
        return {"model": self.model}

    def optimizers(self):
        return {"model": self.opt}

    def batches(self, start_step=0):
        while True:
            self.calls += 1
            x = self.x * np.nan if self.calls in self.poison else self.x
            yield x, self.y

    def train_step(self, batch):
        x, y = batch
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(self.model(x) - y))
        grads = tape.gradient(loss, self.model.trainable_variables)
        finite = loop.all_finite(loss, *grads)
        loop.apply_if_finite(self.opt, grads, self.model.trainable_variables, finite)
        return {"loss": loss, "finite": finite}


PRESET = config.get_preset("tiny", save_every=5, log_every=5)


def test_fit_lowers_the_loss_and_writes_checkpoints(tmp_path):
    trainer = ToyTrainer(PRESET, str(tmp_path))
    first = float(trainer.train_step((trainer.x, trainer.y))["loss"])
    logs = loop.fit(trainer, steps=60, progress=False)
    assert logs["loss"] < 0.5 * first
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-60")
    assert config.load_preset(str(tmp_path)) == PRESET


def test_resume_gives_identical_weights(tmp_path):
    straight = ToyTrainer(PRESET, str(tmp_path / "a"))
    loop.fit(straight, steps=20, progress=False)
    halves = ToyTrainer(PRESET, str(tmp_path / "b"))
    loop.fit(halves, steps=10, progress=False)
    resumed = ToyTrainer(PRESET, str(tmp_path / "b"))  # fresh weights, then restored
    loop.fit(resumed, steps=20, progress=False)
    np.testing.assert_array_equal(straight.model.get_weights()[0], resumed.model.get_weights()[0])
    assert int(resumed.opt.iterations) == int(straight.opt.iterations) == 20


def test_nan_step_is_skipped_without_touching_weights(tmp_path):
    clean = ToyTrainer(PRESET, str(tmp_path / "clean"))
    loop.fit(clean, steps=8, progress=False)
    poisoned = ToyTrainer(PRESET, str(tmp_path / "poisoned"), poison={3, 4})
    loop.fit(poisoned, steps=8, progress=False)
    np.testing.assert_array_equal(clean.model.get_weights()[0], poisoned.model.get_weights()[0])


def test_repeated_nan_restores_last_checkpoint_then_gives_up(tmp_path):
    # Steps 1-5 are clean (checkpoint at 5); every later batch is NaN.
    trainer = ToyTrainer(PRESET, str(tmp_path), poison=set(range(6, 100)))
    with pytest.raises(loop.NonFiniteTraining, match="after restoring"):
        loop.fit(trainer, steps=10, progress=False, max_nan_steps=3)
    saved = ToyTrainer(PRESET, str(tmp_path))
    ckpt = tf.train.Checkpoint(model=saved.model)
    ckpt.restore(tf.train.latest_checkpoint(str(tmp_path / "ckpt"))).expect_partial()
    np.testing.assert_array_equal(saved.model.get_weights()[0], trainer.model.get_weights()[0])


def test_resume_refuses_a_checkpoint_that_does_not_hold_the_whole_state(tmp_path):
    loop.fit(ToyTrainer(PRESET, str(tmp_path)), steps=5, progress=False)
    # a checkpoint of the network alone (no optimiser slots, no step), as an older version might write
    partial = tmp_path / "partial"
    trainer = ToyTrainer(PRESET, str(partial))
    tf.train.CheckpointManager(tf.train.Checkpoint(model=trainer.model), str(partial / "ckpt"),
                               max_to_keep=1).save()
    with pytest.raises(ValueError, match=r"ckpt-1: the checkpoint does not hold exactly"):
        loop.fit(ToyTrainer(PRESET, str(partial)), steps=10, progress=False)
    loop.fit(ToyTrainer(PRESET, str(tmp_path)), steps=10, progress=False)  # a whole one resumes
