"""Inference engine, export and generate.py on the tiny preset (random weights, noise switched on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

import generate  # the top-level face (the repository root is on sys.path under pytest)
from musika_tf import audio, cli, gan, stateless
from musika_tf.autoencoder import Autoencoder, split_stereo_latents
from musika_tf.conditioning import normalise_tempo
from musika_tf.config import get_preset, save_preset
from musika_tf.coordinates import inference_coordinates
from musika_tf.export import STREAM_HEADING, export_model, load_exported
from musika_tf.graphs import SAMPLERS
from musika_tf.inference import (ENDPOINTS, BlockLayout, ConditionSchedule, Engine,
                                 InferenceGraphs, condition_frames, unit_seed, window_seconds)
from musika_tf.layers import noise_layers
from tests.conftest import REPO

SR = 22050  # tiny preset
ISTFT_ATOL = 1e-5  # streamed iSTFT vs one tf.signal.inverse_stft: float32 rounding only


def _models(preset, noise: float = 0.1):
    """Generator and autoencoder with every noise-injection weight set to `noise`."""
    keras.utils.set_random_seed(0)
    generator, ae = gan.build_generator(preset), Autoencoder.build(preset)
    for model in (generator, ae.decoder2, ae.decoder):
        for layer in noise_layers(model):
            layer.noise_weight.assign([noise])
    return generator, ae


@pytest.fixture(scope="module")
def plain():
    """Unconditional tiny engine with the default block layout."""
    preset = get_preset("tiny")
    generator, ae = _models(preset)
    return Engine.from_models(preset, generator, ae)


@pytest.fixture(scope="module")
def conditional():
    """(preset, generator, autoencoder, engine) of a density-conditioned tiny model."""
    preset = get_preset("tiny", cond="density")
    generator, ae = _models(preset)
    return preset, generator, ae, Engine.from_models(preset, generator, ae)


# ---------------------------------------------------------------------------------------------
# Lengths, seeds


@pytest.mark.parametrize("seconds", [1 / SR, 0.5, 1.2345, None, 30.0001, 61.3])
def test_exact_length_for_any_duration(plain, seconds):
    seconds = window_seconds(plain.preset) if seconds is None else seconds  # exactly one window
    wave = plain.generate(seconds, seed=1)
    assert wave.shape == (round(seconds * SR), 2) and wave.dtype == np.float32
    assert np.all(np.isfinite(wave)) and np.abs(wave).max() <= 1.0


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_or_invalid_length_is_rejected(plain, seconds):
    with pytest.raises(ValueError, match="positive"):
        plain.generate(seconds)


def test_same_seed_same_audio_other_seed_differs(plain):
    a, b = plain.generate(4.0, seed=3), plain.generate(4.0, seed=3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - plain.generate(4.0, seed=4)).max() > 1e-2


def test_decoder_noise_follows_the_seed():
    """Same latents, different decode seeds -> different audio (the seed reaches DEC2/DEC)."""
    preset = get_preset("tiny")
    graphs = Engine.from_models(preset, *_models(preset, noise=0.5)).backend
    latents = np.random.default_rng(0).uniform(-1, 1, (64, preset.stereo_latent_dim)).astype("f4")
    one, two = (graphs.decode_waveform(latents, np.int64(s)).numpy() for s in (5, 6))
    np.testing.assert_array_equal(one, graphs.decode_waveform(latents, np.int64(5)).numpy())
    assert np.abs(one - two).max() > 1e-3


def test_decode_matches_the_autoencoder_path():
    """Channel split and chunk order equal `Autoencoder.decode_latents` (noise off)."""
    preset = get_preset("tiny")
    generator, ae = _models(preset, noise=0.0)
    graphs = InferenceGraphs(preset, generator, ae.decoder2, ae.decoder)
    latents = np.random.default_rng(1).uniform(-1, 1, (32, preset.stereo_latent_dim)).astype("f4")
    out = graphs.decode_spectrogram(latents, np.int64(0))
    magnitude, phase = ae.decode_latents(split_stereo_latents(latents))
    np.testing.assert_allclose(out["magnitude"].numpy(), magnitude, atol=1e-5)
    np.testing.assert_allclose(out["phase"].numpy(), phase, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Streaming and seams


def _sampler_draws(preset, layout: BlockLayout, seed: int, bound: float = 2.0) -> tuple:
    """(coordinates of generator block b, noise seed of (stream, index)) straight from the
    layout's sampler module, without the engine."""
    w = layout.windows_per_block
    if layout.sampler == "numpy":
        return (lambda b: inference_coordinates(preset, w, bound, seed, start=b * w),
                lambda stream, index: np.int64(unit_seed(seed, stream, index)))
    return (lambda b: stateless.block_coordinates(preset, w, seed, b, bound).numpy(),
            lambda stream, index: stateless.unit_seed(seed, stream, index).numpy())


