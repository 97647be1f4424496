"""The engine against the original Musika's generation path on this machine, with the machine's own
speed for the same layer shapes.

    python benchmarks/bench_vs_original.py [--preset musika44] [--windows 1 5 10] [--minutes 30]

*Original path*: the reference's `generate_waveform` (reference section 6.1) rebuilt on the same
networks: all generator windows in batches of 64; the windows concatenated and cut into chunks of
`latents_per_chunk` latents; for each audio channel separately DEC2 and then DEC in batches of 64
chunks with numpy in between; one `tf.signal.inverse_stft` (`tf.pow` magnitudes) per channel over all
frames; channels stacked and clipped. The networks are called through `tf.function`, which is at
least as fast as the original's calls. *Engine*: `musika_tf.inference.Engine.blocks`, blocks dropped
as they come (as when written to a file). Both float32, random weights (speed does not depend on
them), the same audio length (windows of the preset's `window_seconds`).

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, so every setting runs in its own
worker process: ``TF default`` (the variable unset: TensorFlow turns oneDNN on by itself only on CPUs
with AVX512-VNNI / BF16 / AMX) and ``oneDNN on`` (``TF_ENABLE_ONEDNN_OPTS=1``, what importing
`musika_tf` sets when the variable is unset). The original path is measured under both; the engine
runs as a user gets it (``oneDNN on``) and, for comparison, with oneDNN off.

Machine speed: a 2048 x 2048 float32 matmul, and each convolution of DEC and DEC2 alone at the
engine's batch shape (GFLOP/s), against the GFLOP/s each decoder reaches inside the engine's decode
graph. The tables are printed and written to ``docs/PERFORMANCE.md`` between this benchmark's
markers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from doc_tables import table, write_between

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- vs-original-results:begin -->", "<!-- vs-original-results:end -->"
SETTINGS = {"TF default": None, "oneDNN on": "1", "oneDNN off": "0"}


# ---------------------------------------------------------------------------------------------
# Worker (one process per oneDNN setting)


def original_path(preset, generator, ae):
    """A function ``windows -> stereo audio [samples, 2]`` that makes `windows` generator windows
    the way the original does (its networks traced once, as compiled Keras calls)."""
    import numpy as np
    import tensorflow as tf

    from musika_tf import audio
    from musika_tf.autoencoder import latents_per_chunk
    from musika_tf.coordinates import inference_coordinates
    from musika_tf.layers import fold

    gen, dec2, dec = (tf.function(lambda x, m=m: m(x, training=False), reduce_retracing=True)
                      for m in (generator, ae.decoder2, ae.decoder))
    lpc, dim, bins = latents_per_chunk(preset), preset.ae.latent_dim, preset.audio.bins

    def generate(windows: int, seed: int = 0):
        coords = inference_coordinates(preset, windows, 2.0, seed)
        latents = np.concatenate([gen(coords[i:i + 64]).numpy()[:, 0] for i in range(0, windows, 64)])
        chunks = latents.reshape(-1, lpc, 2 * dim)  # whole windows hold whole chunks
        waves = []
        for channel in range(2):
            x = chunks[..., channel * dim:(channel + 1) * dim][:, None]  # [N, 1, lpc, D]
            level1 = np.concatenate([dec2(fold(x[i:i + 64], 2)).numpy() for i in range(0, len(x), 64)])
            outs = [dec(fold(level1[i:i + 64], 2)) for i in range(0, len(level1), 64)]
            magnitude = np.concatenate([m.numpy() for m, _ in outs]).reshape(-1, bins)
            phase = np.concatenate([p.numpy() for _, p in outs]).reshape(-1, bins)
            waves.append(audio.istft(magnitude, phase, preset.audio).numpy())
        return np.clip(np.stack(waves, axis=1), -1.0, 1.0)

    return generate


def _timed(fn) -> tuple:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _conv_flops(layer, input_shape) -> float:
    """Multiply-adds x 2 of a (1 x k) Conv2D / Conv2DTranspose on ``[B, 1, T, Cin]``."""
    batch, _, steps, channels = input_shape
    kernel = layer.kernel_size[1]
    out_steps = steps if type(layer).__name__ == "Conv2DTranspose" else steps // layer.strides[1]
    return 2.0 * batch * out_steps * kernel * channels * layer.filters


def layer_speeds(model, x) -> dict:
    """Isolated GFLOP/s of every convolution of `model` at its inputs for `x`, and the model's own."""
    import keras
    import numpy as np
    import tensorflow as tf

    convs = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    probe = keras.Model(model.inputs, [l.input for l in convs])
    inputs = probe(x, training=False)
    total_flops, total_s = 0.0, 0.0
    for layer, value in zip(convs, inputs):
        fn = tf.function(lambda v, layer=layer: layer(v))
        fn(value)
        seconds = min(_timed(lambda: [fn(value).numpy() for _ in range(5)])[0] for _ in range(3)) / 5
        total_flops += _conv_flops(layer, value.shape)
        total_s += seconds
    whole = tf.function(lambda v: model(v, training=False))
    whole(x)
    model_s = min(_timed(lambda: [np.asarray(tf.nest.flatten(whole(x))[0]) for _ in range(5)])[0]
                  for _ in range(3)) / 5
    return {"conv_gflops": total_flops / 1e9, "isolated_gflops_s": total_flops / total_s / 1e9,
            "model_gflops_s": total_flops / model_s / 1e9, "model_ms": 1000 * model_s}


