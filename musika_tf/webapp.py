"""The Gradio app: pick an exported model, set length, seed, variety, number of samples and (if the
model was trained with one) note density or tempo, constant or as a curve over the piece; get stereo
players, a spectrogram and the real-time factor. Endless mode streams one seeded piece until Stop,
and its sliders change the stream while it plays.

Models are folders under ``checkpoints/`` written by ``python -m musika_tf export`` or
``import-reference``; they are loaded with `tf.saved_model.load` (no training code) and cached.
Files: the app writes each spectrogram into one app-owned temporary folder, reads it back as an
array and deletes it at once (the folder goes at exit); audio and images handed to Gradio live in
Gradio's cache, which `build_ui` clears every hour and at shutdown (``delete_cache``).
"""

import atexit
import dataclasses
import functools
import io
import math
import os
import shutil
import tempfile
import threading
import time
import wave
from typing import Callable, Iterator

import numpy as np

from . import audio as audio_lib
from .conditioning import (CONDITION_UNITS, DENSITY_MAX, TEMPO_MAX, TEMPO_MIN, denormalise_condition,
                           normalise_condition)
from .config import load_preset
from .export import check_folder, read_card

DISPLAY_SECONDS = 23.0  # the spectrogram shows the first 23 s of each sample (as the reference UI)
MIN_SECONDS, MAX_SECONDS = 1.0, 600.0  # length range of one piece (the cap also holds via the API)
MAX_SAMPLES = 4  # players in the gallery
VARIETY = (0.1, 3.9, 2.0, 0.1)  # truncation bound: min, max, default, step (the reference UI's)
CONDITION_RANGE = {"density": (0.0, DENSITY_MAX), "tempo": (TEMPO_MIN, TEMPO_MAX)}  # display units
SLIDER_STEP = {"density": 0.1, "tempo": 1.0}
CONDITION_LABEL = {"density": "note density", "tempo": "tempo"}
# Endless mode: chunks handed to the player, how far they may run ahead of real time, and the
# longest decode unit (a change is heard after at most one unit plus the lead: <= 6 s).
STREAM_CHUNK_SECONDS = 1.0
STREAM_LEAD_SECONDS = 2.0
STREAM_UNIT_SECONDS = 3.0
STREAM_LATENCY_SECONDS = STREAM_UNIT_SECONDS + STREAM_LEAD_SECONDS + STREAM_CHUNK_SECONDS
FADE_SECONDS = 0.02  # fade at a variety switch (a new stream), so it does not click


def find_models(root: str) -> dict[str, str]:
    """``{name: folder}`` of exported models directly under `root` (folders with a preset and card)."""
    if not os.path.isdir(root):
        return {}
    found = {}
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        try:
            check_folder(folder)
        except (FileNotFoundError, ValueError):
            continue
        found[name] = folder
    return found


# ---------------------------------------------------------------------------------------------
# Checking user values


def seed_value(seed) -> int:
    """The user's seed as an int, or a ValueError that says what a seed must be."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        raise ValueError("enter a seed: a whole number >= 0 (the same seed gives the same music)")
    try:
        value = float(seed)
    except (TypeError, ValueError):
        raise ValueError(f"the seed must be a whole number >= 0, got {seed!r}") from None
    if not value.is_integer() or value < 0:
        raise ValueError(f"the seed must be a whole number >= 0, got {seed!r}")
    return int(value)


def number_in(value, low: float, high: float, what: str, unit: str = "") -> float:
    """`value` as a float in [low, high], or a ValueError naming `what` and the range."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"enter the {what} ({low:g} to {high:g}{unit})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the {what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"the {what} must be between {low:g} and {high:g}{unit}, got {value!r}")
    return number


def variety_value(variety) -> float:
    return number_in(variety, VARIETY[0], VARIETY[1], "variety")


def length_value(seconds) -> float:
    return number_in(seconds, MIN_SECONDS, MAX_SECONDS, "length", " s")


