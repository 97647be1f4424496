"""Memory and disk of the data path against the size of the data: audio, encoding, GAN training.

    python benchmarks/bench_data_scale.py [--sizes 1 4 16] [--hours 200] [--minutes 2.5 10 40]
                                          [--steps 3] [--root DIR] [--no-doc]

Everything is synthesised (nothing is downloaded), at the ``piano-cpu`` preset (22.05 kHz, 64
stereo latent dims), random weights. Every measurement runs in a fresh child process, which reports
its peak resident memory (``VmHWM``: includes pages of memory-mapped files it touched) and its peak
anonymous memory (``RssAnon`` sampled every 5 ms: heap, arrays; what cannot be dropped under memory
pressure), both above the child's baseline after importing TensorFlow and building the networks.

- **GAN training**: latent stores of 1x, 4x, 16x the embedded piano set's store (20 minutes) and of
  `--hours` of audio (random latents and density curves), ``--steps`` GAN steps on each read through
  the memory-mapped store (`LatentCrops.from_store`); the eager version (every entry read into RAM,
  as before) beside it.
- **Audio for AE training**: a simulated `--hours` file list (30-minute 16-bit WAVs at the preset
  rate, sparse on disk) through `build_audio_cache` and 200 AE crops: cache disk use, peak memory;
  the same list for a 44.1 kHz preset, which would need decoding, stops at once on the cache budget.
- **Encoding**: one file of each `--minutes` length through `encode_dataset`: streamed from an
  integer-PCM file (``cond='none'``), decoded whole (a float WAV) and encoded span by span, and
  decoded whole with the whole-file spectrogram of before (``encode_chunks`` unbounded).

Tables are printed and written between the result markers of ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musika_tf.config import get_preset  # noqa: E402
from musika_tf.data.latents import LatentWriter  # noqa: E402
from musika_tf.data.piano import DEFAULT_MINUTES  # noqa: E402

from doc_tables import table, write_between  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- data-scale-results:begin -->", "<!-- data-scale-results:end -->"
SECTION_BEFORE = "## Training step time (CPU)"  # bench_training.py rewrites from there to the end
PRESET = "piano-cpu"
FILE_MINUTES = 30.0  # length of each file of the simulated file list
MB = 2 ** 20


# ---------------------------------------------------------------------------------------------
# Measuring (in the child)


def _status_kb(*keys: str) -> dict:
    """Fields of /proc/self/status in kB (VmRSS, VmHWM, RssAnon, ...)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in keys:
                out[name] = int(rest.split()[0])
    return out


class PeakMemory:
    """Context manager: peak anonymous memory (sampled every 5 ms) and peak RSS (kernel ``VmHWM``,
    reset at entry) above their values at entry, in MB."""

    def __enter__(self):
        with open("/proc/self/clear_refs", "w") as fh:  # "5": reset VmHWM to the current RSS
            fh.write("5")
        now = _status_kb("VmRSS", "RssAnon")
        self.base_rss, self.base_anon = now["VmRSS"], now["RssAnon"]
        self.peak_anon = self.base_anon
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak_anon = max(self.peak_anon, _status_kb("RssAnon")["RssAnon"])

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        end = _status_kb("VmHWM", "RssAnon")
        self.peak_anon = max(self.peak_anon, end["RssAnon"])
        self.result = {"rss_mb": (end["VmHWM"] - self.base_rss) / 1024,
                       "anon_mb": (self.peak_anon - self.base_anon) / 1024,
                       "base_rss_mb": self.base_rss / 1024}


def folder_mb(folder: str) -> float:
    """Disk blocks used below `folder` (sparse files count what they hold), MB."""
    total = 0
    for root, _, names in os.walk(folder):
        total += sum(os.stat(os.path.join(root, n)).st_blocks * 512 for n in names)
    return total / MB


def child_gan(spec: dict) -> dict:
    """``steps`` GAN steps on the store (memory-mapped), or the eager crops' memory."""
    import tensorflow as tf

    from musika_tf.data.latents import load_all
    from musika_tf.training.gan import GANTrainer, LatentCrops

    preset = get_preset(PRESET, mixed_precision="off")
    if spec["eager"]:
        with PeakMemory() as peak:
            crops = LatentCrops(load_all(spec["store"], "train"), preset.gan.latlen, preset.gan.cond)
            crops.sample(preset.train.batch_size, np.random.default_rng(0))
        return peak.result
    trainer = GANTrainer(preset, spec["run"], spec["store"])
    step, batches = tf.function(trainer.train_step), trainer.batches()
    float(step(next(batches))["finite"])  # trace before measuring
    with PeakMemory() as peak:
        trainer.crops = LatentCrops.from_store(spec["store"], preset)
        batches = trainer.batches(1)
        started = time.perf_counter()
        for _ in range(spec["steps"]):
            float(step(next(batches))["finite"])
    return {**peak.result, "s_per_step": (time.perf_counter() - started) / spec["steps"]}