def matmul_gflops() -> float:
    import tensorflow as tf

    a = tf.random.normal([2048, 2048])
    fn = tf.function(lambda m: tf.matmul(m, m))
    fn(a).numpy()
    seconds = min(_timed(lambda: [fn(a).numpy() for _ in range(5)])[0] for _ in range(3)) / 5
    return 2 * 2048 ** 3 / seconds / 1e9


def worker(preset_name: str, windows: list, minutes: float, paths: list, original_long: bool) -> dict:
    """Rows of real-time factors for `paths` (original, engine) at every length, plus the machine's
    speed when the engine is measured. TensorFlow is imported before `musika_tf`, so a worker started
    without ``TF_ENABLE_ONEDNN_OPTS`` runs TensorFlow's own default."""
    import keras
    import numpy as np
    import tensorflow  # noqa: F401  (first: TensorFlow's own oneDNN default unless the variable is set)

    onednn = _onednn_enabled()
    from musika_tf import gan
    from musika_tf.autoencoder import Autoencoder, latents_per_chunk
    from musika_tf.config import get_preset
    from musika_tf.graphs import window_seconds
    from musika_tf.inference import Engine
    from musika_tf.layers import fold

    keras.utils.set_random_seed(0)
    preset = get_preset(preset_name, cond="none")  # a condition channel costs nothing measurable
    generator, ae = gan.build_generator(preset), Autoencoder.build(preset)
    engine = Engine.from_models(preset, generator, ae)
    seconds_per_window = window_seconds(preset)
    out = {"onednn": onednn, "rows": []}
    lengths = [(f"{w} window{'s' * (w > 1)}", w) for w in windows]
    if minutes:
        lengths.append((f"{minutes:g} min", int(np.ceil(minutes * 60 / seconds_per_window))))
    warm = {"original": original_path(preset, generator, ae),
            "engine": lambda w: sum(len(b) for b in engine.blocks(w * seconds_per_window, seed=0))}
    for path in paths:
        for label, w in lengths:
            if path == "original" and label.endswith("min") and not original_long:
                continue
            warm[path](min(w, 10))  # traces every shape this length uses (the original's last batch)
            wall, cpu = _timed(lambda: warm[path](w))
            audio_s = w * seconds_per_window
            out["rows"].append({"path": path, "length": label, "audio_s": audio_s, "wall": wall,
                                "cpu": cpu, "rtf": audio_s / wall})
            print(json.dumps(out["rows"][-1]), file=sys.stderr, flush=True)
    if "engine" in paths:
        chunks = engine.layout.decode_chunks
        rng = np.random.default_rng(0)
        x2 = rng.uniform(-1, 1, (2 * chunks, 1, latents_per_chunk(preset), preset.ae.latent_dim))
        x2 = fold(x2.astype("f4"), 2)
        level1 = fold(ae.decoder2(x2, training=False), 2)
        out["machine"] = {"matmul_gflops_s": matmul_gflops(),
                          "DEC": layer_speeds(ae.decoder, level1), "DEC2": layer_speeds(ae.decoder2, x2)}
    return out


