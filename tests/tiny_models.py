"""Tiny exported models for the app and streaming tests (random weights, CPU, seconds to make)."""

from __future__ import annotations

import os

from musika_tf.autoencoder import Autoencoder
from musika_tf.config import get_preset
from musika_tf.export import export_model
from musika_tf.gan import build_generator


def export_tiny(folder: str, cond: str = "none", card: dict | None = None) -> str:
    """Export a tiny model conditioned on `cond` to `folder`, with the EMA generator's weights (so
    the app can rebuild it with short stream units); returns the folder."""
    preset = get_preset("tiny", cond=cond)
    generator = build_generator(preset)
    return export_model(os.fspath(folder), preset, generator, Autoencoder.build(preset),
                        card=card or {"data": "test"}, gan_models={"gen_ema": generator})
