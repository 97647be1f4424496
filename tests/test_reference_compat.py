"""Original Musika checkpoints run in our code and reproduce the reference's own numbers.

`reference-outputs` (library and CLI) recomputes every array of the fixtures' ``io.npz`` from its
inputs; each must match within the README's atol (`reference_tolerance`). Also: the whole
coordinates -> stereo waveform path (``gen_wave_segments``), the compatibility switch, generator
size inference, checkpoint loading errors and `import-reference`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from musika_tf import gan
from musika_tf.config import get_preset
from musika_tf.coordinates import inference_coordinates
from musika_tf.reference import (AE_FILES, ReferenceWeightError, infer_generator_size,
                                 load_reference_checkpoint, read_keras2_h5, weight_layers)
from musika_tf.reference_outputs import (INPUTS, REFERENCE_BATCH, ReferenceLimitError,
                                         decode_stages, encode_stages, reference_items,
                                         reference_outputs, segment_starts)
from tests.conftest import REPO, reference_tolerance
from tests.test_reference_ae import _write_keras2_h5

VARIANT_PRESET = {"v44": "musika44", "v22": "paper22"}
INDEX_ARRAYS = ("gen_wave_segment_starts", "gen_wave_length")  # exact
NOISE_KEY = {"gen_wave_segments": "gen_wave"}  # noise.json records the slices as 'gen_wave'


def _tolerance(variant: str, array: str) -> float:
    return reference_tolerance(variant, NOISE_KEY.get(array, array))


def _recorded(io: dict) -> list[str]:
    """Output arrays of a fixture (everything but the inputs)."""
    return [name for name in io if name not in (*INPUTS, "critic_in")]


def _errors(variant: str, ours: dict, io: dict) -> dict[str, tuple[float, float]]:
    """``array -> (max abs error, atol)`` for every recorded float array (shapes asserted)."""
    out = {}
    for name in _recorded(io):
        assert name in ours, f"{variant}: {name} not computed"
        assert ours[name].shape == io[name].shape, (variant, name, ours[name].shape, io[name].shape)
        if name in INDEX_ARRAYS:
            np.testing.assert_array_equal(ours[name], io[name], err_msg=f"{variant} {name}")
        else:
            out[name] = (float(np.abs(ours[name] - io[name]).max()), _tolerance(variant, name))
    return out


def _assert_within(variant: str, ours: dict, io: dict) -> None:
    errors = _errors(variant, ours, io)
    report = ", ".join(f"{k} {e:.3g}/{t:.3g}" for k, (e, t) in errors.items())
    assert all(e <= t for e, t in errors.values()), f"{variant} (max err/atol): {report}"


@pytest.fixture(scope="module", params=sorted(VARIANT_PRESET))
def computed(request, fixtures_dir):
    """(variant, checkpoint, io arrays, our outputs) for one fixture folder."""
    variant = request.param
    folder = fixtures_dir / variant
    checkpoint = load_reference_checkpoint(str(folder), VARIANT_PRESET[variant])
    io = dict(np.load(folder / "io.npz"))
    return variant, checkpoint, io, reference_outputs(checkpoint, io)


def test_every_recorded_array_within_tolerance(computed):
    variant, _, io, ours = computed
    assert ("critic_out" in io) == (variant == "v44")  # v44 only: the fixture has critic.h5
    _assert_within(variant, ours, io)


def test_generated_waveform_segments(computed):
    """Coordinates -> generator -> windows joined -> DEC2/DEC -> iSTFT -> clip: the whole waveform,
    sliced at the first second, one second centred on each seam, and the last second."""
    variant, checkpoint, io, ours = computed
    preset, wave = checkpoint.preset, ours["gen_wave"]
    rate, fac = preset.audio.sample_rate, len(io["gen_in"])
    window = preset.gan.latlen * preset.samples_per_latent
    assert len(wave) == fac * window + 3 * preset.audio.hop
    assert np.abs(wave).max() <= 1.0
    expected = [0] + [k * window - rate // 2 for k in range(1, fac)] + [len(wave) - rate]
    np.testing.assert_array_equal(ours["gen_wave_segment_starts"], expected)
    for k, start in enumerate(expected):
        np.testing.assert_array_equal(ours["gen_wave_segments"][k], wave[start:start + rate])
    err = np.abs(ours["gen_wave_segments"] - io["gen_wave_segments"]).max()
    assert err <= _tolerance(variant, "gen_wave_segments"), f"{variant} gen_wave_segments {err}"


def test_cli_reference_outputs(fixtures_dir, tmp_path):
    """Once through the CLI (v44: it also has the critic); the library runs both variants."""
    variant = "v44"
    folder, out = fixtures_dir / variant, tmp_path / "out.npz"
    cmd = [sys.executable, "-m", "musika_tf", "reference-outputs", str(folder),
           str(folder / "io.npz"), str(out), "--preset", VARIANT_PRESET[variant]]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_within(variant, dict(np.load(out)), dict(np.load(folder / "io.npz")))


# ---------------------------------------------------------------------------------------------
# Compatibility switch (the reference's quirks on, ours fixed by default)


def test_reference_batch_count_rule():
    assert reference_items(1, 64, single_ok=True) == 1
    with pytest.raises(ReferenceLimitError, match="processes nothing"):
        reference_items(1, 64)
    assert [reference_items(n, 32) for n in (2, 32, 33, 34, 65)] == [2, 32, 32, 34, 64]


def test_encode_default_keeps_the_tail_compat_reproduces(computed):
    variant, checkpoint, io, ours = computed
    ae, wave = checkpoint.autoencoder, io["frontend_wave"]
    fixed = encode_stages(ae, wave)
    assert len(fixed["enc2_out"]) == -(-len(wave) // ae.preset.samples_per_latent)  # ceil
    assert len(fixed["enc2_out"]) > len(io["enc2_out"])  # the reference loses the tail
    kept = len(io["enc2_out"])  # latents clear of both paddings agree
    err = np.abs(fixed["enc2_out"][:kept] - io["enc2_out"]).max()
    assert err <= _tolerance(variant, "enc2_out")
    with pytest.raises(ReferenceLimitError, match="skips signals"):
        encode_stages(ae, wave[:2 * ae.preset.chunk_samples + 3 * ae.preset.audio.hop], True)


def test_decode_compat_drops_what_the_reference_drops(computed, monkeypatch):
    variant, checkpoint, io, _ = computed
    ae, per_chunk = checkpoint.autoencoder, len(io["dec_latent_in"]) // io["dec2_out"].shape[1]
    latents = np.concatenate([io["dec_latent_in"], io["dec_latent_in"][:per_chunk + 1]])
    chunks = len(latents) // per_chunk  # whole chunks, plus one latent of a partial chunk
    assert decode_stages(ae, latents)["dec_out_mag"].shape[1] == 1  # fixed: partial chunk kept
    assert decode_stages(ae, latents)["dec_wave"].shape[0] > decode_stages(
        ae, latents[:chunks * per_chunk])["dec_wave"].shape[0]
    monkeypatch.setitem(REFERENCE_BATCH[variant], "dec", chunks - 1)  # n = 1*bs + 1: one dropped
    compat = decode_stages(ae, latents, reference_compat=True)
    assert compat["dec_out_mag"].shape[1] == chunks - 1
    assert compat["dec2_in"].shape[1] == 2 * (chunks - 1)
    err = np.abs(compat["dec_out_mag"][:, :io["dec_out_mag"].shape[1]] - io["dec_out_mag"]).max()
    assert err <= _tolerance(variant, "dec_out_mag")


def test_segment_starts_rule():
    preset = get_preset("musika44", small=True, latlen=128)
    window, rate = 128 * 4096, 44100
    np.testing.assert_array_equal(segment_starts(window + 768, preset, 1), [0, window + 768 - rate])
    length = 3 * window + 768
    np.testing.assert_array_equal(segment_starts(length, preset, 3),
                                  [0, window - 22050, 2 * window - 22050, length - rate])


# ---------------------------------------------------------------------------------------------
# Checkpoint folders: size inference, any width / window count / length, errors, import


def _save_as_reference(model, path) -> None:
    """Write our model's weights in the Keras-2 by-order layout of the reference files."""
    groups = [(layer.name, [(w.path.rsplit("/", 1)[-1], np.asarray(w)) for w in layer.weights])
              for layer in weight_layers(model)]
    _write_keras2_h5(path, groups)


