"""`make demo` plays the shipped models; a missing one is reported, not fatal."""

from __future__ import annotations

import soundfile as sf

from musika_tf import gan
from musika_tf.autoencoder import Autoencoder
from musika_tf.config import get_preset
from musika_tf.demo import SHIPPED, play_shipped
from musika_tf.export import export_model


def test_play_shipped_writes_both_settings_and_skips_missing(tmp_path, capsys):
    preset = get_preset("tiny", cond="density")
    export_model(str(tmp_path / "ckpt" / "piano"), preset, gan.build_generator(preset),
                 Autoencoder.build(preset))
    done = play_shipped(str(tmp_path / "gen"), seconds=2.0, checkpoints=str(tmp_path / "ckpt"))
    assert [d["density"] for d in done] == list(SHIPPED["piano"][1])
    for d in done:
        info = sf.info(d["path"])
        assert info.channels == 2 and info.frames == 2 * preset.audio.sample_rate
    out = capsys.readouterr().out
    assert "techno" in out and "skipped" in out and "real time" in out
