"""Training only the GAN on an existing autoencoder (`train.py --stage gan --ae-from`) and
fine-tuning from an exported model folder (`--init-from checkpoints/NAME`), on the tiny preset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from musika_tf import config
from musika_tf.export import has_weights
from musika_tf.training.export_run import export_from_run
from musika_tf.training import ae as ae_stages
from musika_tf.training.gan import GANTrainer
from musika_tf.training.run import train

PRESET = config.get_preset("tiny", ae1_steps=2, phase1_steps=1, ae2_steps=1, steps=2, save_every=2,
                           log_every=1, max_lat_len=128)
RATE = PRESET.audio.sample_rate


def _tones(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(seed)
    left = sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(150, 900, 3))
    return np.stack([left, 0.8 * left], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A whole tiny run (AE + GAN) on a folder of audio, and its export; cwd is a temp folder."""
    root = tmp_path_factory.mktemp("ae_from")
    audio = root / "audio"
    audio.mkdir()
    for i in range(2):
        sf.write(audio / f"piece{i}.wav", _tones(30.0, i), RATE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        train("gan", PRESET, str(audio), str(root / "runs" / "a"), progress=False)
        model = export_from_run(str(root / "runs" / "a"), str(root / "model"))
    return root, str(audio), model


def _weights(model) -> list:
    return [w.copy() for w in model.get_weights()]


def test_export_carries_every_network_but_the_raw_generator(source):
    _, _, model = source
    assert has_weights(model, "enc", "dec", "enc2", "dec2", "critic", "gen_ema")
    assert not has_weights(model, "generator")  # the EMA generator stands in for it


@pytest.mark.parametrize("kind", ["model folder", "run folder"])
def test_gan_trains_on_another_autoencoder(source, kind, monkeypatch):
    root, audio, model = source
    ae_from = model if kind == "model folder" else str(root / "runs" / "a")
    monkeypatch.chdir(root)
    run = root / "runs" / f"b-{kind.split()[0]}"
    # The requested preset's audio/AE groups are replaced by the source's (latent_dim differs here).
    wanted = PRESET.with_overrides(latent_dim=8, base_channels=4)
    result = train("gan", wanted, audio, str(run), progress=False, ae_from=ae_from)
    assert np.isfinite(result["gan"]["d_loss"])
    assert json.loads((run / ae_stages.AE_SOURCE_FILE).read_text())["source"] == str(ae_from)
    saved = config.load_preset(str(run))
    assert saved.ae == PRESET.ae and saved.gan.base_channels == 4
    assert not (run / "ae1").exists() and not (run / "ae2").exists()
    # The export of this run carries the source's decoders unchanged.
    out = export_from_run(str(run), str(root / f"model-{kind.split()[0]}"))
    original = ae_stages.load_autoencoder(PRESET, model)
    exported = ae_stages.load_autoencoder(saved, out)
    for a, b in zip(original.decoder.get_weights(), exported.decoder.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="uses the autoencoder of"):
        train("ae1", wanted, audio, str(run), progress=False)


def test_init_from_an_exported_model_folder(source, tmp_path):
    root, _, model = source
    store = root / "runs" / "a" / "latents"
    latents = str(next(store.iterdir()))
    ref = GANTrainer(PRESET, str(tmp_path / "ref"), latents, init_from=str(root / "runs" / "a" / "gan"))
    tuned = GANTrainer(PRESET, str(tmp_path / "tuned"), latents, init_from=model)
    for name in ("critic", "gen_ema"):
        for a, b in zip(_weights(ref.models()[name]), _weights(tuned.models()[name])):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(_weights(ref.gen_ema), _weights(tuned.generator)):  # from the EMA generator
        np.testing.assert_array_equal(a, b)
    assert float(tuned.switch.numpy()) == pytest.approx(float(ref.switch.numpy()))


def test_ae_from_errors_name_the_problem(source, tmp_path):
    _, audio, _ = source
    with pytest.raises(ValueError, match="--stage gan"):
        train("ae1", PRESET, audio, str(tmp_path / "x"), progress=False, ae_from=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no trained autoencoder"):
        train("gan", PRESET, audio, str(tmp_path / "y"), progress=False, ae_from=str(tmp_path))


def test_encode_and_decode_cli_use_a_run_or_its_autoencoder_source(source, tmp_path):
    from musika_tf import cli

    root, audio, model = source
    linked = tmp_path / "runs" / "linked"  # a run whose autoencoder lives in the model folder
    ae_stages.set_autoencoder_source(str(linked), model)
    config.save_preset(config.load_preset(model), str(linked))
    for run in (root / "runs" / "a", linked):
        out = tmp_path / run.name
        assert cli.main(["encode", audio, str(out), "--run", str(run), "--quiet"]) == 0
        assert cli.main(["decode", str(out), str(tmp_path / f"{run.name}-wav"), "--run", str(run),
                         "--quiet"]) == 0
        assert len(list((tmp_path / f"{run.name}-wav").glob("*.wav"))) >= 2


def test_decoders_stage_tunes_only_the_decoders_and_keeps_the_latents(source, tmp_path, monkeypatch):
    """`--stage decoders --ae-from MODEL`: DEC and DEC2 move, ENC and ENC2 (the GAN's latents) do
    not; the tuned run is a complete autoencoder for export, for a GAN and for resuming."""
    root, audio, model = source
    monkeypatch.chdir(root)
    run = tmp_path / "tuned"
    result = train("decoders", PRESET, audio, str(run), steps=2, progress=False, ae_from=model)
    assert np.isfinite(result["decoders"]["d_total"]) and np.isfinite(result["decoders"]["latent_l1"])
    before = ae_stages.load_autoencoder(PRESET, model)
    after = ae_stages.load_autoencoder(config.load_preset(str(run)), str(run))
    for name in ("enc", "enc2"):
        for a, b in zip(before.models[name].get_weights(), after.models[name].get_weights()):
            np.testing.assert_array_equal(a, b)
    for name in ("dec", "dec2"):
        moved = [not np.array_equal(a, b) for a, b in
                 zip(before.models[name].get_weights(), after.models[name].get_weights())]
        assert any(moved), name
    # Resuming continues the stage (no --ae-from needed any more) and a GAN trains on it without
    # training an autoencoder of its own.
    result = train("decoders", PRESET, audio, str(run), steps=3, progress=False)
    assert np.isfinite(result["decoders"]["d_total"])
    gan = train("gan", PRESET, audio, str(run), progress=False)
    assert set(gan) == {"gan"} and not (run / "ae1").exists()
    # Re-exporting the source model folder with the tuned decoders carries them.
    from musika_tf import cli

    out = str(tmp_path / "model")
    assert cli.main(["export", model, out, "--autoencoder", str(run)]) == 0
    exported = ae_stages.load_autoencoder(PRESET, out)
    tuned = ae_stages.load_autoencoder(PRESET, str(run))  # step 3 now
    for a, b in zip(tuned.decoder.get_weights(), exported.decoder.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_reexporting_a_model_folder_keeps_its_networks_audio_and_card(source, tmp_path):
    """`export checkpoints/NAME OUT`: same GAN and autoencoder weights, same audio per seed, the
    card's training fields kept and its stale evaluation dropped; in place with --overwrite."""
    import shutil

    from musika_tf import cli
    from musika_tf.export import read_card
    from musika_tf.inference import Engine

    _, _, model = source
    folder = tmp_path / "copy"
    shutil.copytree(model, folder)
    card_path = folder / "model_card.json"
    card = json.loads(card_path.read_text())
    card.update(evaluation={"fad": 1.0}, cpu_hours={"gan": 0.1})
    card_path.write_text(json.dumps(card))
    before = Engine.load(str(folder)).generate(3.0, seed=1)
    assert cli.main(["export", str(folder), str(folder), "--overwrite", "--notes", "again"]) == 0
    after_card = read_card(str(folder))
    assert after_card["steps"] == card["steps"] and after_card["cpu_hours"] == {"gan": 0.1}
    assert after_card["notes"] == "again" and "evaluation" not in after_card
    np.testing.assert_array_equal(before, Engine.load(str(folder)).generate(3.0, seed=1))
    assert cli.main(["export", str(tmp_path / "nothing-here"), str(tmp_path / "out")]) == 2
