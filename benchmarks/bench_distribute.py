"""Training steps per second under tf.distribute on 1 and 2 logical devices.

    python benchmarks/bench_distribute.py [--devices 1 2] [--steps 20] [--batch 8] [--preset tiny]

Each measurement runs in a fresh child process, which splits the CPU into N logical devices (or
uses N GPUs when it has them) and times `--steps` GAN steps and AE phase-2 steps of the global batch
`--batch` through `loop.make_step_fn` (the step `train.py` runs), after two warm-up steps, on
random latents / synthesised audio with random weights. ``default`` is the one-device path
without tf.distribute; ``mirrored xN`` is MirroredStrategy over N devices. On a CPU the logical
devices share the same cores, so this shows the mechanism and its overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(devices: int, strategy: str, steps: int, batch: int, preset_name: str, root: str) -> dict:
    """Steps per second of the GAN and AE phase-2 steps (runs inside the child process)."""
    import musika_tf  # noqa: F401  before TensorFlow: oneDNN kernels on, as for users
    import numpy as np
    import soundfile as sf
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    from musika_tf import config
    from musika_tf.data import datasets
    from musika_tf.data.audio_cache import build_audio_cache
    from musika_tf.data.latents import LatentWriter
    from musika_tf.training import distribute, loop
    from musika_tf.training.ae import AE1Phase2Trainer
    from musika_tf.training.gan import GANTrainer

    preset = config.get_preset(preset_name, batch_size=batch, strategy=strategy)
    strat = distribute.strategy_for(preset)
    rng = np.random.default_rng(0)
    writer = LatentWriter(os.path.join(root, f"store-{strategy}-{devices}"), "chunks", "bench",
                          preset.to_dict())
    for i in range(4):
        length = preset.gan.max_lat_len
        writer.add(rng.standard_normal((length, preset.stereo_latent_dim)), f"s{i}.wav")
    store = writer.close()
    audio = os.path.join(root, f"audio-{strategy}-{devices}")
    os.makedirs(audio, exist_ok=True)
    rate = preset.audio.sample_rate
    sf.write(os.path.join(audio, "a.wav"), 0.1 * rng.standard_normal((8 * rate, 2)), rate)
    files = build_audio_cache(datasets.read_folder(audio), os.path.join(audio, "cache"), rate,
                              progress=False)
    results = {"replicas": strat.num_replicas_in_sync}
    for name, build in (("gan", lambda: GANTrainer(preset, root, store)),
                        ("ae_phase2", lambda: AE1Phase2Trainer(preset, root, files))):
        with strat.scope():
            trainer = build()
            trainer.build_optimizers()
        batches = trainer.batches(0)
        if strategy != "default":
            batches = distribute.distribute_batches(strat, batches)
        step = loop.make_step_fn(trainer, strat)
        for _ in range(2):
            float(step(next(batches))["d_loss" if name == "gan" else "d_total"])
        started = time.perf_counter()
        for _ in range(steps):
            logs = step(next(batches))
        float(logs["d_loss" if name == "gan" else "d_total"])
        results[name] = steps / (time.perf_counter() - started)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--child", nargs=3, metavar=("DEVICES", "STRATEGY", "ROOT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        devices, strategy, root = int(args.child[0]), args.child[1], args.child[2]
        print(json.dumps(child(devices, strategy, args.steps, args.batch, args.preset, root)))
        return 0
    runs = [(1, "default")] + [(n, "mirrored") for n in args.devices]
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"| strategy | replicas | GAN steps/s | AE phase-2 steps/s |  (preset {args.preset}, "
          f"global batch {args.batch}, {os.cpu_count()} CPU cores)")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        for devices, strategy in runs:
            out = subprocess.run([sys.executable, __file__, "--child", str(devices), strategy, root,
                                  "--steps", str(args.steps), "--batch", str(args.batch),
                                  "--preset", args.preset],
                                 env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            label = "default" if strategy == "default" else f"mirrored x{devices}"
            print(f"| {label} | {r['replicas']} | {r['gan']:.2f} | {r['ae_phase2']:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
