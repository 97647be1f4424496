"""Tiny exported models for the app and streaming tests (random weights, CPU, seconds to make) and a
free localhost port to serve them on."""

from __future__ import annotations

import os
import socket

import keras

from musika_tf.autoencoder import Autoencoder
from musika_tf.config import get_preset
from musika_tf.export import export_model
from musika_tf.gan import build_generator


def export_tiny(folder: str, cond: str = "none", card: dict | None = None, seed: int = 0) -> str:
    """Export a tiny model conditioned on `cond` to `folder`, with the EMA generator's weights (so
    the app can rebuild it with short stream units); returns the folder. The random weights come
    from `seed`, so every run tests the same model (random tiny models play quietly: std ~1e-3)."""
    keras.utils.set_random_seed(seed)
    preset = get_preset("tiny", cond=cond)
    generator = build_generator(preset)
    return export_model(os.fspath(folder), preset, generator, Autoencoder.build(preset),
                        card=card or {"data": "test"}, gan_models={"gen_ema": generator})


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
