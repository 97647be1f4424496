"""Subprocess side of `tests/test_distribute.py`: each mode runs in a fresh interpreter, since
logical devices and multi-worker collectives must be configured before TensorFlow starts.

  python -m tests.distributed_worker compare-gan STORE OUT.npz [OVERRIDES_JSON]
  python -m tests.distributed_worker compare-ae AUDIO_DIR OUT.npz [OVERRIDES_JSON]  (+ "stage")
  python -m tests.distributed_worker train-gan PRESET_DIR STORE RUN STEPS

``compare-*`` splits the CPU into two logical devices and takes one step of the same global batch
on one device (default strategy) and under MirroredStrategy on both, from the same weights, and
saves every updated variable of both (``one/NAME``, ``two/NAME``). ``train-gan`` trains the GAN of
the preset (its ``strategy`` field; multi-worker reads TF_CONFIG) and saves nothing else.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np
import tensorflow as tf


def split_cpu(devices: int = 2) -> None:
    """Make the one physical CPU appear as `devices` logical CPU devices (before TF starts)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def state(trainer) -> dict:
    """Every model and optimiser variable of `trainer`, plus its extra state, as arrays."""
    out = {}
    for name, model in trainer.models().items():
        for i, w in enumerate(model.weights):
            out[f"{name}/{i}"] = np.array(w)
    for name, opt in trainer.optimizers().items():
        for i, v in enumerate(opt.variables):
            out[f"opt_{name}/{i}"] = np.array(v)
    for name, var in trainer.extra_state().items():
        out[name] = np.array(var)
    return out


# Under mixed precision: the loss scale both sides start from. Keras's initial 2^15 overflows
# float16 for the first steps, and where exactly a scale overflows depends on how the batch is
# split (each replica back-propagates its share of the loss), so both start from a scale that fits.
LOSS_SCALE = 2.0 ** 8


def one_step_each_way(build, out_path: str) -> None:
    """One step on one device and one under MirroredStrategy from the same weights and batch."""
    from musika_tf.training import distribute, loop

    one = build("default")
    initial = {k: m.get_weights() for k, m in one.models().items()}
    with distribute.strategy_for(one.two_preset).scope():
        two = build("mirrored")
    for name, model in two.models().items():
        model.set_weights(initial[name])
    for trainer in (one, two):
        with distribute.strategy_for(trainer.preset).scope():
            trainer.build_optimizers()
    for trainer in (one, two):
        for opt in trainer.optimizers().values():
            if isinstance(opt, keras.optimizers.LossScaleOptimizer):
                opt.dynamic_scale.assign(LOSS_SCALE)
    logs = {"one": tf.function(one.train_step)(next(one.batches(0))),
            "two": loop.make_step_fn(two, distribute.strategy_for(two.preset))(next(
                distribute.distribute_batches(distribute.strategy_for(two.preset), two.batches(0))))}
    for side, values in logs.items():
        assert bool(values["finite"]) and bool(values.get("applied", True)), (side, values)
    arrays = {"replicas": np.array(distribute.strategy_for(two.preset).num_replicas_in_sync),
              "loss_scaled": np.array(all(isinstance(o, keras.optimizers.LossScaleOptimizer)
                                          for t in (one, two) for o in t.optimizers().values()))}
    arrays.update({f"one/{k}": v for k, v in state(one).items()})
    arrays.update({f"two/{k}": v for k, v in state(two).items()})
    arrays.update({f"initial/{k}/{i}": w for k, ws in initial.items() for i, w in enumerate(ws)})
    np.savez(out_path, **arrays)


def compare_gan(store: str, out_path: str, overrides: dict) -> None:
    from musika_tf import config
    from musika_tf.training.gan import GANTrainer

    def build(strategy):
        preset = config.get_preset("tiny", **{**overrides, "strategy": strategy})
        trainer = GANTrainer(preset, "unused", store)
        trainer.two_preset = preset.with_overrides(strategy="mirrored")
        return trainer

    one_step_each_way(build, out_path)


def compare_ae(audio_dir: str, out_path: str, overrides: dict) -> None:
    from musika_tf import config
    from musika_tf.data import datasets
    from musika_tf.data.audio_cache import build_audio_cache
    from musika_tf.training import ae

    stage = {"phase2": ae.AE1Phase2Trainer, "ae2": ae.AE2Trainer,
             "decoders": ae.DecoderTuner}[overrides.pop("stage", "phase2")]
    preset0 = config.get_preset("tiny", **overrides)
    files = build_audio_cache(datasets.read_folder(audio_dir), f"{audio_dir}/cache",
                              preset0.audio.sample_rate, progress=False)

    def build(strategy):
        preset = preset0.with_overrides(strategy=strategy)
        trainer = stage(preset, "unused", files)
        trainer.two_preset = preset.with_overrides(strategy="mirrored")
        return trainer

    one_step_each_way(build, out_path)


def train_gan(preset_dir: str, store: str, run: str, steps: str) -> None:
    from musika_tf.config import load_preset
    from musika_tf.training.gan import train_gan as train

    train(load_preset(preset_dir), store, run, steps=int(steps), progress=False)


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "train-gan":
        train_gan(*args)
        return
    split_cpu()
    overrides = json.loads(args[2]) if len(args) > 2 else {}
    {"compare-gan": compare_gan, "compare-ae": compare_ae}[mode](args[0], args[1], overrides)


if __name__ == "__main__":
    main(sys.argv[1:])