def child_audio(spec: dict) -> dict:
    """The AE training audio of a file list: cache build + 200 crops, or the budget error."""
    from musika_tf.data import datasets
    from musika_tf.data.audio_cache import CacheBudgetError, build_audio_cache, random_crops
    from musika_tf.training.ae import crop_samples

    preset = get_preset(spec["preset"])
    items = datasets.read_folder(spec["folder"])
    cache, error, files = spec["cache"], None, []
    with PeakMemory() as peak:
        started = time.perf_counter()
        try:
            files = build_audio_cache(items, cache, preset.audio.sample_rate, crop_samples(preset),
                                      False, budget_bytes=preset.train.audio_cache_gb * 1e9)
        except CacheBudgetError as raised:
            error = str(raised)
        listed = time.perf_counter() - started
        if files:
            crops = random_crops(files, crop_samples(preset), seed=0)
            for _ in range(200):
                next(crops)
    if error:
        return {**peak.result, "error": error, "seconds": listed}
    return {**peak.result, "files": len(files), "hours": sum(f.samples for f in files)
            / preset.audio.sample_rate / 3600, "in_place": sum(f.in_place for f in files),
            "seconds": listed, "cache_mb": folder_mb(cache) if os.path.isdir(cache) else 0.0}


def child_encode(spec: dict) -> dict:
    """`encode_dataset` of one file into a store."""
    from musika_tf.autoencoder import Autoencoder
    from musika_tf.data import datasets
    from musika_tf.encoding import encode_audio, encode_dataset

    preset = get_preset(PRESET, cond="none", **spec.get("overrides", {}))
    ae = Autoencoder.build(preset)
    encode_audio(ae, np.zeros((8 * preset.samples_per_latent, 2), np.float32))  # trace the encoders
    with PeakMemory() as peak:
        started = time.perf_counter()
        encode_dataset(ae, [datasets.AudioItem(spec["path"])], spec["out"], progress=False)
    return {**peak.result, "seconds": time.perf_counter() - started, "store_mb": folder_mb(spec["out"])}


CHILDREN = {"gan": child_gan, "audio": child_audio, "encode": child_encode}


def run_child(kind: str, **spec) -> dict:
    """Run one measurement in a fresh process; its result dict."""
    cmd = [sys.executable, __file__, "--child", json.dumps({"kind": kind, **spec})]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        raise RuntimeError(f"{kind} child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(kind, {k: v for k, v in spec.items() if k != "kind"}, "->", result, flush=True)
    return result


# ---------------------------------------------------------------------------------------------
# Synthetic data (in the parent)


def embedded_latents(preset) -> int:
    """Latents of the embedded piano set (DEFAULT_MINUTES of audio) at the preset."""
    return int(DEFAULT_MINUTES * 60 * preset.latent_rate)


def write_store(folder: str, preset, latents: int, seed: int = 0) -> str:
    """A chunks-mode store of `latents` random latents with density curves, entries of max_lat_len."""
    writer = LatentWriter(folder, "chunks", "bench", preset.to_dict())
    rng, chunk = np.random.default_rng(seed), preset.gan.max_lat_len
    for start in range(0, latents, chunk):
        n = min(chunk, latents - start)
        writer.add(rng.standard_normal((n, preset.stereo_latent_dim), np.float32), "synthetic",
                   density=rng.uniform(0, 1, n).astype(np.float32))
    return writer.close()


def sparse_wav(path: str, seconds: float, rate: int) -> None:
    """A 16-bit stereo WAV of `seconds` of silence that takes no disk space (a sparse file)."""
    frames = int(seconds * rate)
    data = frames * 4
    header = (b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + (1).to_bytes(2, "little") + (2).to_bytes(2, "little") + rate.to_bytes(4, "little")
              + (rate * 4).to_bytes(4, "little") + (4).to_bytes(2, "little")
              + (16).to_bytes(2, "little") + b"data" + data.to_bytes(4, "little"))
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + data)