def _one_shot_reference(engine: Engine, seed: int, n_blocks: int) -> np.ndarray:
    """The reference's way: all latents, every decode unit's spectrogram, ONE iSTFT over all frames."""
    preset, layout, graphs = engine.preset, engine.layout, engine.backend
    coordinates, noise_seed = _sampler_draws(preset, layout, seed)
    latents = np.concatenate([
        graphs.generate_windows(coordinates(b), noise_seed(0, b)).numpy()
        for b in range(n_blocks)]).reshape(-1, preset.stereo_latent_dim)
    u = layout.unit_latents(preset)
    specs = [graphs.decode_spectrogram(latents[i:i + u], noise_seed(1, i // u))
             for i in range(0, len(latents), u)]
    magnitude = np.concatenate([s["magnitude"].numpy() for s in specs], axis=1)
    phase = np.concatenate([s["phase"].numpy() for s in specs], axis=1)
    return np.clip(audio.stereo_istft(magnitude, phase, preset.audio).numpy(), -1.0, 1.0)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_stream_equals_one_shot_and_any_cut(plain, sampler):
    """Blocks of the endless stream join exactly: cut anywhere, same samples; and they equal one
    iSTFT over all frames up to float32 summation order (both samplers: the stateless one of new
    folders, the numpy one that older folders keep)."""
    if sampler != plain.layout.sampler:
        graphs = plain.backend
        plain = Engine(InferenceGraphs(plain.preset, graphs.generator, graphs.decoder2,
                                       graphs.decoder, BlockLayout(sampler=sampler)))
    stream = plain.stream(seed=9)
    blocks = [next(stream) for _ in range(6)]  # crosses a generator block (4 units per block)
    streamed = np.concatenate(blocks)
    assert all(len(b) == stream.block_samples for b in blocks)
    np.testing.assert_array_equal(plain.generate(len(streamed) / SR, seed=9), streamed)
    odd = np.concatenate(list(plain.stream(seed=9).read(len(streamed) - 12345)))
    np.testing.assert_array_equal(odd, streamed[:len(odd)])
    reference = _one_shot_reference(plain, 9, n_blocks=2)
    np.testing.assert_allclose(streamed, reference[:len(streamed)], rtol=0, atol=ISTFT_ATOL)


def test_context_decoding_joins_units_like_one_whole_sequence():
    """With ``decode_context``, each decode unit sees its neighbours' latents: cut anywhere, the
    stream is the same, and (noise off, context past the decoders' reach) it equals decoding all
    latents as one sequence up to float32 rounding; without context every chunk edge differs."""
    preset = get_preset("tiny", decode_context=8)
    generator, ae = _models(preset, noise=0.0)
    engine = Engine.from_models(preset, generator, ae)
    stream = engine.stream(seed=9)
    streamed = np.concatenate([next(stream) for _ in range(6)])
    np.testing.assert_array_equal(engine.generate(len(streamed) / SR, seed=9), streamed)
    odd = np.concatenate(list(engine.stream(seed=9).read(len(streamed) - 12345)))
    np.testing.assert_array_equal(odd, streamed[:len(odd)])
    layout, graphs = engine.layout, engine.backend
    coordinates, noise_seed = _sampler_draws(preset, layout, 9)
    latents = np.concatenate([graphs.generate_windows(coordinates(b), noise_seed(0, b)).numpy()
                              for b in range(2)]).reshape(-1, preset.stereo_latent_dim)
    whole = graphs.decode_waveform(latents, np.int64(0)).numpy()
    np.testing.assert_allclose(streamed, whole[:len(streamed)], rtol=0, atol=ISTFT_ATOL)
    chunked = Engine.from_models(preset.with_overrides(decode_context=0), generator, ae)
    assert np.abs(chunked.generate(len(streamed) / SR, seed=9) - streamed).max() > 1e-2


def test_generate_to_file_writes_blocks_in_bounded_memory(plain, tmp_path):
    def peak(seconds: float) -> int:
        tracemalloc.start()
        plain.generate_to_file(str(tmp_path / f"{seconds}.wav"), seconds, seed=2)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    short, long = peak(15.0), peak(150.0)
    output_bytes = round(150.0 * SR) * 2 * 4
    assert long < short + 2 ** 20 and long < output_bytes / 4, (short, long)
    data, rate = sf.read(str(tmp_path / "150.0.wav"), dtype="float32")
    assert rate == SR and data.shape == (round(150.0 * SR), 2)
    assert sf.info(str(tmp_path / "150.0.wav")).subtype == "FLOAT"
    np.testing.assert_array_equal(data[:SR * 15], plain.generate(15.0, seed=2)[:SR * 15])
    assert not [f for f in os.listdir(tmp_path) if "partial" in f]


# ---------------------------------------------------------------------------------------------
# Conditioning


def test_condition_curve_changes_output(conditional):
    preset, *_, engine = conditional
    low, high = engine.generate(8.0, seed=1, condition=0.1), engine.generate(8.0, seed=1, condition=0.9)
    frames = condition_frames(preset, 8.0)
    assert frames == 44  # ceil(8 s * 5.38 latents/s)
    ramp = engine.generate(8.0, seed=1, condition=np.linspace(0.1, 0.9, frames))
    assert np.abs(low - high).max() > 1e-3 and np.abs(low - ramp).max() > 1e-3


@pytest.mark.parametrize("units_before, context", [(1, 0), (5, 0), (1, 2), (5, 2)])
def test_condition_change_applies_from_the_next_decode_unit(conditional, units_before, context):
    """`set_condition` mid-stream: nothing emitted changes; from the change on the stream equals one
    piece whose curve switches there, except the 3 hops that overlap-add with emitted frames.
    5 units in, the change falls in the second generator block (block 0's latents are gone).
    With ``decode_context`` the same holds (the history latents follow the regenerated block)."""
    preset, generator, ae, engine = conditional
    if context:
        preset = preset.with_overrides(decode_context=context)
        engine = Engine.from_models(preset, generator, ae)
    hop, spl = preset.audio.hop, preset.samples_per_latent
    stream = engine.stream(seed=4, condition=0.2)
    before = [next(stream) for _ in range(units_before)]
    switch = stream.set_condition(0.8)
    assert switch == units_before * stream.block_samples == stream.samples_emitted
    after = list(stream.read(2 * stream.block_samples))
    streamed = np.concatenate(before + after)
    total = len(streamed)
    constant = engine.generate(total / SR, seed=4, condition=0.2)
    np.testing.assert_array_equal(streamed[:switch], constant[:switch])
    curve = np.where(np.arange(switch // spl + 1) < switch // spl, 0.2, 0.8)
    switched = engine.generate(total / SR, seed=4, condition=curve)
    np.testing.assert_array_equal(streamed[switch + 3 * hop:], switched[switch + 3 * hop:])
    assert np.abs(streamed[switch:] - constant[switch:]).max() > 1e-3


def test_condition_errors(plain, conditional):
    *_, engine = conditional
    with pytest.raises(ValueError, match="without conditioning"):
        plain.generate(1.0, condition=0.5)
    with pytest.raises(ValueError, match="conditioned on density"):
        engine.generate(1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        engine.generate(1.0, condition=1.5)
    for condition in (None, 0.5):
        with pytest.raises(ValueError, match="trained without conditioning"):
            plain.stream(seed=0).set_condition(condition)
    assert ConditionSchedule([0.1, 0.3], start=10).values(10, 4).tolist() == pytest.approx(
        [0.1, 0.3, 0.3, 0.3])


class _Recording:
    """Backend wrapper that records the condition of every generator call."""

    def __init__(self, backend):
        self.backend, self.conditions = backend, []
        self.preset, self.layout = backend.preset, backend.layout

    def generate_windows(self, coordinates, condition, seed):
        self.conditions.append(np.asarray(condition))
        return self.backend.generate_windows(coordinates, condition, seed)

    def decode_block(self, *args):
        return self.backend.decode_block(*args)


def test_tempo_model_gets_an_unbroken_beat_phase():
    """Tempo models see [tempo, cos, sin] of a beat phase that runs on across generator blocks,
    advances by the tempo's beats per frame, bends where the tempo changes, and survives a
    mid-stream change (the regenerated block resumes the phase it started with)."""
    preset = get_preset("tiny", cond="tempo")
    generator, ae = _models(preset)
    recording = _Recording(InferenceGraphs(preset, generator, ae.decoder2, ae.decoder))
    engine = Engine(recording)
    frames = 3 * 2 * preset.gan.latlen  # three generator blocks
    frame = 300  # the change, inside block 1
    curve = np.where(np.arange(frame + 1) < frame, 0.5, normalise_tempo(150.0))  # 130 -> 150 BPM
    engine.generate(frames / preset.latent_rate, seed=2, condition=curve)
    features = np.concatenate([c.reshape(-1, 3) for c in recording.conditions])
    np.testing.assert_allclose(features[:frame, 0], 0.5)
    np.testing.assert_allclose(features[frame:, 0], normalise_tempo(150.0))
    np.testing.assert_allclose(np.hypot(features[:, 1], features[:, 2]), 1.0, atol=1e-5)
    steps = np.diff(np.unwrap(np.arctan2(features[:, 2], features[:, 1]))) / (2 * np.pi)
    per_frame = np.array([130.0, 150.0]) / 60.0 / preset.latent_rate
    np.testing.assert_allclose(steps[:frame], per_frame[0], atol=1e-4)
    np.testing.assert_allclose(steps[frame:], per_frame[1], atol=1e-4)
    # streamed with a change after 5 units: equal to the piece above from the change on
    stream = engine.stream(seed=2, condition=0.5)
    before = [next(stream) for _ in range(5)]
    switch = stream.set_condition(float(normalise_tempo(150.0)))
    streamed = np.concatenate(before + list(stream.read(stream.block_samples)))
    curve = np.where(np.arange(switch // preset.samples_per_latent + 1)
                     < switch // preset.samples_per_latent, 0.5, normalise_tempo(150.0))
    piece = engine.generate(len(streamed) / preset.audio.sample_rate, seed=2, condition=curve)
    start = switch + 3 * preset.audio.hop
    np.testing.assert_array_equal(streamed[start:], piece[start:])


# ---------------------------------------------------------------------------------------------
# Export, reload in a fresh process, generate.py


@pytest.fixture(scope="module")
def exported(conditional, tmp_path_factory):
    """The conditional model saved as a training run, exported with `python -m musika_tf export`."""
    preset, generator, ae, _ = conditional
    root = tmp_path_factory.mktemp("export")
    run = root / "runs" / "tinyrun"
    tf.train.Checkpoint(**ae.models).save(str(run / "ae2" / "ckpt" / "ckpt"))
    tf.train.Checkpoint(gen_ema=generator).save(str(run / "gan" / "ckpt" / "ckpt"))
    save_preset(preset, str(run / "gan"))
    os.makedirs(run / "latents" / "maestro")
    out = root / "checkpoints" / "tiny"
    assert cli.main(["export", str(run), str(out), "--notes", "test model",
                     "--card", 'cpu_hours={"gan": 0.25}', "--card", "hardware=2-core CPU"]) == 0
    assert cli.main(["export", str(run), str(out)]) == 2  # exists: refuses without --overwrite
    return out


def _run(args: list, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, **kw)


def test_export_folder_contents(exported):
    card = json.loads((exported / "model_card.json").read_text())
    assert card["conditioning"] == "density" and card["sample_rate"] == SR
    assert card["steps"] == 1 and card["data"] == "maestro" and card["notes"] == "test model"
    assert card["cpu_hours"] == {"gan": 0.25} and card["hardware"] == "2-core CPU"
    assert card["inference_layout"] == BlockLayout().to_dict()
    assert card["signatures"] == [*ENDPOINTS, "stream_state", "stream_step"]
    assert "density" in (exported / "README.md").read_text()
    assert (exported / "preset.json").exists() and (exported / "saved_model.pb").exists()


def test_generate_py_end_to_end_matches_live_model_bit_for_bit(conditional, exported, tmp_path):
    """generate.py in a fresh process on the exported folder == the live networks (tf.function)."""
    *_, live = conditional
    result = _run(["generate.py", "--model", str(exported), "--seconds", "2.5", "--num-samples",
                   "2", "--seed", "7", "--density", "1.5", "--out", str(tmp_path), "--quiet"])
    assert result.returncode == 0, result.stderr
    from musika_tf.conditioning import normalise_condition

    for seed in (7, 8):
        data, rate = sf.read(str(tmp_path / f"tiny_seed{seed}.wav"), dtype="float32")
        assert rate == SR and data.shape == (round(2.5 * SR), 2)
        expected = live.generate(2.5, seed=seed, condition=float(normalise_condition("density", 1.5)))
        np.testing.assert_array_equal(data, expected)


def test_old_conditioned_export_is_refused_with_the_fix(exported, tmp_path):
    """A format-v1 conditioned folder (one condition channel) asks to be re-exported."""
    import shutil

    from musika_tf.export import load_exported

    old = tmp_path / "old"
    shutil.copytree(exported, old)
    card = json.loads((old / "model_card.json").read_text())
    (old / "model_card.json").write_text(json.dumps({**card, "format_version": 1}))
    with pytest.raises(ValueError, match="re-export"):
        load_exported(str(old))


def test_loading_needs_no_training_code(exported):
    code = ("import sys; from musika_tf.export import load_exported; m = load_exported(sys.argv[1]); "
            "print(m.preset.gan.cond, any(k.startswith('musika_tf.training') for k in sys.modules))")
    result = _run(["-c", code, str(exported)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["density", "False"]


def test_generate_py_fails_clearly(exported, tmp_path, capsys):
    assert generate.main(["--model", str(tmp_path / "missing")]) == 2
    assert "saved_model.pb" in capsys.readouterr().err
    os.makedirs(tmp_path / "empty")
    assert generate.main(["--model", str(tmp_path / "empty")]) == 2
    assert "missing saved_model.pb" in capsys.readouterr().err
    assert generate.main(["--model", str(exported), "--tempo", "120"]) == 2
    assert "trained with density conditioning" in capsys.readouterr().err
    for bad in ("0", "-2"):
        with pytest.raises(SystemExit):
            generate.main(["--model", str(exported), "--seconds", bad])
        assert "must be > 0" in capsys.readouterr().err
    from musika_tf.conditioning import condition_from_user

    with pytest.raises(ValueError, match="without conditioning"):
        condition_from_user("none", 2.0, None)


def test_bfloat16_engine_is_close_to_float32_or_says_it_cannot(exported, monkeypatch):
    """bfloat16 rebuilds the networks from weights/ (same music, rounded) where supported; where
    not, a warning and the float32 engine."""
    from musika_tf import inference

    reference = Engine.load(str(exported)).generate(3.0, seed=2, condition=0.4)
    monkeypatch.setattr(inference, "bfloat16_supported", lambda: True)
    half = Engine.load(str(exported), "bfloat16").generate(3.0, seed=2, condition=0.4)
    assert half.shape == reference.shape and half.dtype == np.float32
    assert not np.array_equal(half, reference)
    snr = 10 * np.log10(np.sum(reference ** 2) / np.sum((half - reference) ** 2))
    assert snr > 10.0, snr  # random tiny weights: a loose bound; benchmarks report real models
    monkeypatch.setattr(inference, "bfloat16_supported", lambda: False)
    warnings = []
    fallback = Engine.load(str(exported), "bfloat16", warn=warnings.append)
    np.testing.assert_array_equal(fallback.generate(3.0, seed=2, condition=0.4), reference)
    assert warnings and "float32" in warnings[0]
    with pytest.raises(ValueError, match="precision"):
        Engine.load(str(exported), "float16")


# ---------------------------------------------------------------------------------------------
# The SavedModel alone streams: the stream_step signature


def _step_blocks(backend, count: int, seed: int, bound: float, condition=None) -> list:
    """`count` audio blocks of looping a backend's ``stream_step`` from its ``stream_state``."""
    state, blocks = backend.stream_state(), []
    for unit in range(count):
        args = [np.int64(seed), np.int64(unit), np.float32(bound)]
        args += [] if condition is None else [np.float32(condition)]
        out = backend.stream_step(*args, *state.values())  # latents, carry, beat_phase(, history)
        state = {name: out[name] for name in state}
        blocks.append(out["audio"].numpy())
    return blocks


@pytest.mark.parametrize("cond, phased, context", [
    ("none", False, 0), ("density", False, 0), ("density", True, 0), ("tempo", False, 0),
    ("none", False, 2), ("density", True, 2)])
def test_stream_step_equals_the_engine_stream(cond, phased, context):
    """The whole step in one graph == the host loop, block for block, across generator blocks
    (also with ``decode_context``: the look-ahead and the history in the state)."""
    preset = get_preset("tiny", cond=cond, density_phase=phased, decode_context=context)
    engine = Engine.from_models(preset, *_models(preset))
    condition = None if cond == "none" else 0.3
    stream = engine.stream(seed=5, bound=1.3, condition=condition)
    for block in _step_blocks(engine.backend, 6, 5, 1.3, condition):
        np.testing.assert_array_equal(block, next(stream))


def test_stream_step_refuses_a_state_of_another_unit_and_bad_values(plain):
    graphs, state = plain.backend, plain.backend.stream_state()
    args = [state["latents"], state["carry"], state["beat_phase"]]
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not belong to this unit"):
        graphs.stream_step(np.int64(0), np.int64(1), np.float32(2.0), *args)
    with pytest.raises(tf.errors.InvalidArgumentError, match="non-negative"):
        graphs.stream_step(np.int64(-1), np.int64(0), np.float32(2.0), *args)
    with pytest.raises(tf.errors.InvalidArgumentError, match="bound"):
        graphs.stream_step(np.int64(0), np.int64(0), np.float32(0.0), *args)


def _readme_example(folder) -> str:
    """The streaming script of a model folder's README, exactly as written there."""
    section = (folder / "README.md").read_text().split(STREAM_HEADING, 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("cond", ["none", "density", "tempo"])
def test_readme_stream_example_in_a_fresh_process_equals_the_engine(cond, tmp_path):
    """The README's script (tensorflow, numpy, soundfile only) streams 30 s from the folder in a
    new process: the same samples as the loaded engine and the live networks."""
    preset = get_preset("tiny", cond=cond)
    generator, ae = _models(preset)
    folder = tmp_path / "model"
    export_model(str(folder), preset, generator, ae, card={"data": "test"})
    code = _readme_example(folder)
    imports = [line for line in code.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import sys", "import numpy as np, soundfile as sf, tensorflow as tf"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code, str(folder), "out.wav"], cwd=tmp_path,
                            env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data, rate = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    condition = None if cond == "none" else 0.5
    expected = Engine.load(str(folder)).generate(30.0, seed=0, bound=2.0, condition=condition)
    assert rate == SR and data.shape == expected.shape == (30 * SR, 2)
    np.testing.assert_array_equal(data, expected)
    live = Engine.from_models(preset, generator, ae).generate(30.0, seed=0, condition=condition)
    np.testing.assert_array_equal(data, live)


def test_older_folder_keeps_its_sampler_and_says_it_has_no_stream_step(exported, tmp_path):
    """A folder exported before the stateless sampler (no sampler in its card's layout, no
    stream_* signatures) loads, generates with the numpy sampler, and names the fix."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(exported, old)
    card = json.loads((old / "model_card.json").read_text())
    layout = {k: v for k, v in card["inference_layout"].items() if k != "sampler"}
    (old / "model_card.json").write_text(json.dumps(
        {**card, "inference_layout": layout, "signatures": list(ENDPOINTS)}))
    model = load_exported(str(old))
    assert model.layout.sampler == "numpy"
    with pytest.raises(AttributeError, match="Re-export its run"):
        model.stream_step
    audio = Engine(model).generate(2.0, seed=1, condition=0.4)
    assert audio.shape == (2 * SR, 2) and np.isfinite(audio).all()
    assert not np.array_equal(audio, Engine.load(str(exported)).generate(2.0, seed=1, condition=0.4))