def _link_ae(src, dst) -> None:
    for stem in AE_FILES:
        os.symlink(src / f"{stem}.h5", dst / f"{stem}.h5")


def test_infer_generator_size(fixtures_dir):
    assert infer_generator_size(str(fixtures_dir / "v44" / "gen_ema.h5"), "v44") == {
        "base_channels": 32, "small": False, "latlen": 256}
    assert infer_generator_size(str(fixtures_dir / "v22" / "gen_ema.h5"), "v22") == {
        "base_channels": 128}
    with pytest.raises(ReferenceWeightError, match="not a generator Dense head"):
        infer_generator_size(str(fixtures_dir / "v44" / "critic.h5"), "v44")


def test_small_narrow_generator_any_window_count_and_length(fixtures_dir, tmp_path):
    """A small C=8 v44 generator with the fixture AE: 3 windows, a 2.6 s signal, 40 latents."""
    preset = get_preset("musika44", small=True, latlen=128, base_channels=8)
    source = gan.build_generator(preset)
    _save_as_reference(source, tmp_path / "gen_ema.h5")
    os.symlink(tmp_path / "gen_ema.h5", tmp_path / "gen.h5")  # the optional raw generator
    _link_ae(fixtures_dir / "v44", tmp_path)
    checkpoint = load_reference_checkpoint(str(tmp_path), "musika44")
    assert (checkpoint.preset.gan.base_channels, checkpoint.preset.gan.small) == (8, True)
    assert checkpoint.raw_generator is not None and checkpoint.critic is None
    for ours, theirs in zip(checkpoint.generator.weights, source.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    rng = np.random.default_rng(0)
    inputs = {"frontend_wave": rng.uniform(-0.5, 0.5, (114_660, 2)).astype(np.float32),
              "dec_latent_in": rng.uniform(-1, 1, (40, 128)).astype(np.float32),
              "gen_in": inference_coordinates(checkpoint.preset, 3, 2.0, seed=1)}
    out = reference_outputs(checkpoint, inputs)
    assert out["gen_out"].shape == (3, 1, 128, 128) and "critic_out" not in out
    assert out["gen_wave_length"] == 3 * 128 * 4096 + 768
    assert out["gen_wave_segments"].shape == (4, 44100, 2)
    assert out["enc_out"].shape == (2, 384, 64)  # pad by rem: 114660 -> 3 chunks
    assert out["enc2_out"].shape == (24, 128) and out["dec_wave"].shape == (639 * 256 + 1024, 2)


def test_mismatched_files_name_the_first_mismatched_weight(fixtures_dir, tmp_path):
    with pytest.raises(ReferenceWeightError, match=r"enc\.h5: weight-bearing layer #0: shape "
                       r"mismatch .*expected \(1, 1, 513, 1024\).*\(1, 1, 513, 544\)"):
        load_reference_checkpoint(str(fixtures_dir / "v22"), "musika44")
    # v44 AE with a v22 generator: the head matches a C=128 v44 generator up to block 1's 2nd conv
    os.symlink(fixtures_dir / "v22" / "gen_ema.h5", tmp_path / "gen_ema.h5")
    with pytest.raises(ReferenceWeightError, match=r"gen_ema\.h5: weight-bearing layer #6: shape "
                       r"mismatch for '1c'/kernel: expected \(1, 4, 768, 768\), file has "
                       r"'conv2d_64/kernel:0' \(1, 1, 768, 768\)"):
        load_reference_checkpoint(str(tmp_path), "musika44", ae_folder=str(fixtures_dir / "v44"))
    with pytest.raises(FileNotFoundError, match=r"enc\.h5.*use --ae"):
        load_reference_checkpoint(str(tmp_path), "musika44")


def test_import_reference_loads_every_file(fixtures_dir):
    checkpoint = load_reference_checkpoint(str(fixtures_dir / "v44"), "musika44")
    assert sorted(checkpoint.files) == sorted([*AE_FILES, "gen_ema", "critic"])
    assert checkpoint.raw_generator is None  # the fixture has no gen.h5
    models = {**checkpoint.autoencoder.models, "gen_ema": checkpoint.generator,
              "critic": checkpoint.critic}
    for stem, model in models.items():
        groups = read_keras2_h5(checkpoint.files[stem])
        layers = weight_layers(model)
        assert len(layers) == len(groups), stem
        for layer, group in zip(layers, groups):
            for var, value in zip(layer.weights, group.values):
                np.testing.assert_array_equal(np.asarray(var), value,
                                              err_msg=f"{stem} {group.name}")


def test_import_reference_exports_a_model_folder(fixtures_dir, tmp_path):
    from musika_tf.config import load_preset
    from musika_tf.export import has_weights
    from musika_tf.inference import Engine
    from musika_tf.reference import import_reference

    folder = import_reference(str(fixtures_dir / "v44"), "musika44", str(tmp_path / "techno"))
    preset = load_preset(folder)
    assert (preset.gan.base_channels, preset.gan.small) == (32, False)
    # the imported folder generates, and carries the autoencoder for `train.py --ae-from`
    assert has_weights(folder, "enc", "dec", "enc2", "dec2")
    audio = Engine.load(folder).generate(3.0, seed=1)
    assert audio.shape == (3 * preset.audio.sample_rate, 2) and np.isfinite(audio).all()
    assert audio.std() > 1e-3
