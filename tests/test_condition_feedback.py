"""Condition feedback (gan.condition_feedback_every): generated windows decoded, measured with the
training labels' onset detector, and learnt by the density regressor."""

import json

import numpy as np
import pytest
import tensorflow as tf

from musika_tf import conditioning, config
from musika_tf.data.latents import LatentWriter
from musika_tf.training import feedback, loop
from musika_tf.training import gan as G

FEEDBACK = config.get_preset("tiny", cond="density", condition_loss_weight=10.0, batch_size=8,
                             lr=1e-3, save_every=10_000, condition_feedback_every=25)


def click_rate(latents: np.ndarray) -> float:
    """Onsets per second the mock decoder plays for a window ``[L, 2D]``: 1 ... 7 by channel 1."""
    return 1.0 + 6.0 / (1.0 + np.exp(-4.0 * float(np.mean(latents[:, 1]))))


def click_decoder(preset):
    """A stand-in decoder: a steady train of short noise bursts at `click_rate`, stereo."""
    rate, spl = preset.audio.sample_rate, preset.samples_per_latent

    def decode(latents):
        audio = np.zeros(len(latents) * spl, np.float32)
        burst = np.random.default_rng(0).standard_normal(int(0.02 * rate)) * np.exp(
            -np.arange(int(0.02 * rate)) / (0.004 * rate))
        step = int(rate / click_rate(latents))
        for start in range(step // 2, len(audio) - len(burst), step):
            audio[start:start + len(burst)] += 0.5 * burst
        return np.stack([audio, audio], axis=1)

    return decode


def _store(folder, preset) -> str:
    """Real latents whose density label is a function of channels 0 and D (not channel 1)."""
    rng = np.random.default_rng(0)
    writer = LatentWriter(str(folder), "chunks", "test", preset.to_dict())
    for i in range(4):
        latents = rng.standard_normal((preset.gan.max_lat_len, preset.stereo_latent_dim))
        signal = latents[:, 0] + latents[:, preset.ae.latent_dim]
        writer.add(latents, f"song{i}.wav", density=1.0 / (1.0 + np.exp(-signal)))
    return writer.close()


def test_measure_reads_the_decoded_click_rate():
    buffer = feedback.ConditionFeedback(FEEDBACK, click_decoder(FEEDBACK))
    windows = np.zeros((2, 128, FEEDBACK.stereo_latent_dim), np.float32)
    windows[1, :, 1] = 1.0  # a denser window
    curves = buffer.measure(windows)
    assert curves.shape == (2, 128)
    per_second = conditioning.density_to_onsets_per_second(curves[:, 20:-20]).mean(axis=1)
    expected = [click_rate(w) for w in windows]
    np.testing.assert_allclose(per_second, expected, rtol=0.1)


def test_presets_that_cannot_use_feedback_are_refused(tmp_path):
    decode = click_decoder(FEEDBACK)
    with pytest.raises(ValueError, match="density-conditioned"):
        feedback.check_feedback(FEEDBACK.with_overrides(cond="tempo"), decode)
    with pytest.raises(ValueError, match="condition regressor"):
        feedback.check_feedback(FEEDBACK.with_overrides(condition_loss_weight=0.0), decode)
    with pytest.raises(ValueError, match="decoder"):
        feedback.check_feedback(FEEDBACK, None)
    feedback.check_feedback(FEEDBACK.with_overrides(condition_feedback_every=0), None)  # off: fine


def test_feedback_batches_carry_measured_generated_windows_and_log_them(tmp_path):
    store = _store(tmp_path / "store", FEEDBACK)
    trainer = G.GANTrainer(FEEDBACK, str(tmp_path / "run"), store,
                           decode_fn=click_decoder(FEEDBACK))
    stream = trainer.batches(0)
    first = next(stream)
    assert first["fb_latents"].shape == (feedback.BATCH, 1, 128, FEEDBACK.stereo_latent_dim)
    assert first["fb_cond"].shape == (feedback.BATCH, 128)
    assert len(trainer.feedback.latents) == feedback.WINDOWS_PER_REFRESH
    for _ in range(25):  # the refresh at draw 25 adds four more
        next(stream)
    assert len(trainer.feedback.latents) == 2 * feedback.WINDOWS_PER_REFRESH
    lines = [json.loads(x) for x in open(tmp_path / "run" / feedback.LOG_NAME)]
    assert [x["step"] for x in lines] == [0, 25]
    for line in lines:  # the generated windows' own click rates, as measured
        assert len(line["requested"]) == len(line["measured"]) == feedback.WINDOWS_PER_REFRESH
        assert all(1.0 <= m <= 7.5 for m in line["measured"]), line

    before = float(trainer._condition_error(first["fb_latents"], first["fb_cond"]))
    logs = tf.function(trainer.train_step)(first)  # its losses come from the weights before it
    assert float(logs["d_cond_fb"]) == pytest.approx(before, rel=1e-4)
    unfed = {k: v for k, v in first.items() if not k.startswith("fb_")}
    assert "d_cond_fb" not in tf.function(trainer.train_step)(unfed)


def test_with_feedback_the_regressor_learns_how_generated_windows_sound(tmp_path):
    """Real labels depend on channels 0 and D, the generated audio's density on channel 1: only a
    regressor that learns from measured generated windows reads those right."""
    store = _store(tmp_path / "store", FEEDBACK)
    trainers = {}
    for every in (25, 0):
        preset = FEEDBACK.with_overrides(condition_feedback_every=every)
        trainers[every] = G.GANTrainer(preset, str(tmp_path / f"run{every}"), store,
                                       decode_fn=click_decoder(preset))
        loop.fit(trainers[every], steps=150, progress=False, preview=False)
    fed = trainers[25].feedback
    latents = np.stack(fed.latents)[:, None]
    values = np.stack(fed.values)
    errors = {every: float(t._condition_error(latents, values)) for every, t in trainers.items()}
    assert errors[25] < 0.5 * errors[0], errors


def test_a_resumed_run_takes_the_feedback_setting_of_the_request(tmp_path):
    """It changes no network, so an older run (saved without feedback) resumes under a preset that
    has it, while an architecture change is still refused."""
    from musika_tf.training.run import run_preset

    old = FEEDBACK.with_overrides(condition_feedback_every=0)
    run_preset(str(tmp_path), old)  # a new run: saves its preset
    assert run_preset(str(tmp_path), FEEDBACK).gan.condition_feedback_every == 25
    assert run_preset(str(tmp_path), old).gan.condition_feedback_every == 0
    with pytest.raises(ValueError, match="base_channels"):
        run_preset(str(tmp_path), FEEDBACK.with_overrides(base_channels=16))
