"""Audio front end: loading, STFT/iSTFT formulas, round trip, reference parity."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from musika_tf import audio, config
from musika_tf.data import datasets
from musika_tf.frontend_check import round_trip_snr, true_phase_round_trip
from tests.conftest import reference_tolerance

CFG44 = config.get_preset("musika44").audio
CFG22 = config.get_preset("paper22").audio


def _tone(seconds: float, rate: int, channels: int = 2, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.4 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    return np.stack([mono * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("samples", [1024, 1025, 1279, 1280, 44100, 132300])
def test_frame_count_and_istft_length_follow_the_formulas(samples):
    wave = np.random.default_rng(0).standard_normal(samples).astype(np.float32) * 0.1
    spec = audio.log_magnitude(wave, CFG44)
    frames = 1 + (samples - 1024) // 256
    assert spec.shape == (frames, 513) == (audio.num_frames(samples, 256), CFG44.bins)
    rebuilt = audio.istft(spec, audio.normalised_phase(wave, CFG44), CFG44)
    assert rebuilt.shape == ((frames - 1) * 256 + 1024,) == (audio.num_samples(frames, 256),)


def test_chunked_length_gives_whole_encoder_chunks():
    for n in (66304, 100000, 44100 * 30 + 17):
        length = audio.chunked_length(n, 256, 128)
        assert length <= n and (length - 768) % 32768 == 0
        assert audio.num_frames(length, 256) % 128 == 0
        assert length + 32768 > n  # the longest such length
    assert audio.chunked_length(32768 + 767, 256, 128) == 0


def test_split_and_merge_chunks_round_trip():
    spec = tf.random.normal((2, 3 * 128 + 5, 513))
    chunks = audio.split_chunks(spec, 128)
    assert chunks.shape == (2, 3, 128, 513)
    np.testing.assert_array_equal(audio.merge_chunks(chunks), spec[:, : 3 * 128])


def test_batch_and_single_paths_agree():
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((3, 2, 20000)).astype(np.float32) * 0.2
    spec_batch = audio.log_magnitude(batch, CFG44).numpy()
    phase_batch = audio.normalised_phase(batch, CFG44).numpy()
    wave_batch = audio.istft(spec_batch, phase_batch, CFG44).numpy()
    for i in range(3):
        stereo = batch[i].T
        np.testing.assert_allclose(audio.stereo_log_magnitude(stereo, CFG44), spec_batch[i], atol=1e-6)
        single = audio.stereo_istft(spec_batch[i], phase_batch[i], CFG44).numpy()
        np.testing.assert_allclose(single, wave_batch[i].T, atol=1e-6)


def test_normalisation_constants():
    # A full-scale sinusoid peaks near +48 dB -> about +0.98; silence floors at -100 dB -> -1.
    sine = np.sin(2 * np.pi * 1000 * np.arange(8192) / 44100).astype(np.float32)
    assert abs(float(tf.reduce_max(audio.log_magnitude(sine, CFG44))) - 0.98) < 0.02
    silence = np.zeros(4096, np.float32)
    np.testing.assert_allclose(audio.log_magnitude(silence, CFG44), -1.0, atol=1e-6)


@pytest.mark.parametrize("variant,cfg", [("v44", CFG44), ("v22", CFG22)])
def test_front_end_matches_reference_outputs(fixtures_dir, variant, cfg):
    io = np.load(fixtures_dir / variant / "io.npz")
    spec = audio.stereo_log_magnitude(io["frontend_wave"], cfg).numpy()
    assert spec.shape == io["frontend_spec"].shape
    assert np.abs(spec - io["frontend_spec"]).max() <= reference_tolerance(variant, "frontend_spec")
    mag = io["dec_out_mag"].reshape(2, -1, 513)
    phase = io["dec_out_phase"].reshape(2, -1, 513)
    wave = audio.stereo_istft(mag, phase, cfg).numpy()
    assert wave.shape == io["dec_istft"].shape
    assert np.abs(wave - io["dec_istft"]).max() <= reference_tolerance(variant, "dec_istft")


def test_true_phase_round_trip_on_embedded_piano_exceeds_40_db(tiny_piano_root):
    items = datasets.read_maestro(tiny_piano_root)
    snrs = []
    for _, music in datasets.iter_audio(items[:3], CFG44.sample_rate):
        snrs.append(round_trip_snr(music, CFG44))
    assert snrs and min(snrs) > 40.0, snrs


def test_round_trip_length_and_channels():
    tone = _tone(1.3, 44100)
    rebuilt = true_phase_round_trip(tone, CFG44)
    frames = audio.num_frames(len(tone), 256)
    assert rebuilt.shape == (audio.num_samples(frames, 256), 2)


# ---------------------------------------------------------------------------------------------
# Loading


def test_mono_file_is_upmixed(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, _tone(1.0, 44100, channels=1)[:, 0], 44100)
    loaded = audio.load_audio(str(path), 44100)
    assert loaded.shape == (44100, 2) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded[:, 0], loaded[:, 1])


def test_48k_file_is_resampled(tmp_path):
    path = tmp_path / "tone48.flac"
    sf.write(path, _tone(2.0, 48000, freq=1000.0), 48000)
    loaded = audio.load_audio(str(path), 44100)
    assert loaded.shape == (88200, 2)
    spectrum = np.abs(np.fft.rfft(loaded[:, 0]))
    peak_hz = np.argmax(spectrum) * 44100 / len(loaded)
    assert abs(peak_hz - 1000.0) < 1.0


def test_loud_float_file_is_made_peak_safe(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, _tone(0.5, 22050) * 4.0, 22050, subtype="FLOAT")
    loaded = audio.load_audio(str(path), 22050)
    assert np.isclose(np.abs(loaded).max(), 1.0)


def test_unreadable_file_raises_with_its_name(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00not really audio")
    with pytest.raises(audio.AudioLoadError, match="broken.wav"):
        audio.load_audio(str(path), 44100)


def test_display_mel_png(tmp_path):
    cfg = CFG44
    mel = audio.display_mel(_tone(2.0, 44100), cfg)
    assert mel.shape == (cfg.mel_bins, audio.num_frames(88200, cfg.display_hop))
    assert mel.min() >= -1 and mel.max() <= 1
    matrix = audio.mel_matrix(cfg)
    assert matrix.shape == (2 * cfg.display_hop + 1, cfg.mel_bins)
    sums = matrix.sum(axis=0)
    assert np.allclose(sums[sums > 0], 1.0, atol=1e-5)
    png = audio.save_spectrogram_png(str(tmp_path / "s.png"), [_tone(2.0, 44100)] * 2, cfg)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
