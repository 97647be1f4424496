"""Autoencoder training stages and the encode/decode paths (tiny preset, CPU, seconds)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from musika_tf import config, encoding
from musika_tf.autoencoder import Autoencoder
from musika_tf.data import datasets
from musika_tf.data import latents as store
from musika_tf.data.audio_cache import build_audio_cache
from musika_tf.training import ae, loop

PRESET = config.get_preset("tiny", lr=1e-3, save_every=1000, log_every=10)
RATE = PRESET.audio.sample_rate


def _music(seconds: float, seed: int = 0) -> np.ndarray:
    """A few seconds of stereo tones with vibrato and tremolo."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    left = sum(0.15 * np.sin(2 * np.pi * f * t + 3 * np.sin(0.5 * t)) for f in rng.uniform(150, 900, 3))
    left *= 1 + 0.5 * np.sin(2 * np.pi * 1.3 * t)
    return np.stack([left, 0.7 * left], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ae_audio")
    sf.write(root / "a.wav", _music(8.0), RATE)
    return build_audio_cache(datasets.read_folder(str(root)), str(root / "cache"), RATE, progress=False)


def test_crop_is_one_encoder_chunk():
    frames = 1 + (ae.crop_samples(PRESET) - 4 * PRESET.audio.hop) // PRESET.audio.hop
    assert frames == PRESET.ae.chunk_frames


def test_phase1_overfits_a_few_seconds(files, tmp_path):
    trainer = ae.AE1Phase1Trainer(PRESET, str(tmp_path), files)
    batch = next(trainer.batches())
    spec = tf.convert_to_tensor(batch["wave"])
    from musika_tf import audio as audio_lib

    s = audio_lib.log_magnitude(spec, PRESET.audio)
    mag, _ = trainer.ae.decoder(trainer.ae.encoder(ae.encoder_input(s)))
    initial = float(np.mean(np.abs(mag - s)))
    logs = loop.fit(trainer, 150, progress=False, preview=False)
    assert logs["l1"] < 0.25 * initial, (initial, logs["l1"])


def test_phase2_and_level2_steps_are_finite(files, tmp_path):
    p2 = ae.AE1Phase2Trainer(PRESET, str(tmp_path / "p2"), files)
    logs = p2.train_step(next(p2.batches()))
    assert bool(logs.pop("finite"))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert {"d_real", "d_fake", "adv", "rec", "ms"} <= set(logs)
    l2 = ae.AE2Trainer(PRESET, str(tmp_path / "ae2"), files)
    before = [w.copy() for w in l2.ae.encoder.get_weights()]
    logs = l2.train_step(next(l2.batches()))
    assert bool(logs.pop("finite")) and np.isfinite(float(logs["latent_l1"]))
    for a, b in zip(before, l2.ae.encoder.get_weights()):  # level 1 stays frozen
        np.testing.assert_array_equal(a, b)


def test_resume_restores_identical_weights(files, tmp_path):
    first = ae.AE1Phase1Trainer(PRESET, str(tmp_path), files)
    loop.fit(first, 3, progress=False, preview=False)
    second = ae.AE1Phase1Trainer(PRESET, str(tmp_path), files)
    loop.fit(second, 3, progress=False, preview=False)  # restores, nothing left to train
    for a, b in zip(first.ae.decoder.get_weights(), second.ae.decoder.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_crop_order_resumes_where_it_stopped(files):
    """Crops from `start` on are the tail of the crops from 0 (batches are keyed by step)."""
    from musika_tf.data.audio_cache import random_crops

    size = ae.crop_samples(PRESET)
    whole = random_crops(files, size, seed=5)
    first = [next(whole) for _ in range(7)]
    tail = random_crops(files, size, seed=5, start=4)
    for expected in first[4:]:
        np.testing.assert_array_equal(next(tail), expected)


def test_sources_at_the_preset_rate_are_read_in_place_others_decoded_once(tmp_path):
    from musika_tf.data.audio_cache import random_crops, read_cached

    music = _music(3.0)
    sf.write(tmp_path / "pcm16.wav", music, RATE, subtype="PCM_16")
    sf.write(tmp_path / "pcm24.flac", music, RATE, subtype="PCM_24")
    sf.write(tmp_path / "float.wav", music, RATE, subtype="FLOAT")  # peak unknown: decoded
    sf.write(tmp_path / "other_rate.wav", music[::2], RATE // 2)  # needs resampling: decoded
    sf.write(tmp_path / "short.wav", music[:1000], RATE)
    items, cache = datasets.read_folder(str(tmp_path)), tmp_path / "cache"
    summary = datasets.LoadSummary()
    files = build_audio_cache(items, str(cache), RATE, ae.crop_samples(PRESET), False, summary)
    by_name = {os.path.basename(f.item.path): f for f in files}
    assert sorted(by_name) == ["float.wav", "other_rate.wav", "pcm16.wav", "pcm24.flac"]
    assert [p for p, _ in summary.skipped] == [str(tmp_path / "short.wav")]
    assert by_name["pcm16.wav"].in_place and by_name["pcm24.flac"].in_place
    assert by_name["pcm16.wav"].path == str(tmp_path / "pcm16.wav")
    assert not by_name["float.wav"].in_place and not by_name["other_rate.wav"].in_place
    assert len(list(cache.glob("*.npy"))) == 2
    source, _ = sf.read(tmp_path / "pcm16.wav", dtype="float32")
    np.testing.assert_array_equal(read_cached(by_name["pcm16.wav"], 1000, 500), source[1000:1500])
    crop = next(random_crops([by_name["pcm24.flac"]], 4000, seed=1, mono=False))
    rng = np.random.default_rng([1, 0])  # crop 0's draws: the file, then the offset
    rng.choice(1, p=[1.0])
    offset = int(rng.integers(0, len(source) - 4000 + 1))
    np.testing.assert_allclose(crop, source[offset:offset + 4000], atol=1e-4)  # 24-bit of 16-bit


def test_audio_cache_budget_stops_before_decoding_and_names_the_fix(tmp_path):
    from musika_tf.data.audio_cache import CacheBudgetError, decoded_bytes

    music = _music(3.0)
    sf.write(tmp_path / "in_place.wav", music, RATE)
    sf.write(tmp_path / "other_rate.wav", music[::2], RATE // 2)
    items, cache = datasets.read_folder(str(tmp_path)), tmp_path / "cache"
    need = decoded_bytes(items[1], RATE)
    assert need == len(music) // 2 * 2 * 4  # 1.5 s of int16 stereo at RATE
    with pytest.raises(CacheBudgetError, match="--audio-cache-gb") as error:
        build_audio_cache(items, str(cache), RATE, progress=False, budget_bytes=need - 1)
    assert "other_rate.wav" in str(error.value) and "read in place" in str(error.value)
    assert not list(cache.glob("*.npy"))  # nothing written
    in_place = build_audio_cache(items[:1], str(cache), RATE, progress=False, budget_bytes=0)
    assert [f.in_place for f in in_place] == [True]  # sources read in place cost no budget
    files = build_audio_cache(items, str(cache), RATE, progress=False, budget_bytes=need)
    assert len(files) == 2 and len(list(cache.glob("*.npy"))) == 1
    (tmp_path / "copy.wav").write_bytes((tmp_path / "other_rate.wav").read_bytes())
    with pytest.raises(CacheBudgetError):  # what the cache holds counts against the budget
        build_audio_cache([datasets.AudioItem(str(tmp_path / "copy.wav"))], str(cache), RATE,
                          progress=False, budget_bytes=need)


def test_previews_decode_one_held_out_file(tmp_path, monkeypatch):
    from musika_tf.training import run

    music = _music(3.0)
    rows = []
    for i, split in enumerate(["train", "train", "validation", "validation", "test"]):
        seconds = 2.0 + i * 0.2
        sf.write(tmp_path / f"f{i}.wav", music[: int(seconds * RATE) // 2 * 2][::2], RATE // 2)
        rows.append(f"Comp,Title {i},{split},f{i}.wav,{seconds}")
    (tmp_path / "maestro-v3.0.0.csv").write_text(
        "canonical_composer,canonical_title,split,audio_filename,duration\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    files, preview = run.cached_audio(PRESET, str(tmp_path), progress=False)
    assert sorted(os.path.basename(f.item.path) for f in files) == ["f0.wav", "f1.wav"]
    assert [os.path.basename(f.item.path) for f in preview] == ["f4.wav"]  # the longest held out
    assert len(list((tmp_path / "cache" / "audio" / str(RATE)).glob("*.npy"))) == 3


@pytest.mark.parametrize("stage", [ae.AE1Phase1Trainer, ae.AE1Phase2Trainer])
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(files, tmp_path, stage):
    import keras

    preset = PRESET.with_overrides(save_every=2)

    def trainer(folder):
        keras.utils.set_random_seed(0)
        return stage(preset, str(tmp_path / folder), files)

    straight = trainer("straight")
    loop.fit(straight, 4, progress=False, preview=False)
    loop.fit(trainer("stopped"), 2, progress=False, preview=False)
    resumed = trainer("stopped")
    loop.fit(resumed, 4, progress=False, preview=False)
    for name, model in straight.models().items():
        for a, b in zip(model.get_weights(), resumed.models()[name].get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_stage_chain_and_previews(files, tmp_path):
    preset = PRESET.with_overrides(ae1_steps=4, phase1_steps=2, ae2_steps=2, save_every=2)
    ae.train_ae1(preset, str(tmp_path), files, progress=False)
    ae.train_ae2(preset, str(tmp_path), files, progress=False)
    dirs = ae.stage_dirs(str(tmp_path))
    for stage in ("ae1_phase1", "ae1_phase2", "ae2"):
        assert tf.train.latest_checkpoint(f"{dirs[stage]}/ckpt"), stage
    assert (tmp_path / "ae2" / "previews" / "step-00000002" / "reconstruction.wav").exists()
    loaded = ae.load_trained_autoencoder(preset, str(tmp_path))
    trained = ae.AE2Trainer(preset, dirs["ae2"], files)
    loop.fit(trained, 2, progress=False, preview=False)
    np.testing.assert_array_equal(loaded.decoder2.get_weights()[0], trained.ae.decoder2.get_weights()[0])


@pytest.mark.parametrize("seconds", [0.3, 2.0, 5.55])
def test_encode_decode_lengths_and_channels(seconds):
    model = Autoencoder.build(PRESET)
    audio = _music(seconds)
    latents = encoding.encode_audio(model, audio)
    assert latents.shape == (-(-len(audio) // PRESET.samples_per_latent), PRESET.stereo_latent_dim)
    assert np.all(np.abs(latents) <= 1.0)  # tanh bottleneck
    rebuilt = encoding.reconstruct(model, audio)
    assert rebuilt.shape == audio.shape and rebuilt.dtype == np.float32


def test_decode_is_deterministic_for_a_seed():
    model = Autoencoder.build(PRESET)
    latents = np.random.default_rng(0).uniform(-1, 1, (20, PRESET.stereo_latent_dim)).astype(np.float32)
    for layer in model.decoder.layers + model.decoder2.layers:  # make the noise audible
        if hasattr(layer, "noise_weight"):
            layer.noise_weight.assign([0.5])
    a = encoding.decode_latents(model, latents, seed=3)
    b = encoding.decode_latents(model, latents, seed=3)
    c = encoding.decode_latents(model, latents, seed=4)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0


def test_chunk_starts_cover_everything():
    assert encoding.chunk_starts(100, 512) == [0]
    assert encoding.chunk_starts(1024, 512) == [0, 512]
    assert encoding.chunk_starts(1100, 512) == [0, 512, 588]


def _clicks(seconds: float, bpm: float) -> np.ndarray:
    x = np.zeros(int(seconds * RATE), np.float32)
    t = np.arange(int(0.05 * RATE)) / RATE
    for beat in np.arange(0.1, seconds - 0.06, 60.0 / bpm):
        i = int(beat * RATE)
        x[i:i + len(t)] += 0.6 * np.sin(2 * np.pi * 70 * t) * np.exp(-40 * t)
    return np.stack([x, x], axis=1)


def test_silent_files_under_conditioning_are_skipped_or_zero_not_fatal(tmp_path):
    sf.write(tmp_path / "beats.wav", _clicks(10.0, 128), RATE)
    sf.write(tmp_path / "silence.wav", np.zeros((10 * RATE, 2), np.float32), RATE)
    items = datasets.read_folder(str(tmp_path))
    tempo = PRESET.with_overrides(max_lat_len=16, cond="tempo")
    summary = encoding.encode_dataset(Autoencoder.build(tempo), items, str(tmp_path / "t"), "whole",
                                      progress=False)
    assert summary.loaded == 1 and [p for p, _ in summary.skipped] == [str(tmp_path / "silence.wav")]
    assert "1 no tempo" in summary.line()
    density = PRESET.with_overrides(max_lat_len=16, cond="density")
    summary = encoding.encode_dataset(Autoencoder.build(density), items, str(tmp_path / "d"), "whole",
                                      progress=False)
    assert summary.loaded == 2 and not summary.skipped
    entries = store.read_index(str(tmp_path / "d"))["entries"]
    silent = next(e for e in entries if e["source"].endswith("silence.wav"))
    assert store.load_entry(str(tmp_path / "d"), silent)["density"].max() == 0.0


def test_encoding_span_by_span_gives_the_whole_file_latents_in_bounded_spectrograms(monkeypatch):
    spans = PRESET.with_overrides(encode_chunks=2)  # 2 chunks x 8 latents per span
    model = Autoencoder.build(spans)
    whole = Autoencoder(PRESET.with_overrides(encode_chunks=1000), model.encoder, model.decoder,
                        model.encoder2, model.decoder2)
    audio = _music(10.0)  # 54 latents: 3 whole spans of 16 and one of 6
    seen, spectrogram = [], encoding.audio_lib.stereo_log_magnitude
    monkeypatch.setattr(encoding.audio_lib, "stereo_log_magnitude",
                        lambda wave, cfg: seen.append(len(wave)) or spectrogram(wave, cfg))
    by_span = encoding.encode_audio(model, audio)
    span_samples = (16 * PRESET.ae.frames_per_latent + 3) * PRESET.audio.hop
    assert seen == [span_samples] * 3 + [(6 * PRESET.ae.frames_per_latent + 3) * PRESET.audio.hop]
    seen.clear()
    reference = encoding.encode_audio(whole, audio)
    assert seen == [encoding.padded_length(len(audio), PRESET)]
    assert by_span.shape == reference.shape == (54, PRESET.stereo_latent_dim)
    np.testing.assert_allclose(by_span, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())
    assert not np.allclose(by_span[:16], by_span[16:32])  # spans are not one repeated piece


def test_unconditioned_encoding_streams_pcm_sources_to_the_same_latents(tmp_path, monkeypatch):
    from musika_tf import audio as audio_lib

    preset = PRESET.with_overrides(encode_chunks=2)
    model = Autoencoder.build(preset)
    sf.write(tmp_path / "long.wav", _music(10.0), RATE, subtype="PCM_16")
    expected = encoding.encode_audio(model, audio_lib.load_audio(str(tmp_path / "long.wav"), RATE))
    monkeypatch.setattr(audio_lib, "load_audio", lambda *a: pytest.fail("file decoded whole"))
    seen, spectrogram = [], encoding.audio_lib.stereo_log_magnitude
    monkeypatch.setattr(encoding.audio_lib, "stereo_log_magnitude",
                        lambda wave, cfg: seen.append(len(wave)) or spectrogram(wave, cfg))
    encoding.encode_dataset(model, datasets.read_folder(str(tmp_path)), str(tmp_path / "z"),
                            "whole", progress=False)
    assert len(seen) == 4 and max(seen) == (16 * PRESET.ae.frames_per_latent + 3) * PRESET.audio.hop
    (stored,) = store.load_all(str(tmp_path / "z"))
    np.testing.assert_array_equal(stored["latents"], expected)


@pytest.mark.parametrize("mode", ["chunks", "whole"])
def test_encode_dataset_writes_a_store_with_metadata(tmp_path, mode):
    preset = PRESET.with_overrides(max_lat_len=16, cond="density")
    model = Autoencoder.build(preset)
    sf.write(tmp_path / "long.wav", _music(10.0), RATE)
    sf.write(tmp_path / "short.wav", _music(1.0)[:, 0], RATE)
    (tmp_path / "bad.wav").write_bytes(b"nope")
    items = datasets.read_folder(str(tmp_path))
    summary = encoding.encode_dataset(model, items, str(tmp_path / "latents"), mode, "fp1", False)
    assert summary.loaded == 2 and len(summary.skipped) == 1
    index = store.read_index(str(tmp_path / "latents"))
    assert index["mode"] == mode and index["preset"]["name"] == "tiny"
    assert store.is_current(str(tmp_path / "latents"), "fp1")
    assert not store.is_current(str(tmp_path / "latents"), "fp2")
    long_total = -(-len(_music(10.0)) // preset.samples_per_latent)
    long_entries = [e for e in index["entries"] if e["source"].endswith("long.wav")]
    if mode == "whole":
        assert [e["length"] for e in long_entries] == [long_total]
    else:
        assert all(e["length"] == 16 for e in long_entries)
        assert long_entries[-1]["start_latent"] + 16 == long_total
    arrays = store.load_entry(str(tmp_path / "latents"), long_entries[0])
    assert arrays["latents"].shape[1] == preset.stereo_latent_dim
    assert arrays["density"].shape == (long_entries[0]["length"],)
    assert 0 <= arrays["density"].min() and arrays["density"].max() <= 1
    decoded = encoding.decode_store(model, str(tmp_path / "latents"), str(tmp_path / "wavs"),
                                    progress=False)
    assert len(decoded) == len(index["entries"])


def test_mixed_precision_steps_run_with_loss_scaling(files, tmp_path):
    preset = PRESET.with_overrides(mixed_precision="on")
    trainer = ae.AE2Trainer(preset, str(tmp_path), files)
    assert trainer.ae.decoder2.layers[-1].compute_dtype == "float16" or any(
        layer.compute_dtype == "float16" for layer in trainer.ae.decoder2.layers)
    assert isinstance(trainer.opt_gen, __import__("keras").optimizers.LossScaleOptimizer)
    logs = trainer.train_step(next(trainer.batches()))
    assert bool(logs.pop("finite")) and all(np.isfinite(float(v)) for v in logs.values())
