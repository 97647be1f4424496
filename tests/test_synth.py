"""Synthesised embedded data sets: MAESTRO-layout piano and procedural techno."""

from __future__ import annotations

import csv
import os
import re

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from musika_tf.data import build_piano_dataset, build_techno_dataset, common, piano, techno

RATE = 44100


def _rows(path: str) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def _check_wav(path: str, listed_duration: float) -> np.ndarray:
    """16-bit 44.1 kHz stereo, duration as listed, non-silent, not clipped, not dual mono."""
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 2, "PCM_16")
    assert abs(info.frames / RATE - listed_duration) < 1e-6
    audio, _ = sf.read(path, dtype="float32")
    assert np.sqrt(np.mean(audio ** 2)) > 0.01
    assert np.max(np.abs(audio)) < 0.95  # normalised to -1 dBFS, no clipped samples
    assert np.corrcoef(audio[:, 0], audio[:, 1])[0, 1] < 0.999
    return audio


# ---------------------------------------------------------------------------------------------
# Piano (the `tiny_piano_root` fixture in conftest: 1 minute, seed 3)


def test_piano_set_has_the_maestro_layout(tiny_piano_root):
    header, rows = _rows(os.path.join(tiny_piano_root, "maestro-v3.0.0.csv"))
    assert header == ["canonical_composer", "canonical_title", "split", "year", "midi_filename",
                      "audio_filename", "duration"]
    assert sum(float(r["duration"]) for r in rows) >= 60.0
    for row in rows:
        assert row["split"] in common.SPLITS and row["canonical_composer"]
        for column, ext in (("midi_filename", "midi"), ("audio_filename", "wav")):
            assert re.fullmatch(rf"{row['year']}/[\w.-]+\.{ext}", row[column])
            assert os.path.isfile(os.path.join(tiny_piano_root, row[column]))
        _check_wav(os.path.join(tiny_piano_root, row["audio_filename"]), float(row["duration"]))


def test_piano_midi_is_piano_only_and_humanised(tiny_piano_root):
    from music21 import midi

    _, rows = _rows(os.path.join(tiny_piano_root, "maestro-v3.0.0.csv"))
    midi_file = midi.MidiFile()
    midi_file.open(os.path.join(tiny_piano_root, rows[0]["midi_filename"]))
    midi_file.read()
    midi_file.close()
    events = [e for track in midi_file.tracks for e in track.events]
    programs = {e.data for e in events if e.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE}
    velocities = [e.velocity for e in events
                  if e.type == midi.ChannelVoiceMessages.NOTE_ON and e.velocity > 0]
    assert programs == {0}
    assert len(set(velocities)) > 10 and 20 <= min(velocities) and max(velocities) <= 115


def test_piano_is_deterministic_per_seed(tiny_piano_root, tmp_path):
    _, rows = _rows(os.path.join(tiny_piano_root, "maestro-v3.0.0.csv"))
    first = os.path.join(tiny_piano_root, rows[0]["audio_filename"])
    # A shorter build with the same seed renders the same first piece, byte for byte.
    build_piano_dataset(str(tmp_path / "same"), minutes=0.2, seed=3, progress=False)
    _, same = _rows(str(tmp_path / "same" / "maestro-v3.0.0.csv"))
    assert same[0]["audio_filename"] == rows[0]["audio_filename"]
    with open(first, "rb") as a, open(tmp_path / "same" / same[0]["audio_filename"], "rb") as b:
        assert a.read() == b.read()
    build_piano_dataset(str(tmp_path / "other"), minutes=0.2, seed=4, progress=False)
    _, other = _rows(str(tmp_path / "other" / "maestro-v3.0.0.csv"))
    audio_a, _ = sf.read(first)
    audio_b, _ = sf.read(tmp_path / "other" / other[0]["audio_filename"])
    assert audio_a.shape != audio_b.shape or not np.array_equal(audio_a, audio_b)


def test_piano_build_is_idempotent(tiny_piano_root):
    index = os.path.join(tiny_piano_root, "maestro-v3.0.0.csv")
    before = os.stat(index).st_mtime_ns
    summary = build_piano_dataset(tiny_piano_root, minutes=1.0, seed=3, progress=False)
    assert not summary.built and summary.items >= 1 and os.stat(index).st_mtime_ns == before


def test_soundfont_lookup(monkeypatch, tmp_path):
    monkeypatch.setenv(piano.SOUNDFONT_ENV, str(tmp_path / "missing.sf2"))
    with pytest.raises(FileNotFoundError, match=piano.SOUNDFONT_ENV):
        piano.find_soundfont()
    monkeypatch.delenv(piano.SOUNDFONT_ENV)
    monkeypatch.setattr(piano, "SOUNDFONT_DIRS", (str(tmp_path),))
    with pytest.raises(FileNotFoundError, match="timgm6mb-soundfont"):
        piano.find_soundfont()
    (tmp_path / "Other.sf2").write_bytes(b"RIFF")
    assert piano.find_soundfont() == str(tmp_path / "Other.sf2")


# ---------------------------------------------------------------------------------------------
# Shared helpers


