"""Presets: reference constants, overrides, JSON round trip, one CLI flag per field."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from musika_tf import config


def test_reference_constants():
    v44, v22 = config.get_preset("musika44"), config.get_preset("paper22")
    assert (v44.audio.sample_rate, v22.audio.sample_rate) == (44100, 22050)
    assert v44.audio.n_fft == v22.audio.n_fft == 1024 and v44.audio.bins == 513
    assert (v44.samples_per_latent, v22.samples_per_latent) == (4096, 2048)
    assert v44.stereo_latent_dim == v22.stereo_latent_dim == 128
    assert (v44.ae.latent1_dim, v22.ae.latent1_dim) == (64, 128)
    assert round(v44.latent_rate, 2) == 10.77 and round(v22.latent_rate, 2) == 10.77
    assert (v44.audio.display_hop, v22.audio.display_hop) == (512, 256)


def test_paper_domain_presets():
    piano, techno = config.get_preset("piano"), config.get_preset("techno")
    assert piano.samples_per_latent == 4096 and piano.ae.latent_dim == 32
    assert piano.gan.latlen // 2 == 64  # seq_len 64 -> about 12 s
    assert techno.samples_per_latent == 2048 and techno.ae.latent_dim == 64
    assert techno.gan.latlen // 2 == 128


def test_overrides_and_unknown_fields():
    p = config.get_preset("tiny", latlen=64, lr=3e-4, enc_widths=[8, 8])
    assert p.gan.latlen == 64 and p.train.lr == 3e-4 and p.ae.enc_widths == (8, 8)
    assert config.get_preset("tiny").gan.latlen == 128  # presets are immutable
    with pytest.raises(KeyError, match="no_such_field"):
        config.get_preset("tiny", no_such_field=1)
    with pytest.raises(KeyError, match="unknown preset"):
        config.get_preset("nope")


def test_json_round_trip(tmp_path):
    for name in config.PRESETS:
        preset = config.get_preset(name)
        config.save_preset(preset, str(tmp_path / name))
        assert config.load_preset(str(tmp_path / name)) == preset


def test_a_retired_field_loads_when_off_and_names_its_replacement_when_on():
    data = config.get_preset("piano-cpu").to_dict()
    data["gan"]["join_critic_anywhere"] = False  # as in model folders written before its removal
    assert config.preset_from_dict(data) == config.get_preset("piano-cpu")
    data["gan"]["join_critic_anywhere"] = True
    with pytest.raises(ValueError, match="join_critic_anywhere was removed; use local_critic_weight"):
        config.preset_from_dict(data)
    data["gan"]["join_critic_anywhere"] = False
    data["gan"]["never_a_field"] = 1
    with pytest.raises(ValueError, match="never_a_field"):
        config.preset_from_dict(data)


def test_missing_preset_file_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="preset.json"):
        config.load_preset(str(tmp_path))


def test_every_field_has_a_cli_flag_with_help():
    parser = argparse.ArgumentParser()
    config.add_preset_arguments(parser)
    flags = {a.dest: a for a in parser._actions}
    for group, cls in config.GROUPS.items():
        for f in dataclasses.fields(cls):
            assert f.name in flags, f"no flag for {group}.{f.name}"
            assert f.metadata.get("help"), f"no help for {group}.{f.name}"
    args = parser.parse_args(["--preset", "tiny", "--latlen", "64", "--small", "false",
                              "--dec-widths", "8", "8", "8", "8"])
    preset = config.preset_from_args(args)
    assert preset.gan.latlen == 64 and preset.gan.small is False
    assert preset.ae.dec_widths == (8, 8, 8, 8) and preset.name == "tiny"


def test_saved_preset_is_the_base_when_no_preset_is_named():
    parser = argparse.ArgumentParser()
    config.add_preset_arguments(parser)
    saved = config.get_preset("tiny", latlen=64)
    preset = config.preset_from_args(parser.parse_args(["--lr", "0.01"]), saved)
    assert preset.name == "tiny" and preset.gan.latlen == 64 and preset.train.lr == 0.01
    named = config.preset_from_args(parser.parse_args(["--preset", "paper22"]), saved)
    assert named.name == "paper22"
    assert config.preset_from_args(parser.parse_args([])).name == config.DEFAULT_PRESET