def _onednn_enabled() -> bool:
    """Whether this TensorFlow process runs oneDNN kernels. Call it right after importing
    TensorFlow: TensorFlow evaluates its switch on the first call and keeps it."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"


# ---------------------------------------------------------------------------------------------
# Driver


def run_worker(setting: str, args, paths: list, minutes: float = 0.0) -> dict:
    env = dict(os.environ)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if SETTINGS[setting] is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = SETTINGS[setting]
    cmd = [sys.executable, __file__, "--worker", "--preset", args.preset, "--minutes", str(minutes),
           "--paths", *paths, "--windows", *map(str, args.windows)] + (
        ["--original-long"] if args.original_long else [])
    print(f"[{setting}] {' '.join(paths)}", flush=True)
    done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict, args, started: float) -> str:
    import platform

    with open("/proc/cpuinfo") as fh:
        flags = next((line for line in fh if line.startswith("flags")), "").split()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rtf = {(s, r["path"], r["length"]): r["rtf"] for s, res in results.items() for r in res["rows"]}
    lengths = [r["length"] for r in results["oneDNN on"]["rows"] if r["path"] == "engine"]
    rows = []
    for length in lengths:
        ours = rtf[("oneDNN on", "engine", length)]
        row = [length]
        for setting in ("TF default", "oneDNN on"):
            orig = rtf.get((setting, "original", length))
            row += [f"{orig:.1f}" if orig else "-"]
        off = rtf.get(("oneDNN off", "engine", length))
        row += [f"**{ours:.1f}**", f"{off:.1f}" if off else "-"]
        for setting in ("TF default", "oneDNN on"):
            orig = rtf.get((setting, "original", length))
            row += [f"**{ours / orig:.2f}x**" if orig else "-"]
        rows.append(row)
    speed = results["oneDNN on"]["machine"]
    mrows = []
    for name in ("DEC", "DEC2"):
        s = speed[name]
        mrows.append([name, f"{s['conv_gflops']:.2f}", f"{s['isolated_gflops_s']:.0f}",
                      f"{s['model_gflops_s']:.0f}",
                      f"{100 * s['model_gflops_s'] / s['isolated_gflops_s']:.0f} %"])
    onednn = {s: ("on" if r["onednn"] else "off") for s, r in results.items()}
    return "\n\n".join([
        f"`python benchmarks/bench_vs_original.py --preset {args.preset}`. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, CPU features {', '.join(isa) or 'none of avx2/avx512'}; load average "
        f"{load} at the end; run took {(time.perf_counter() - started) / 60:.1f} min. oneDNN as the "
        f"workers ran: {', '.join(f'{s}: {v}' for s, v in onednn.items())}. Real-time factor = seconds "
        "of stereo audio per wall second, float32, random weights.",
        table(["length", "original, TF default", "original, oneDNN on", "engine (musika_tf default)",
               "engine, oneDNN off", "engine / original (TF default)", "engine / original (oneDNN on)"],
              rows),
        f"Machine speed: 2048 x 2048 float32 matmul {speed['matmul_gflops_s']:.0f} GFLOP/s.\n\n" + table(
            ["network", "conv GFLOP per decode unit", "its convolutions alone, GFLOP/s",
             "inside the network, GFLOP/s", "fraction"], mrows),
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="musika44", help="network sizes (default: musika44)")
    parser.add_argument("--windows", nargs="+", type=int, default=[1, 5, 10],
                        help="piece lengths in generator windows (default: 1 5 10)")
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="one more, long piece in minutes (engine with oneDNN on; 0: none; default: 30)")
    parser.add_argument("--original-long", action="store_true",
                        help="also run the original path for the long piece (holds it all in memory)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="+", default=["original", "engine"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.worker:
        print(json.dumps(worker(args.preset, args.windows, args.minutes, args.paths,
                                args.original_long)))
        return 0
    started = time.perf_counter()
    results = {"TF default": run_worker("TF default", args, ["original"]),
               "oneDNN on": run_worker("oneDNN on", args, ["original", "engine"], args.minutes),
               "oneDNN off": run_worker("oneDNN off", args, ["engine"])}
    text = report(results, args, started)
    print(text)
    if not args.no_doc:
        write_between(DOC, BEGIN, END, text, heading="## Against the original (CPU)")
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
