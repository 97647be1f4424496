"""Latent-GAN training stage: data crops, one step per variant, EMA, NaN, resume, fine-tune, learning."""

from __future__ import annotations

import os
import shutil

import numpy as np
import keras
import pytest
import tensorflow as tf

from musika_tf import config, coordinates, gan
from musika_tf.data.latents import LatentWriter
from musika_tf.layers import reseed_noise
from musika_tf.training import gan as G
from musika_tf.training import loop

TINY = config.get_preset("tiny", save_every=10_000, log_every=10)
# The paper variant at tiny widths, with the reconstruction head and density conditioning.
TINY22 = config.get_preset("paper22", base_channels=8, coorddepth=16, latent_dim=16, latlen=128,
                           max_lat_len=256, batch_size=2, critic_reconstruction=True,
                           cond="density", save_every=10_000)


def write_store(folder, preset, chunks=4, lengths=None, seed=0, make=None) -> str:
    """A latent store of random (or `make(rng, length)`) chunks with density and tempo."""
    rng = np.random.default_rng(seed)
    writer = LatentWriter(str(folder), "chunks", "test", preset.to_dict())
    for i, length in enumerate(lengths or [preset.gan.max_lat_len] * chunks):
        latents = (make(rng, length) if make else
                   rng.standard_normal((length, preset.stereo_latent_dim)))
        writer.add(latents, f"song{i}.wav", density=rng.uniform(0, 1, length),
                   tempo=rng.uniform(0, 1))
    return writer.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("latents") / "store", TINY)


def _trainer(preset, store_dir, run_dir, **kw) -> G.GANTrainer:
    return G.GANTrainer(preset, str(run_dir), store_dir, **kw)


def _weights(model) -> list:
    return [np.array(w) for w in model.weights]


def _assert_same(a: list, b: list):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# Data