def test_splits_are_deterministic_and_hold_out_validation_and_test():
    assert common.assign_splits(2, 0) == ["train", "train"]
    for count in (3, 4, 10, 37, 200):
        labels = common.assign_splits(count, 7)
        assert labels == common.assign_splits(count, 7)
        held = max(1, round(0.1 * count))
        assert labels.count("validation") == held and labels.count("test") == held
    assert common.assign_splits(50, 1) != common.assign_splits(50, 2)


# ---------------------------------------------------------------------------------------------
# Techno


def estimate_bpm(audio: np.ndarray, rate: int, slowest: float = 100.0,
                 fastest: float = 180.0) -> float:
    """Tempo from the autocorrelation of the low band's onset envelope (1 ms frames): the
    strongest one-beat lag in [slowest, fastest] BPM, refined on the four-beat lag."""
    band = signal.sosfilt(signal.butter(4, 150.0, fs=rate, output="sos"), audio.mean(axis=1))
    hop = rate // 1000
    frames = band[: len(band) // hop * hop].reshape(-1, hop)
    onset = np.maximum(np.diff(np.sqrt(np.mean(frames ** 2, axis=1))), 0.0)
    onset -= onset.mean()
    spectrum = np.fft.rfft(onset, 2 * len(onset))
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2)[: len(onset)]
    frame_rate = rate / hop

    def peak(shortest: float, longest: float) -> float:  # lag in frames, parabolic refinement
        lags = np.arange(int(shortest), int(np.ceil(longest)) + 1)
        k = lags[np.argmax(autocorrelation[lags])]
        a, b, c = autocorrelation[k - 1: k + 2]
        return k + 0.5 * (a - c) / (a - 2 * b + c)

    beat = peak(60.0 / fastest * frame_rate, 60.0 / slowest * frame_rate)
    return 240.0 * frame_rate / peak(3.9 * beat, 4.1 * beat)


@pytest.fixture(scope="module")
def techno_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("techno"))
    build_techno_dataset(root, minutes=1.0, seed=2, track_seconds=16.0, progress=False)
    return root


def test_techno_set_files_and_columns(techno_root):
    header, rows = _rows(os.path.join(techno_root, "techno.csv"))
    assert header == ["filename", "tempo_bpm", "duration", "split", "key", "seed"]
    assert len(rows) == 4 and sorted(r["split"] for r in rows) == [
        "test", "train", "train", "validation"]
    for row in rows:
        assert row["filename"].startswith("audio/") and float(row["duration"]) == pytest.approx(16.0)
        assert 120.0 <= float(row["tempo_bpm"]) <= 150.0 and row["key"].endswith("minor")
        _check_wav(os.path.join(techno_root, row["filename"]), float(row["duration"]))


def test_techno_tempo_is_the_stated_tempo(techno_root):
    _, rows = _rows(os.path.join(techno_root, "techno.csv"))
    tempi = {float(r["tempo_bpm"]) for r in rows}
    assert len(tempi) == len(rows)  # drawn per track
    for row in rows:
        audio, rate = sf.read(os.path.join(techno_root, row["filename"]))
        assert estimate_bpm(audio, rate) == pytest.approx(float(row["tempo_bpm"]), abs=1.0)


def test_techno_is_deterministic_and_seed_column_reproduces(techno_root, tmp_path):
    _, rows = _rows(os.path.join(techno_root, "techno.csv"))
    audio, _ = sf.read(os.path.join(techno_root, rows[0]["filename"]), dtype="float32")
    again, info = techno.synth_track(int(rows[0]["seed"]), 16.0, RATE)
    assert info["bpm"] == float(rows[0]["tempo_bpm"])
    assert np.max(np.abs(again - audio)) < 2.0 / 32768  # equal up to 16-bit rounding
    other, _ = techno.synth_track(int(rows[0]["seed"]) + 1, 16.0, RATE)
    assert np.max(np.abs(other - again)) > 0.1


def test_techno_rebuild_replaces_a_different_build(tmp_path):
    root = str(tmp_path)
    first = build_techno_dataset(root, minutes=0.1, seed=0, track_seconds=4.0, progress=False)
    assert first.built and first.items == 2
    assert not build_techno_dataset(root, minutes=0.1, seed=0, track_seconds=4.0,
                                    progress=False).built
    second = build_techno_dataset(root, minutes=0.1, seed=1, track_seconds=4.0, progress=False)
    assert second.built
    _, rows = _rows(os.path.join(root, "techno.csv"))
    assert sorted(os.listdir(os.path.join(root, "audio"))) == sorted(
        os.path.basename(r["filename"]) for r in rows)


def test_a_foreign_dataset_is_never_overwritten(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "real.wav").write_bytes(b"RIFF")
    (tmp_path / "techno.csv").write_text("filename,tempo_bpm,duration,split,key,seed\n"
                                         "audio/real.wav,128,1.0,train,A minor,0\n")
    with pytest.raises(FileExistsError, match="not synthesised"):
        build_techno_dataset(str(tmp_path), minutes=0.05, track_seconds=2.0, progress=False)
    assert (tmp_path / "audio" / "real.wav").exists()