def music_wav(path: str, minutes: float, rate: int, subtype: str) -> None:
    """`minutes` of stereo tones and noise, written a minute at a time."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 2, subtype) as fh:
        for start in range(0, int(minutes * 60 * rate), 60 * rate):
            n = min(60 * rate, int(minutes * 60 * rate) - start)
            t = (start + np.arange(n)) / rate
            left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)
            fh.write(np.stack([left, 0.8 * left], 1).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# The three benchmarks


def bench_gan(root: str, sizes: list, hours: float, steps: int) -> list:
    preset = get_preset(PRESET)
    base = embedded_latents(preset)
    cases = [(f"{s:g}x embedded ({s * DEFAULT_MINUTES:g} min)", int(s * base)) for s in sizes]
    cases.append((f"{hours:g} h", int(hours * 3600 * preset.latent_rate)))
    rows = []
    for label, latents in cases:
        store = write_store(os.path.join(root, "store"), preset, latents)
        lazy = run_child("gan", store=store, run=os.path.join(root, "run"), steps=steps, eager=False)
        eager = run_child("gan", store=store, eager=True)
        rows.append([label, f"{latents:,}", f"{folder_mb(store):,.1f}", f"{lazy['rss_mb']:.0f}",
                     f"{lazy['anon_mb']:.0f}", f"{lazy['s_per_step']:.2f}", f"{eager['anon_mb']:,.0f}"])
        shutil.rmtree(store)
        shutil.rmtree(os.path.join(root, "run"), ignore_errors=True)
    return rows


def bench_audio(root: str, hours: float) -> list:
    preset = get_preset(PRESET)
    folder = os.path.join(root, "filelist")
    os.makedirs(folder, exist_ok=True)
    count = int(np.ceil(hours * 60 / FILE_MINUTES))
    for i in range(count):
        sparse_wav(os.path.join(folder, f"piece{i:04d}.wav"), FILE_MINUTES * 60, preset.audio.sample_rate)
    rows = []
    for name in (PRESET, "musika44"):
        rate = get_preset(name).audio.sample_rate
        result = run_child("audio", preset=name, folder=folder, cache=os.path.join(root, "cache", name))
        before_gb = count * FILE_MINUTES * 60 * rate * 4 / 1e9
        if "error" in result:
            rows.append([name, f"{rate}", f"{count} ({hours:g} h)", f"{before_gb:.1f}", "-", "0.0",
                         f"{result['anon_mb']:.0f}", f"stops after {result['seconds']:.1f} s: "
                         + result["error"].split(". ")[0].split(": ", 1)[1]])
        else:
            rows.append([name, f"{rate}", f"{count} ({result['hours']:.0f} h)", f"{before_gb:.1f}",
                         f"{result['in_place']}", f"{result['cache_mb']:.1f}",
                         f"{result['anon_mb']:.0f}", f"listed in {result['seconds']:.1f} s, 200 crops read"])
    shutil.rmtree(folder)
    return rows


def bench_encode(root: str, minutes: list) -> list:
    preset = get_preset(PRESET)
    rate, rows = preset.audio.sample_rate, []
    for length in minutes:
        pcm, flt = os.path.join(root, "piece_pcm16.wav"), os.path.join(root, "piece_float.wav")
        music_wav(pcm, length, rate, "PCM_16")
        music_wav(flt, length, rate, "FLOAT")
        modes = [("streamed from the file (cond none, PCM)", pcm, {}),
                 ("decoded whole, spans (other files)", flt, {}),
                 ("decoded whole, whole spectrogram (before)", flt, {"encode_chunks": 10 ** 6})]
        for label, path, overrides in modes:
            out = os.path.join(root, "enc_store")
            result = run_child("encode", path=path, out=out, overrides=overrides)
            rows.append([f"{length:g} min", label, f"{result['rss_mb']:,.0f}", f"{result['anon_mb']:,.0f}",
                         f"{result['store_mb']:.1f}", f"{result['seconds']:.1f}"])
            shutil.rmtree(out, ignore_errors=True)
        os.remove(pcm)
        os.remove(flt)
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def report(gan_rows, audio_rows, encode_rows, args) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    import tensorflow as tf

    head = (f"`python benchmarks/bench_data_scale.py --sizes {' '.join(f'{x:g}' for x in args.sizes)} --hours "
            f"{args.hours:g} --minutes {' '.join(f'{x:g}' for x in args.minutes)} --steps {args.steps}`; "
            f"{cpu}, {os.cpu_count()} cores, load {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
            f"TensorFlow {tf.__version__}, preset {PRESET}. Memory in MB above the child process's "
            "baseline (TensorFlow imported, networks built); *peak RSS* includes touched pages of "
            "memory-mapped files, *peak anon* is heap only.")
    return "\n\n".join([
        head,
        f"**GAN training** ({args.steps} steps, batch 16, memory-mapped store; last column: the "
        "same store read into RAM as before):",
        table(["store", "latents", "disk MB", "peak RSS", "peak anon", "s / step",
               "eager load anon (before)"], gan_rows),
        "**Audio for AE training** (simulated file list of 30-minute 16-bit WAVs at 22.05 kHz):",
        table(["preset", "rate", "files", "cache before (GB)", "read in place", "cache MB",
               "peak anon", "outcome"], audio_rows),
        "**Encoding** one file (`encode_dataset`):",
        table(["file", "path", "peak RSS", "peak anon", "store MB", "s"], encode_rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 4, 16],
                        help="latent stores of these multiples of the embedded set's")
    parser.add_argument("--hours", type=float, default=200.0, help="simulated file list / big store")
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.5, 10, 40],
                        help="lengths of the encoded file")
    parser.add_argument("--steps", type=int, default=3, help="GAN steps per store")
    parser.add_argument("--root", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(CHILDREN[spec.pop("kind")](spec)))
        return 0
    root = args.root or tempfile.mkdtemp(prefix="data_scale_")
    try:
        gan_rows = bench_gan(root, args.sizes, args.hours, args.steps)
        audio_rows = bench_audio(root, args.hours)
        encode_rows = bench_encode(root, args.minutes)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    text = report(gan_rows, audio_rows, encode_rows, args)
    print(text)
    if not args.no_doc:
        write_between(DOC, BEGIN, END, text, heading="## Data size (one machine)",
                      before=SECTION_BEFORE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