def samples_value(count) -> int:
    value = number_in(count, 1, MAX_SAMPLES, "number of samples")
    if not value.is_integer():
        raise ValueError(f"the number of samples must be a whole number, got {count!r}")
    return int(value)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    """A complete 16-bit WAV file of int16 ``[samples, channels]`` (what streaming output takes)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(pcm.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(np.ascontiguousarray(pcm).tobytes())
    return out.getvalue()


@dataclasses.dataclass
class Result:
    """What Generate gives: one ``(rate, int16 [samples, 2])`` per sample, a spectrogram image
    ``[H, W, 3]`` uint8 of their first seconds and a line with the time and real-time factor."""

    audios: list
    image: np.ndarray
    summary: str


# ---------------------------------------------------------------------------------------------
# Endless mode


class LiveStream:
    """One endless stream being played: the engine's `AudioStream`, handed out in int16 WAV chunks
    of STREAM_CHUNK_SECONDS at most STREAM_LEAD_SECONDS ahead of real time, changed while it plays.

    ``changes`` logs every change: ``{"what", "value", "applies_at", "handed_out"}`` (samples), so
    the latency of a change is ``applies_at - handed_out`` samples plus the lead.
    """

    def __init__(self, engine, model: str, seed: int, bound: float, condition,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.engine, self.model, self.seed = engine, model, seed
        self.bound, self.condition = bound, condition
        self.rate = engine.sample_rate
        self.stream = engine.stream(seed, bound, condition)
        self.handed_out = 0  # samples given to the player
        self.changes: list[dict] = []
        self.stopped = False
        self._pending = np.zeros((0, 2), np.float32)  # decoded, not handed out yet
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def chunks(self) -> Iterator[bytes]:
        """WAV chunks until `stop`: the first at once, later ones paced to real time."""
        chunk = int(STREAM_CHUNK_SECONDS * self.rate)
        start = self._clock()
        while not self.stopped:
            with self._lock:
                while len(self._pending) < chunk:
                    self._pending = np.concatenate([self._pending, next(self.stream)])
                piece, self._pending = self._pending[:chunk], self._pending[chunk:]
                self.handed_out += len(piece)
            ahead = self.handed_out / self.rate - (self._clock() - start)
            yield wav_bytes(pcm16(piece), self.rate)
            if ahead > STREAM_LEAD_SECONDS:
                self._sleep(ahead - STREAM_LEAD_SECONDS)

    def set_condition(self, condition: float) -> None:
        """A new normalised condition from the stream's next decode unit (`AudioStream.set_condition`)."""
        with self._lock:
            if condition == self.condition:
                return
            applies_at = self.stream.set_condition(condition)
            self.condition = condition
            self._log("condition", condition, applies_at)

    def set_variety(self, bound: float) -> None:
        """A new truncation bound. The engine's stream keeps its bound, so the same seed's piece
        starts over at the new variety once the audio already decoded has been handed out (a short
        fade joins them); the condition carries on."""
        with self._lock:
            if bound == self.bound:
                return
            fade = min(len(self._pending), int(FADE_SECONDS * self.rate))
            if fade:
                self._pending[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
            applies_at = self.handed_out + len(self._pending)
            self.stream = self.engine.stream(self.seed, bound, self.condition)
            first = next(self.stream)
            ramp = int(FADE_SECONDS * self.rate)
            first[:ramp] *= np.linspace(0.0, 1.0, ramp, dtype=np.float32)[:, None]
            self._pending = np.concatenate([self._pending, first])
            self.bound = bound
            self._log("variety", bound, applies_at)

    def _log(self, what: str, value: float, applies_at: int) -> None:
        self.changes.append({"what": what, "value": value, "applies_at": int(applies_at),
                             "handed_out": self.handed_out})

    def stop(self) -> None:
        self.stopped = True


# ---------------------------------------------------------------------------------------------
# The models


class Generator:
    """Loads exported models on first use and turns UI values into audio."""

    def __init__(self, models: dict[str, str]):
        if not models:
            raise FileNotFoundError(
                "no exported model found; make one with `python -m musika_tf export runs/RUN "
                "checkpoints/NAME` (or `import-reference`), or pass --model FOLDER")
        self.models = models
        self._engines: dict = {}
        self._stream_engines: dict = {}
        self._load_lock = threading.Lock()
        self.live: dict[str, LiveStream] = {}  # session -> its endless stream
        self._tmp = tempfile.mkdtemp(prefix="musika_app_")
        atexit.register(shutil.rmtree, self._tmp, True)

    # --- models

    def engine(self, name: str):
        """The engine over the model's SavedModel (what Generate uses)."""
        from .inference import Engine

        self._check_model(name)
        with self._load_lock:
            if name not in self._engines:
                self._engines[name] = Engine.load(self.models[name])
        return self._engines[name]

    def stream_engine(self, name: str):
        """The engine endless mode uses: the exported one when its decode unit is at most
        STREAM_UNIT_SECONDS, else one over the folder's weights with decode units that short (so a
        change is heard sooner; its decoder noise, keyed by unit, then differs from Generate's)."""
        from .autoencoder import latents_per_chunk
        from .export import load_networks
        from .inference import Engine, InferenceGraphs

        engine = self.engine(name)
        preset, layout = engine.preset, engine.layout
        chunk_seconds = latents_per_chunk(preset) * preset.samples_per_latent / preset.audio.sample_rate
        chunks = max(1, int(STREAM_UNIT_SECONDS // chunk_seconds))
        if layout.decode_chunks <= chunks:
            return engine
        with self._load_lock:
            if name not in self._stream_engines:
                try:
                    preset, layout, generator, ae = load_networks(self.models[name])
                except FileNotFoundError:  # a folder without weights/: its own (longer) units
                    self._stream_engines[name] = engine
                else:
                    layout = dataclasses.replace(layout, decode_chunks=chunks)
                    self._stream_engines[name] = Engine(
                        InferenceGraphs(preset, generator, ae.decoder2, ae.decoder, layout))
        return self._stream_engines[name]

    def _check_model(self, name: str) -> None:
        if name not in self.models:
            raise ValueError(f"unknown model {name!r}; pick one of {', '.join(self.models)}")

    def condition_of(self, name: str) -> str:
        self._check_model(name)
        return load_preset(self.models[name]).gan.cond

    def condition_range(self, name: str) -> tuple[float, float] | None:
        """The model's condition range in display units (its card's ``condition_range`` if it has
        one, else the normalisation's full range); None for unconditional models."""
        cond = self.condition_of(name)
        if cond == "none":
            return None
        low, high = read_card(self.models[name]).get("condition_range", CONDITION_RANGE[cond])
        return float(low), float(high)

    def condition_default(self, name: str) -> float | None:
        """The middle of the model's range on the network's scale, in display units (3.1 onsets/s
        or 130 BPM for the full ranges)."""
        cond, span = self.condition_of(name), self.condition_range(name)
        if span is None:
            return None
        middle = float(np.mean(normalise_condition(cond, np.asarray(span))))
        return round(float(denormalise_condition(cond, middle)), 1)

    def warm_up(self, name: str) -> None:
        """Load `name`'s engines and run their graphs once, so the first request starts at once."""
        value = self.condition_default(name)
        condition = None if value is None else self.condition(name, value, value)
        next(self.engine(name).stream(0, VARIETY[2], condition))
        next(self.stream_engine(name).stream(0, VARIETY[2], condition))

    def describe(self, name: str) -> str:
        """The model card as Markdown: domain, rate, conditioning, data, steps, evaluation."""
        self._check_model(name)
        card = read_card(self.models[name])
        preset = load_preset(self.models[name])
        cond = preset.gan.cond
        lines = [f"**{name}**: {preset.audio.sample_rate} Hz stereo, preset `{preset.name}`"]
        if "domain" in card:
            lines.append(f"domain: {card['domain']}")
        if cond == "none":
            lines.append("conditioning: none")
        else:
            low, high = self.condition_range(name)
            lines.append(f"conditioning: {CONDITION_LABEL[cond]}, {low:g}-{high:g} "
                         f"{CONDITION_UNITS[cond]}")
        for key, label in (("data", "training data"), ("steps", "GAN steps"), ("source", "source")):
            if key in card:
                lines.append(f"{label}: {card[key]}")
        if isinstance(card.get("evaluation"), dict):
            numbers = ", ".join(f"{key} {value}" for key, value in card["evaluation"].items())
            lines.append(f"evaluation: {numbers}")
        return "  \n".join(lines)

    # --- values

    def condition(self, name: str, density=None, tempo=None, density_end=None, tempo_end=None,
                  frames: int | None = None):
        """The engine's condition from the user's values: None (unconditional), a normalised float,
        or (an end value given and `frames` set) a per-frame curve going linearly, in display units,
        from the value to the end value. Values outside the model's range are a ValueError."""
        cond = self.condition_of(name)
        if cond == "none":
            return None
        low, high = self.condition_range(name)
        what, unit = CONDITION_LABEL[cond], f" {CONDITION_UNITS[cond]}"
        start = number_in(density if cond == "density" else tempo, low, high, what, unit)
        end = density_end if cond == "density" else tempo_end
        if end is None or frames is None:
            return float(normalise_condition(cond, start))
        end = number_in(end, low, high, f"{what} at the end", unit)
        return normalise_condition(cond, np.linspace(start, end, max(int(frames), 1)))

    # --- Generate

    def generate(self, name: str, seconds, seed, variety, density=None, tempo=None, samples=1,
                 density_end=None, tempo_end=None,
                 progress: Callable[[float], None] | None = None) -> Result:
        """`samples` pieces (seeds SEED, SEED+1, ...) with a spectrogram and the timing line.

        `progress(fraction)` is called after every block. Bad values are ValueErrors that say what
        to enter.
        """
        from .inference import condition_frames

        seconds, seed = length_value(seconds), seed_value(seed)
        variety, samples = variety_value(variety), samples_value(samples)
        engine = self.engine(name)
        condition = self.condition(name, density, tempo, density_end, tempo_end,
                                   condition_frames(engine.preset, seconds))
        rate = engine.sample_rate
        total, done = samples * int(round(seconds * rate)), 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done / total)

        began = time.perf_counter()
        pieces = [engine.generate(seconds, seed + i, variety, condition, advance) for i in range(samples)]
        took = time.perf_counter() - began
        summary = (f"{samples} x {seconds:g} s in {took:.1f} s: "
                   f"{samples * seconds / max(took, 1e-9):.1f}x real time")
        return Result([(rate, pcm16(piece)) for piece in pieces],
                      self.spectrogram(name, pieces, seed), summary)

    def spectrogram(self, name: str, pieces: list, seed: int) -> np.ndarray:
        """Display spectrograms of the pieces' first seconds as one RGB image (no file left)."""
        import matplotlib.image

        engine = self.engine(name)
        display = int(DISPLAY_SECONDS * engine.sample_rate)
        fd, path = tempfile.mkstemp(suffix=".png", dir=self._tmp)
        os.close(fd)
        try:
            audio_lib.save_spectrogram_png(path, [piece[:display] for piece in pieces],
                                           engine.preset.audio,
                                           titles=[f"{name}, seed {seed + i}" for i in range(len(pieces))])
            image = matplotlib.image.imread(path)
        finally:
            if os.path.exists(path):
                os.unlink(path)
        return (image[..., :3] * 255).round().astype(np.uint8)

    # --- endless mode

    def start_live(self, session: str, name: str, seed, variety, density=None, tempo=None) -> LiveStream:
        """A new endless stream for `session` (ending the one it had)."""
        self.stop_live(session)
        seed, variety = seed_value(seed), variety_value(variety)
        condition = self.condition(name, density, tempo)
        live = LiveStream(self.stream_engine(name), name, seed, variety, condition)
        self.live[session] = live
        return live

    def update_live(self, session: str, name: str, variety, density=None, tempo=None) -> str:
        """Apply slider values to `session`'s stream; returns a status line ('' when none plays)."""
        live = self.live.get(session)
        if live is None or live.stopped or live.model != name:
            return ""
        live.set_variety(variety_value(variety))
        condition = self.condition(name, density, tempo)
        if condition is not None:
            live.set_condition(condition)
        if not live.changes:
            return "streaming"
        change = live.changes[-1]
        return (f"streaming: {change['what']} changes at {change['applies_at'] / live.rate:.1f} s "
                f"of the stream")

    def stop_live(self, session: str) -> None:
        live = self.live.pop(session, None)
        if live is not None:
            live.stop()


# ---------------------------------------------------------------------------------------------
# The UI


def build_ui(generator: Generator):
    """The Gradio Blocks app over `generator`'s models (queued: call ``.launch()`` on it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool
    import gradio as gr

    names = list(generator.models)

    def guarded(fn):
        """`fn` with ValueErrors shown as messages in the UI (never a stack trace)."""
        @functools.wraps(fn)  # Gradio reads the signature (gr.Request, gr.Progress) through it
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ValueError as error:
                raise gr.Error(str(error)) from None
        return run

    def slider_update(name, kind, visible=True):
        """The update of the `kind` slider (or its end slider) for model `name`."""
        if generator.condition_of(name) != kind:
            return gr.update(visible=False)
        low, high = generator.condition_range(name)
        return gr.update(visible=visible, minimum=low, maximum=high,
                         value=generator.condition_default(name))

    def model_changed(name, curve):
        return [slider_update(name, "density"), slider_update(name, "tempo"),
                slider_update(name, "density", bool(curve)), slider_update(name, "tempo", bool(curve)),
                gr.update(visible=generator.condition_of(name) != "none"), generator.describe(name)]

    def curve_changed(name, curve):
        cond = generator.condition_of(name)
        return [gr.update(visible=bool(curve) and cond == kind) for kind in ("density", "tempo")]

    @guarded
    def make(name, seconds, seed, variety, samples, density, tempo, curve, density_end, tempo_end,
             progress=gr.Progress()):
        progress(0.0, desc="generating")
        result = generator.generate(
            name, seconds, seed, variety, density, tempo, samples,
            density_end if curve else None, tempo_end if curve else None,
            progress=lambda fraction: progress(fraction, desc="generating"))
        players = [gr.update(value=audio, visible=True) for audio in result.audios]
        players += [gr.update(value=None, visible=False)] * (MAX_SAMPLES - len(players))
        return [*players, result.image, result.summary]

    def stream(name, seed, variety, density, tempo, request: gr.Request):
        try:
            live = generator.start_live(request.session_hash, name, seed, variety, density, tempo)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        try:
            yield from live.chunks()
        finally:
            if generator.live.get(request.session_hash) is live:
                generator.stop_live(request.session_hash)

    @guarded
    def live_changed(name, variety, density, tempo, request: gr.Request):
        return generator.update_live(request.session_hash, name, variety, density, tempo)

    def stop(request: gr.Request):
        generator.stop_live(request.session_hash)
        return "stopped"

    first = names[0]
    cond = generator.condition_of(first)
    with gr.Blocks(title="musika-tf", delete_cache=(3600, 3600)) as app:
        gr.Markdown("# musika-tf\nFast infinite waveform music generation: any length, stereo, "
                    "on a CPU. The same seed gives the same music.")
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown(names, value=first, label="model")
                info = gr.Markdown(generator.describe(first), elem_id="model-card")
                seconds = gr.Slider(MIN_SECONDS, MAX_SECONDS, value=30, step=1,
                                    label=f"length (seconds, up to {MAX_SECONDS / 60:g} minutes)",
                                    elem_id="length")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                    dice = gr.Button("random", size="sm", elem_id="random-seed")
                low, high, default, step = VARIETY
                variety = gr.Slider(low, high, value=default, step=step, elem_id="variety",
                                    label="variety (truncation: low = steady, high = varied)")
                samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="number of samples",
                                    elem_id="samples")
                sliders = {}
                for kind in ("density", "tempo"):
                    low, high = CONDITION_RANGE[kind] if cond != kind else generator.condition_range(first)
                    value = generator.condition_default(first) if cond == kind else low
                    label = f"{CONDITION_LABEL[kind]} ({CONDITION_UNITS[kind]})"
                    sliders[kind] = gr.Slider(low, high, value=value,
                                              step=SLIDER_STEP[kind], visible=cond == kind,
                                              label=label, elem_id=kind)
                    sliders[kind + "_end"] = gr.Slider(low, high, value=value,
                                                       step=SLIDER_STEP[kind], visible=False,
                                                       label=f"{label} at the end",
                                                       elem_id=f"{kind}-end")
                curve = gr.Checkbox(False, label="change over the piece (start -> end)",
                                    visible=cond != "none", elem_id="curve")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Row():
                    start = gr.Button("Start endless stream", elem_id="start-stream")
                    halt = gr.Button("Stop", elem_id="stop-stream")
            with gr.Column():
                summary = gr.Markdown(elem_id="summary")
                players = [gr.Audio(label=f"sample {i + 1}", type="numpy", visible=i == 0,
                                    elem_id=f"sample-{i + 1}", interactive=False)
                           for i in range(MAX_SAMPLES)]
                image = gr.Image(label=f"spectrogram (first {DISPLAY_SECONDS:.0f} s)", type="numpy", format="png",
                                 interactive=False, elem_id="spectrogram")
                live_audio = gr.Audio(label="endless stream", streaming=True, autoplay=True,
                                      interactive=False, elem_id="live")
                live_status = gr.Markdown(elem_id="live-status")
        density, tempo = sliders["density"], sliders["tempo"]
        ends = [sliders["density_end"], sliders["tempo_end"]]
        model.change(model_changed, inputs=[model, curve], outputs=[density, tempo, *ends, curve, info],
                     api_name=False)
        curve.change(curve_changed, inputs=[model, curve], outputs=ends, api_name=False)
        dice.click(lambda: int(np.random.default_rng().integers(0, 2**31 - 1)), outputs=seed,
                   api_name="random_seed")
        button.click(make, inputs=[model, seconds, seed, variety, samples, density, tempo, curve, *ends],
                     outputs=[*players, image, summary], api_name="generate",
                     concurrency_limit=1, concurrency_id="generate")
        streaming = start.click(stream, inputs=[model, seed, variety, density, tempo],
                                outputs=live_audio, api_name="stream",
                                concurrency_limit=4, concurrency_id="stream")
        for control in (variety, density, tempo):
            control.change(live_changed, inputs=[model, variety, density, tempo], outputs=live_status,
                           api_name="update_stream", trigger_mode="always_last", queue=False)
        halt.click(stop, outputs=live_status, cancels=[streaming], api_name="stop")
    app.queue(max_size=32, default_concurrency_limit=1)
    return app
