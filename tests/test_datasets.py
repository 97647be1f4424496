"""Loaders: MAESTRO layout, any folder, skip-and-count of bad files."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf

from musika_tf import config
from musika_tf.data import datasets

PRESET = config.get_preset("musika44")


def _write(path, seconds, rate, channels=2):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 330 * t)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate)


def test_folder_loader_handles_bad_files(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "good.wav", 2.0, 44100)
    _write(tmp_path / "sub" / "mono.flac", 2.0, 44100, channels=1)
    _write(tmp_path / "sub" / "hi_rate.wav", 2.0, 48000)
    _write(tmp_path / "short.wav", 0.2, 44100)
    (tmp_path / "corrupt.mp3").write_bytes(b"\xff\xfb\x90\x00garbage" * 10)
    (tmp_path / "notes.txt").write_text("not audio")
    items = datasets.read_folder(str(tmp_path))
    assert len(items) == 5  # .txt is not listed
    summary, warnings = datasets.LoadSummary(), []
    loaded = dict(
        (item.path, a) for item, a in datasets.iter_audio(
            items, PRESET.audio.sample_rate, datasets.min_samples(PRESET), summary, warnings.append))
    assert summary.loaded == 3 and len(summary.skipped) == 2
    assert len(warnings) == 2 and all(w.count("\n") == 0 for w in warnings)
    assert any("corrupt.mp3" in w and "unreadable" in w for w in warnings)
    assert any("short.wav" in w and "too short" in w for w in warnings)
    assert "skipped 2" in summary.line()
    for a in loaded.values():
        assert a.shape == (88200, 2) and a.dtype == np.float32


def test_hidden_and_appledouble_files_are_reported_not_read(tmp_path):
    _write(tmp_path / "song.wav", 2.0, 22050)
    (tmp_path / "._song.wav").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)  # AppleDouble
    _write(tmp_path / ".hidden.flac", 2.0, 22050)
    warnings = []
    items = datasets.read_folder(str(tmp_path), warn=warnings.append)
    assert [os.path.basename(i.path) for i in items] == ["song.wav"]
    assert len(warnings) == 1 and "2 hidden audio file(s)" in warnings[0] and "\n" not in warnings[0]


FORMATS = {".wav": {}, ".flac": {}, ".ogg": {"format": "OGG", "subtype": "VORBIS"},
           ".mp3": {"format": "MP3"}, ".aif": {"format": "AIFF"}, ".aiff": {"format": "AIFF"},
           ".opus": {"format": "OGG", "subtype": "OPUS"}}


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_every_listed_format_decodes(tmp_path, ext):
    from musika_tf import audio as audio_lib

    assert set(FORMATS) == set(audio_lib.AUDIO_EXTENSIONS)  # the README lists exactly these
    rate = 48000 if ext == ".opus" else 22050  # Opus allows 8/12/16/24/48 kHz only
    t = np.arange(rate) / rate
    wave = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)], axis=1)
    sf.write(tmp_path / f"a{ext}", wave.astype(np.float32), rate, **FORMATS[ext])
    (item,) = datasets.read_folder(str(tmp_path))
    loaded = audio_lib.load_audio(item.path, 22050)
    assert abs(len(loaded) - 22050) < 1200 and loaded.shape[1] == 2  # codec padding/delay
    assert 0.1 < np.abs(loaded[2000:-2000, 0]).max() < 0.4
    assert np.abs(loaded[2000:-2000, 1]).max() < np.abs(loaded[2000:-2000, 0]).max()


def test_read_dataset_recognises_layouts(tmp_path):
    root = tmp_path / "maestro"
    (root / "2018").mkdir(parents=True)
    _write(root / "2018" / "a.wav", 1.0, 44100)
    with open(root / "maestro-v3.0.0.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["canonical_composer", "canonical_title", "split", "year",
                         "midi_filename", "audio_filename", "duration"])
        writer.writerow(["J. S. Bach", "Chorale", "test", "2018", "2018/a.midi", "2018/a.wav", "1.0"])
    items = datasets.read_dataset(str(root))
    assert [i.split for i in items] == ["test"] and items[0].path.endswith("2018/a.wav")
    assert datasets.read_dataset(str(root), split="train") == []


def test_missing_dataset_error_names_the_fix(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="build-data"):
        datasets.read_maestro(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no audio files"):
        datasets.read_dataset(str(tmp_path))


def test_embedded_piano_set_reads_through_the_same_loader(tiny_piano_root):
    items = datasets.read_dataset(tiny_piano_root)
    assert items and {i.split for i in items} <= {"train", "validation", "test"}
    summary = datasets.LoadSummary()
    for item, a in datasets.iter_audio(items, 44100, summary=summary):
        assert a.shape[1] == 2 and abs(len(a) / 44100 - item.duration) < 0.05
    assert summary.loaded == len(items) and not summary.skipped