def test_crops_are_windows_of_the_stored_arrays_with_aligned_conditions(tmp_path):
    latlen = 16
    lengths = [10, 40, 16]  # the first is too short and must never be drawn
    entries = [{"latents": np.arange(n * 4, dtype=np.float32).reshape(n, 4) + 1000 * i,
                "density": np.arange(n, dtype=np.float32) / 100 + i, "tempo": np.float32(0.25 * i),
                "beat_phase": np.mod(np.arange(n) * 0.37 + 0.1 * i, 1.0).astype(np.float32)}
               for i, n in enumerate(lengths)]
    rng = np.random.default_rng(0)
    for cond in ("density", "tempo"):
        crops = G.LatentCrops(entries, latlen, cond)
        real, curve = crops.sample(64, rng)
        channels = 1 if cond == "density" else 3
        assert real.shape == (64, latlen, 4) and curve.shape == (64, latlen, channels)
        source = (real[:, 0, 0] // 1000).astype(int)
        assert set(source) == {1, 2}
        start = (real[:, 0, 0] % 1000).astype(int) // 4
        assert start.max() > 10  # offsets cover the array, not only its start
        for k in range(64):
            expect = entries[source[k]]["latents"][start[k]:start[k] + latlen]
            np.testing.assert_array_equal(real[k], expect)
            entry = entries[source[k]]
            if cond == "density":
                np.testing.assert_allclose(curve[k, :, 0], entry["density"][start[k]:][:latlen])
            else:
                np.testing.assert_array_equal(curve[k, :, 0], 0.25 * source[k])
                angle = 2 * np.pi * entry["beat_phase"][start[k]:][:latlen]
                np.testing.assert_allclose(curve[k, :, 1:], np.stack([np.cos(angle), np.sin(angle)], -1),
                                           atol=1e-6)
    with pytest.raises(ValueError, match="beat_phase"):
        G.LatentCrops([{k: v for k, v in e.items() if k != "beat_phase"} for e in entries], latlen, "tempo")
    assert G.LatentCrops(entries, latlen).sample(2, rng)[1] is None
    with pytest.raises(ValueError, match="at least latlen"):
        G.LatentCrops(entries[:1], latlen)
    with pytest.raises(ValueError, match="no density"):
        G.LatentCrops([{"latents": entries[1]["latents"]}], latlen, "density")


# (entry, start) of the 12 crops that `LatentCrops.sample(4, default_rng(2024))` x 3 drew from
# `_coded_store` with the eager (read-all-into-RAM) implementation, before stores were memory-mapped.
EAGER_CROPS = [(5, 118), (3, 172), (3, 13), (5, 18), (0, 33), (0, 42), (3, 138), (0, 45), (0, 4),
               (3, 168), (0, 46), (3, 138)]


def _coded_store(folder) -> str:
    """A store whose latent ``[t, 0]`` of entry i is ``1000 i + t`` (entry 1 is too short for
    latlen 128, entry 4 is validation), with density and tempo conditions."""
    writer = LatentWriter(str(folder), "chunks", "test", TINY.to_dict())
    for i, n in enumerate([200, 100, 128, 300, 129, 256]):
        latents = np.zeros((n, TINY.stereo_latent_dim), np.float32)
        latents[:, 0] = 1000 * i + np.arange(n)
        writer.add(latents, f"s{i}.wav", split="validation" if i == 4 else "train",
                   density=np.arange(n, dtype=np.float32) / n, tempo=np.float32(0.1 * i),
                   beat_phase=np.mod(np.arange(n) * 0.3, 1.0).astype(np.float32))
    return writer.close()


@pytest.mark.parametrize("cond", ["none", "density", "tempo"])
def test_store_crops_are_memory_mapped_and_drawn_as_before(tmp_path, cond):
    from musika_tf.data.latents import load_all

    folder = _coded_store(tmp_path / "store")
    preset = TINY.with_overrides(cond=cond)
    lazy = G.LatentCrops.from_store(folder, preset)
    assert len(lazy.latents) == 4 and all(isinstance(x, np.memmap) for x in lazy.latents)
    eager = G.LatentCrops(load_all(folder, "train"), preset.gan.latlen, cond)
    assert not any(isinstance(x, np.memmap) for x in eager.latents)
    rng_lazy, rng_eager, drawn = np.random.default_rng(2024), np.random.default_rng(2024), []
    for _ in range(3):
        (real, curve), (real_e, curve_e) = lazy.sample(4, rng_lazy), eager.sample(4, rng_eager)
        assert type(real) is np.ndarray and real.dtype == np.float32
        np.testing.assert_array_equal(real, real_e)
        if cond == "none":
            assert curve is None and curve_e is None
        else:
            np.testing.assert_array_equal(curve, curve_e)
        drawn += [(int(x // 1000), int(x % 1000)) for x in real[:, 0, 0]]
    assert drawn == EAGER_CROPS


def test_a_version_1_store_is_stale_and_named_for_re_encoding(tmp_path):
    import json

    from musika_tf.data import latents as store_lib

    folder = _coded_store(tmp_path / "store")
    index_path = tmp_path / "store" / store_lib.INDEX
    index = json.loads(index_path.read_text())
    assert store_lib.is_current(folder, index["fingerprint"])
    index_path.write_text(json.dumps({**index, "version": 1}))
    assert not store_lib.is_current(folder, index["fingerprint"])  # training re-encodes it
    with pytest.raises(ValueError, match="not a musika-latents v2 store .*re-encode"):
        G.LatentCrops.from_store(folder, TINY)


def test_batches_are_seeded_and_v44_swaps_channels(store):
    crops = G.LatentCrops.from_store(store, TINY)
    a, b = G.make_batch(TINY, crops, 7), G.make_batch(TINY, crops, 7)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["real"].shape == (4, 128, 32) and a["coords"].shape == (4, 128, 32)
    assert "cond" not in a
    assert not np.array_equal(a["coords"], G.make_batch(TINY, crops, 8)["coords"])
    x = np.arange(6.0).reshape(1, 6)
    np.testing.assert_array_equal(G.swap_channels(x), [[3, 4, 5, 0, 1, 2]])

    v22 = TINY.with_overrides(variant="v22")  # same crops, never swapped
    flags = []
    for draw in range(40):
        real, plain = (G.make_batch(p, crops, draw)["real"] for p in (TINY, v22))
        flags.append(not np.array_equal(real, plain))
        np.testing.assert_array_equal(real, G.swap_channels(plain) if flags[-1] else plain)
    assert 8 < sum(flags) < 32


# ---------------------------------------------------------------------------------------------
# One step of each variant; EMA; NaN guard; mixed precision


def _step(trainer, draw=0) -> dict:
    logs = trainer.train_step(G.make_batch(trainer.preset, trainer.crops, draw))
    return {k: float(v) for k, v in logs.items()}


def test_v44_step_is_finite_and_ema_follows_its_formula(store, tmp_path):
    trainer = _trainer(TINY, store, tmp_path)
    assert set(trainer.models()) == {"generator", "critic", "gen_ema"}
    _assert_same(_weights(trainer.gen_ema), _weights(trainer.generator))  # EMA starts at G
    ema_before = _weights(trainer.gen_ema)
    critic_before = _weights(trainer.critic)
    logs = _step(trainer)
    assert logs.pop("finite") == 1.0 and logs.pop("applied") == 1.0
    assert set(logs) == {"r1", "gp_weight", "d_loss_r", "d_loss_f", "d_loss", "g_loss", "lr"}
    assert all(np.isfinite(v) for v in logs.values())
    np.testing.assert_allclose(
        logs["d_loss"], 0.5 * (logs["d_loss_r"] + logs["d_loss_f"]) + logs["gp_weight"] * logs["r1"],
        rtol=1e-5)
    # the switch starts at -1 and moved by 1e-4 (clipped to [-1, 0]) before the penalty used it
    switch = float(trainer.switch.numpy())
    assert switch in (pytest.approx(-1.0), pytest.approx(-1.0 + 1e-4))
    assert logs["gp_weight"] == pytest.approx(-10.0 * switch, rel=1e-6)
    assert int(trainer.finished_steps.numpy()) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(critic_before, _weights(trainer.critic)))
    d = TINY.train.ema_decay
    for ema_old, ema_new, gen in zip(ema_before, _weights(trainer.gen_ema), _weights(trainer.generator)):
        np.testing.assert_allclose(ema_new, d * ema_old + (1 - d) * gen, rtol=1e-5, atol=1e-7)


def test_v22_step_with_reconstruction_head_and_condition(tmp_path):
    store = write_store(tmp_path / "store", TINY22, chunks=2)
    trainer = _trainer(TINY22, store, tmp_path / "run")
    assert trainer.critic_rec is not None
    n_critic = len(trainer.critic.trainable_variables)
    assert len(trainer.trainable_variables_for("critic")) == (
        n_critic + len(trainer.critic_rec.trainable_variables))
    rec_before = _weights(trainer.critic_rec)
    logs = _step(trainer)
    assert logs.pop("finite") == 1.0 and logs.pop("applied") == 1.0
    assert set(logs) == {"gp", "d_loss_r", "d_loss_f", "rec_loss", "d_loss", "g_loss", "lr"}
    assert all(np.isfinite(v) for v in logs.values())
    expect = 0.5 * (logs["d_loss_r"] + logs["d_loss_f"]) + 10 * logs["gp"] + 10 * logs["rec_loss"]
    np.testing.assert_allclose(logs["d_loss"], expect, rtol=1e-5)
    assert any(not np.array_equal(a, b) for a, b in zip(rec_before, _weights(trainer.critic_rec)))
    assert "r1_switch" in trainer.extra_state()


def test_nan_step_changes_nothing(store, tmp_path):
    trainer = _trainer(TINY, store, tmp_path)
    _step(trainer)  # build optimiser slots and move the switch off its start
    state = [_weights(m) for m in trainer.models().values()]
    opt_state = [np.array(v) for o in trainer.optimizers().values() for v in o.variables]
    switch = float(trainer.switch.numpy())
    batch = G.make_batch(TINY, trainer.crops, 1)
    batch["real"] = batch["real"] * np.nan
    assert not bool(trainer.train_step(batch)["finite"])
    for before, model in zip(state, trainer.models().values()):
        _assert_same(before, _weights(model))
    _assert_same(opt_state, [np.array(v) for o in trainer.optimizers().values() for v in o.variables])
    assert float(trainer.switch.numpy()) == switch
    assert int(trainer.finished_steps.numpy()) == 1


def test_mixed_precision_step_uses_loss_scaling(store, tmp_path):
    trainer = _trainer(TINY.with_overrides(mixed_precision="on"), store, tmp_path)
    assert isinstance(trainer.g_opt, keras.optimizers.LossScaleOptimizer)
    assert trainer.critic.get_layer("1c").compute_dtype == "float16"
    assert trainer.generator.weights[0].dtype == "float32"
    logs = _step(trainer)
    assert logs.pop("finite") == 1.0 and all(np.isfinite(v) for v in logs.values())


def test_a_step_the_loss_scaler_skips_advances_neither_ema_nor_counter(store, tmp_path):
    trainer = _trainer(TINY.with_overrides(mixed_precision="on"), store, tmp_path)
    trainer.build_optimizers()
    trainer.g_opt.dynamic_scale.assign(2.0 ** 120)  # certain float16 overflow of the gradients
    trainer.d_opt.dynamic_scale.assign(2.0 ** 120)
    ema_before = _weights(trainer.gen_ema)
    logs = _step(trainer)
    assert logs["finite"] == 1.0 and logs["applied"] == 0.0
    assert int(trainer.finished_steps.numpy()) == 0
    _assert_same(ema_before, _weights(trainer.gen_ema))
    assert float(trainer.g_opt.dynamic_scale.numpy()) < 2.0 ** 120  # the scaler backed off


# ---------------------------------------------------------------------------------------------
# Conditioning


def test_generator_output_follows_the_density_condition(tmp_path):
    store = write_store(tmp_path / "store", TINY22, chunks=2)
    trainer = _trainer(TINY22, store, tmp_path / "run")
    batch = G.make_batch(TINY22, trainer.crops, 0)
    assert batch["cond"].shape == (2, 128, 1)
    _step(trainer)  # noise weights move off zero, so the reseeding matters
    coords = batch["coords"]

    def generate(curve):
        reseed_noise(trainer.generator, 5)
        return trainer.generator(gan.append_condition(coords, curve), training=False).numpy()

    low, high = np.full((2, 128), 0.1, np.float32), np.full((2, 128), 0.9, np.float32)
    np.testing.assert_array_equal(generate(low), generate(low))
    assert np.abs(generate(low) - generate(high)).mean() > 1e-3


def test_condition_regressor_learns_the_condition_from_latents(tmp_path):
    """With condition_loss_weight > 0 a regressor (trained on reals by the critic's optimiser) learns
    a density that is a function of the latents, and its error on fakes enters the generator loss."""
    preset = config.get_preset("tiny", cond="density", condition_loss_weight=10.0, batch_size=8,
                               lr=1e-3, save_every=10_000)
    rng = np.random.default_rng(0)
    writer = LatentWriter(str(tmp_path / "store"), "chunks", "test", preset.to_dict())
    for i in range(4):
        latents = rng.standard_normal((preset.gan.max_lat_len, preset.stereo_latent_dim))
        signal = latents[:, 0] + latents[:, preset.ae.latent_dim]  # the same after a left/right swap
        writer.add(latents, f"song{i}.wav", density=1.0 / (1.0 + np.exp(-signal)))
    trainer = _trainer(preset, writer.close(), tmp_path / "run")
    assert "cond_regressor" in trainer.models()
    critic_vars = {id(v) for v in trainer.trainable_variables_for("critic")}
    assert all(id(v) in critic_vars for v in trainer.regressor.trainable_variables)
    step = tf.function(trainer.train_step)
    errors = []
    for draw in range(150):
        logs = step(G.make_batch(preset, trainer.crops, draw))
        errors.append(float(logs["d_cond"]))
        assert np.isfinite(float(logs["g_cond"]))
    variance = np.var(1.0 / (1.0 + np.exp(-np.sqrt(2.0) * rng.standard_normal(10_000))))
    assert np.mean(errors[:5]) > 0.7 * variance  # starts near chance
    assert np.mean(errors[-10:]) < 0.4 * variance  # explains most of the condition's variance
    unregressed = config.get_preset("tiny", cond="density")
    assert "cond_regressor" not in _trainer(unregressed, trainer.crops and str(tmp_path / "store"),
                                            tmp_path / "plain").models()


# ---------------------------------------------------------------------------------------------
# Checkpoints: resume, fine-tuning, previews


def _state(trainer) -> dict:
    return {"generator": _weights(trainer.generator), "gen_ema": _weights(trainer.gen_ema),
            "critic": _weights(trainer.critic),
            "opt": [np.array(v) for o in trainer.optimizers().values() for v in o.variables],
            "switch": [trainer.switch.numpy()], "steps": [trainer.finished_steps.numpy()]}


@pytest.fixture(scope="module")
def two_step_run(store, tmp_path_factory) -> tuple[str, dict]:
    """A run folder checkpointed after 2 steps by `loop.fit`, and the trainer's state then."""
    run = str(tmp_path_factory.mktemp("runs") / "two")
    trainer = _trainer(TINY, store, run)
    loop.fit(trainer, steps=2, progress=False, preview=False)
    return run, _state(trainer)


def test_resume_is_identical_to_an_uninterrupted_run(store, two_step_run, tmp_path):
    straight = _trainer(TINY, store, tmp_path / "straight")
    loop.fit(straight, steps=4, progress=False, preview=False)
    shutil.copytree(two_step_run[0], tmp_path / "resumed")
    resumed = _trainer(TINY, store, tmp_path / "resumed")
    loop.fit(resumed, steps=4, progress=False, preview=False)
    a, b = _state(straight), _state(resumed)
    assert int(b["steps"][0]) == 4
    for key in a:
        _assert_same(a[key], b[key])


def test_fine_tune_starts_from_another_run_with_fresh_optimisers(store, two_step_run, tmp_path):
    base_dir, base = two_step_run
    tuned = _trainer(TINY, store, tmp_path / "tuned", init_from=base_dir, lr=3e-5)
    for name in ("generator", "critic", "gen_ema", "switch"):
        _assert_same(base[name], _state(tuned)[name])
    assert int(tuned.g_opt.iterations) == 0 and int(tuned.finished_steps.numpy()) == 0
    tuned.batches()  # the learning rate is (re)applied when batches start, after any restore
    assert float(tuned.g_opt.learning_rate) == pytest.approx(3e-5)
    with pytest.raises(FileNotFoundError):
        _trainer(TINY, store, tmp_path / "x", init_from=str(tmp_path / "nothing"))
    wider = TINY.with_overrides(base_channels=16)
    with pytest.raises(ValueError, match="does not fit"):
        _trainer(wider, store, tmp_path / "y", init_from=base_dir)


def test_fine_tune_adds_a_condition_regressor_to_a_run_without_one(store, tmp_path):
    plain = TINY.with_overrides(cond="density")
    base = _trainer(plain, store, tmp_path / "base")
    loop.fit(base, steps=1, progress=False, preview=False)
    tuned = _trainer(plain.with_overrides(condition_loss_weight=10.0), store, tmp_path / "tuned",
                     init_from=str(tmp_path / "base"))
    _assert_same(_weights(base.generator), _weights(tuned.generator))
    _assert_same(_weights(base.critic), _weights(tuned.critic))
    assert "cond_regressor" in tuned.models() and "cond_regressor" not in base.models()


def test_preview_writes_latents_audio_and_png(store, tmp_path):
    trainer = _trainer(TINY, store, tmp_path, decode_fn=lambda z: np.repeat(z[:, :2], 64, 0) * 0.1)
    out = tmp_path / "preview"
    trainer.preview(str(out))
    names = sorted(os.listdir(out))
    assert names == sorted([f"latents{i}.npy" for i in range(1, 5)] +
                           [f"out{i}.wav" for i in range(1, 5)] + ["output.png"])
    first = np.load(out / "latents1.npy")
    assert first.shape == (128, 32)
    trainer.preview(str(tmp_path / "again"))  # fixed seeds: previews of one state repeat
    np.testing.assert_array_equal(first, np.load(tmp_path / "again" / "latents1.npy"))
    assert not np.array_equal(first, np.load(out / "latents2.npy"))


# ---------------------------------------------------------------------------------------------
# Learning


MEANS = np.where(np.arange(32) % 2, 1.0, -1.0)  # per-channel means of the synthetic latents
STD = 0.25


def _stat_errors(latents: np.ndarray) -> tuple[float, float]:
    """Mean over channels of |mean - MEANS| and |std - STD| of windows ``[N, T, 32]``."""
    x = latents.reshape(-1, latents.shape[-1])
    return float(np.abs(x.mean(0) - MEANS).mean()), float(np.abs(x.std(0) - STD).mean())


def test_gan_moves_generated_statistics_towards_the_data(tmp_path):
    """Latents are N(MEANS[c], STD^2), i.i.d.; after 600 steps (~25 s) the EMA generator's per-
    channel mean error must fall below 35% of its initial value and mean+std error below 60%."""
    preset = TINY.with_overrides(ema_decay=0.98)
    store = write_store(tmp_path / "store", preset, chunks=16,
                        make=lambda rng, n: MEANS + STD * rng.standard_normal((n, 32)))
    trainer = _trainer(preset, store, tmp_path / "run", lr=1e-3)
    coords = coordinates.training_coordinates(preset, 32, 123)

    def errors(model):
        reseed_noise(model, 0)
        return _stat_errors(model(coords, training=False).numpy()[:, 0])

    mean0, std0 = errors(trainer.gen_ema)
    assert mean0 > 0.5  # the untrained generator is far from the data
    loop.fit(trainer, steps=600, progress=False, preview=False)
    mean1, std1 = errors(trainer.gen_ema)
    assert mean1 < 0.35 * mean0, (mean0, mean1)
    assert mean1 + std1 < 0.6 * (mean0 + std0), (mean0, std0, mean1, std1)


# ---------------------------------------------------------------------------------------------
# The compiled paths a GPU run takes, for a few steps on the CPU


@pytest.mark.parametrize("overrides", [{"mixed_precision": "on"}, {"xla": True}],
                         ids=["mixed_float16 tf.function", "xla jit_compile"])
def test_compiled_training_steps_run_and_checkpoint(store, tmp_path, overrides):
    preset = TINY.with_overrides(save_every=3, log_every=1, **overrides)
    trainer = _trainer(preset, store, tmp_path)
    before = _weights(trainer.generator)
    logs = loop.fit(trainer, steps=3, progress=False, preview=False)
    assert all(np.isfinite(v) for v in logs.values())
    assert int(trainer.finished_steps.numpy()) == 3
    assert any(not np.array_equal(a, b) for a, b in zip(before, _weights(trainer.generator)))
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-3")


# ---------------------------------------------------------------------------------------------
# Matching-aware critic (gan.critic_mismatch_weight)

MATCHING = TINY.with_overrides(cond="density", critic_mismatch_weight=1.0, lr=1e-3)


def _condition_carrying_store(folder, preset):
    """Entries of four constant densities whose latents are that density (plus a little noise):
    the condition can be read off the music."""
    rng = np.random.default_rng(0)
    writer = LatentWriter(str(folder), "chunks", "test", preset.to_dict())
    length = preset.gan.max_lat_len
    for i, level in enumerate((0.1, 0.4, 0.7, 1.0)):
        latents = level + 0.05 * rng.standard_normal((length, preset.stereo_latent_dim))
        writer.add(latents, f"s{i}.wav", density=np.full(length, level), tempo=0.5)
    return writer.close()


def test_the_mismatch_term_enters_the_critic_loss_with_its_weight(tmp_path):
    store = write_store(tmp_path / "store", MATCHING, chunks=2)
    logs = {}
    for w in (0.0, 1.0):
        trainer = G.GANTrainer(MATCHING.with_overrides(critic_mismatch_weight=w),
                               str(tmp_path / f"run{w}"), store)
        batch = G.make_batch(trainer.preset, trainer.crops, 0)
        real = tf.expand_dims(tf.constant(batch["real"]), 1)
        fake_logit = tf.zeros((MATCHING.train.batch_size, 1))
        logs[w] = trainer._critic_losses(real, fake_logit, batch["cond"])
    assert "d_loss_m" not in logs[0.0] and float(logs[1.0]["d_loss_m"]) > 0
    np.testing.assert_allclose(float(logs[1.0]["d_loss"]) - float(logs[0.0]["d_loss"]),
                               0.5 * float(logs[1.0]["d_loss_m"]), rtol=1e-4)


def test_a_matching_aware_critic_learns_which_condition_fits_the_music(tmp_path):
    store = _condition_carrying_store(tmp_path / "store", MATCHING)
    margins = {}
    for w in (0.0, 1.0):  # the same training without the mismatch term is the control
        trainer = G.GANTrainer(MATCHING.with_overrides(critic_mismatch_weight=w),
                               str(tmp_path / f"run{w}"), store)
        batch = G.make_batch(MATCHING, trainer.crops, 10_000)  # a batch the training never drew
        real = tf.expand_dims(tf.constant(batch["real"]), 1)
        other = np.roll(batch["cond"], 1, axis=0)
        loop.fit(trainer, steps=200, progress=False, preview=False)
        fits = trainer._critic(real, batch["cond"]).numpy()
        misfits = trainer._critic(real, other).numpy()
        margins[w] = float(np.mean(fits - misfits))
    assert margins[1.0] > 0.3 and margins[1.0] > margins[0.0] + 0.2, margins


# ---------------------------------------------------------------------------------------------
# Join critic (gan.join_critic_weight)

JOINED = TINY.with_overrides(cond="density", join_critic_weight=0.5)


def test_the_join_span_is_centred_on_the_generators_join():
    x = np.arange(2 * 128, dtype=np.float32).reshape(2, 1, 128, 1)
    span = gan.join_span(tf.constant(x)).numpy()
    assert span.shape == (2, 1, gan.JOIN_SPAN, 1)
    np.testing.assert_array_equal(span[0, 0, :, 0], np.arange(64 - gan.JOIN_SPAN // 2,
                                                             64 + gan.JOIN_SPAN // 2))
    curves = np.arange(2 * 128 * 3, dtype=np.float32).reshape(2, 128, 3)
    np.testing.assert_array_equal(gan.join_span(curves)[1], curves[1, 56:72])
    logit = gan.build_join_critic(JOINED)(np.zeros((2, 1, gan.JOIN_SPAN, JOINED.stereo_latent_dim + 1),
                                                  np.float32))
    assert tuple(logit.shape) == (2, 1)


def test_a_local_span_starts_where_asked_in_every_window():
    x = np.arange(3 * 128 * 2, dtype=np.float32).reshape(3, 1, 128, 2)
    starts = np.array([0, 57, 128 - gan.JOIN_SPAN], np.int32)
    span = np.asarray(gan.local_span(tf.constant(x), starts))
    assert span.shape == (3, 1, gan.JOIN_SPAN, 2)
    for b, s in enumerate(starts):
        np.testing.assert_array_equal(span[b, 0], x[b, 0, s:s + gan.JOIN_SPAN])
    np.testing.assert_array_equal(np.asarray(gan.local_span(x[:, 0], starts))[1], x[1, 0, 57:73])


def test_a_local_critic_has_its_own_weights_learns_random_spans_and_is_exported(tmp_path):
    from musika_tf.training.export_run import restore_gan

    preset = JOINED.with_overrides(local_critic_weight=0.5)
    store = write_store(tmp_path / "store", preset, chunks=2)
    trainer = G.GANTrainer(preset, str(tmp_path / "run"), store)
    assert trainer.local_critic is not trainer.join_critic and "local_critic" in trainer.models()
    batches = [next(trainer.batches(draw)) for draw in (0, 1, 0)]
    starts = [b["local_starts"] for b in batches]
    assert starts[0].shape == (preset.train.batch_size,) and starts[0].dtype == np.int32
    assert all(0 <= s.min() and s.max() <= preset.gan.latlen - gan.JOIN_SPAN for s in starts)
    np.testing.assert_array_equal(starts[0], starts[2])  # a pure function of the draw
    assert not np.array_equal(starts[0], starts[1])
    assert "local_starts" not in next(G.GANTrainer(JOINED, str(tmp_path / "plain"), store).batches(0))
    join_before = [w.copy() for w in trainer.join_critic.get_weights()]
    local_before = [w.copy() for w in trainer.local_critic.get_weights()]
    logs = loop.fit(trainer, steps=2, progress=False, preview=False)
    assert {"g_join", "g_local_critic", "d_local_critic_r", "d_local_critic_f"} <= set(logs)
    assert "g_local" not in logs and all(np.isfinite(v) for v in logs.values())
    for before, critic in ((join_before, trainer.join_critic), (local_before, trainer.local_critic)):
        assert any(not np.allclose(a, b) for a, b in zip(before, critic.get_weights()))
    models, _, _ = restore_gan(preset, str(tmp_path / "run"))
    for a, b in zip(models["local_critic"].get_weights(), trainer.local_critic.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_join_critic_step_trains_it_and_it_is_saved_exported_and_optional_at_init(tmp_path):
    from musika_tf.training.export_run import restore_gan

    store = write_store(tmp_path / "store", JOINED, chunks=2)
    plain = G.GANTrainer(TINY.with_overrides(cond="density"), str(tmp_path / "plain"), store)
    loop.fit(plain, steps=1, progress=False, preview=False)
    trainer = G.GANTrainer(JOINED, str(tmp_path / "run"), store, init_from=str(tmp_path / "plain"))
    before = [w.copy() for w in trainer.join_critic.get_weights()]  # fresh: the source had none
    logs = loop.fit(trainer, steps=2, progress=False, preview=False)
    assert {"d_join_r", "d_join_f", "g_join"} <= set(logs) and all(np.isfinite(v) for v in logs.values())
    assert any(not np.allclose(a, b) for a, b in zip(before, trainer.join_critic.get_weights()))
    assert "join_critic" in trainer.models()
    models, _, _ = restore_gan(JOINED, str(tmp_path / "run"))  # what an export writes
    for a, b in zip(models["join_critic"].get_weights(), trainer.join_critic.get_weights()):
        np.testing.assert_array_equal(a, b)
