"""`generate.py --stream`: the endless stream written block by block until interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

import generate  # the top-level face (the repository root is on sys.path under pytest)
from musika_tf.conditioning import normalise_condition
from musika_tf.inference import Engine
from tests.conftest import REPO
from tests.tiny_models import export_tiny

DENSITY = 4.0  # onsets/s asked of the tiny density model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("models") / "piano", cond="density")


@pytest.fixture(scope="module")
def engine(model):
    return Engine.load(model)


def _command(model, out, *extra):
    return [sys.executable, str(REPO / "generate.py"), "--model", model, "--stream", "--out", str(out),
            "--seed", "5", "--density", str(DENSITY), "--quiet", *extra]


def _expected(engine, samples: int) -> np.ndarray:
    condition = float(normalise_condition("density", DENSITY))
    return engine.generate(samples / engine.sample_rate, seed=5, bound=2.0, condition=condition)


def _check_audio(audio: np.ndarray, engine) -> None:
    assert audio.ndim == 2 and audio.shape[1] == 2 and len(audio) > 0
    assert np.all(audio.std(axis=0) > 1e-5), "silent channel"  # random weights: quiet (~1e-3), not silent
    np.testing.assert_array_equal(audio, _expected(engine, len(audio)))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_stream_leaves_a_valid_file_equal_to_generate(model, engine, tmp_path, signum):
    out = tmp_path / "live.wav"
    block = engine.layout.unit_samples(engine.preset)
    block_bytes = block * 2 * 4
    process = subprocess.Popen(_command(model, out), cwd=REPO, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not (out.exists() and out.stat().st_size > 2 * block_bytes):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no audio written in 180 s"
            time.sleep(0.2)
        process.send_signal(signum)
        assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    finally:
        process.kill()
        process.wait()
    audio, rate = sf.read(out, dtype="float32")
    assert rate == engine.sample_rate and len(audio) >= 2 * block
    _check_audio(audio, engine)


def test_stream_with_seconds_stops_at_exactly_that_length(model, engine, tmp_path):
    subprocess.run(_command(model, tmp_path, "--seconds", "3"), cwd=REPO, check=True)
    audio, rate = sf.read(tmp_path / "piano_seed5_stream.wav", dtype="float32")
    assert audio.shape == (3 * rate, 2)
    _check_audio(audio, engine)


def test_stream_to_stdout_is_raw_float32_stereo(model, engine):
    done = subprocess.run(_command(model, "-", "--seconds", "2"), cwd=REPO, check=True,
                          stdout=subprocess.PIPE)
    audio = np.frombuffer(done.stdout, "<f4").reshape(-1, 2)
    assert len(audio) == 2 * engine.sample_rate
    _check_audio(audio, engine)


def test_a_second_interrupt_stops_at_once():
    """The first signal asks for a stop between blocks; a second one raises straight away."""
    stop = generate._StopRequest()
    stop(signal.SIGINT, None)
    assert stop.requested
    with pytest.raises(KeyboardInterrupt):
        stop(signal.SIGTERM, None)
