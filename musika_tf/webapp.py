"""The Gradio app: pick an exported model, set length, seed, variety and (if the model was trained
with one) note density or tempo, and get stereo audio plus its display spectrogram.

Models are folders under ``checkpoints/`` written by ``python -m musika_tf export`` or
``import-reference``; they are loaded with `tf.saved_model.load` (no training code) and cached.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from . import audio as audio_lib
from .conditioning import CONDITION_UNITS, condition_from_user
from .config import load_preset
from .export import check_folder, read_card

DISPLAY_SECONDS = 23.0  # the reference UI shows the first 23 s
SLIDERS = {"density": (0.0, 16.0, 3.0, 0.1), "tempo": (60.0, 200.0, 130.0, 1.0)}  # min, max, default, step


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


class Generator:
    """Loads exported models on first use and turns UI values into audio."""

    def __init__(self, models: dict[str, str]):
        if not models:
            raise FileNotFoundError(
                "no exported model found; make one with `python -m musika_tf export runs/RUN "
                "checkpoints/NAME` (or `import-reference`), or pass --model FOLDER")
        self.models = models
        self._engines: dict = {}

    def engine(self, name: str):
        from .inference import Engine

        if name not in self._engines:
            self._engines[name] = Engine.load(self.models[name])
        return self._engines[name]

    def condition_of(self, name: str) -> str:
        return load_preset(self.models[name]).gan.cond

    def describe(self, name: str) -> str:
        card = read_card(self.models[name])
        preset = load_preset(self.models[name])
        cond = preset.gan.cond
        lines = [f"**{name}**: {preset.audio.sample_rate} Hz stereo, preset `{preset.name}`",
                 f"conditioning: {cond if cond != 'none' else 'none'}"]
        for key in ("data", "steps", "source"):
            if key in card:
                lines.append(f"{key}: {card[key]}")
        return "  \n".join(lines)

    def generate(self, name: str, seconds: float, seed: int, variety: float,
                 density: float | None = None, tempo: float | None = None, png_dir: str | None = None):
        """-> ((sample_rate, int16 audio [samples, 2]), PNG path of the first seconds)."""
        if not seconds or seconds <= 0:
            raise ValueError("the length must be positive")
        seed = seed_value(seed)
        if variety is None or not float(variety) > 0:
            raise ValueError("variety must be a positive number (2 is the default)")
        cond = self.condition_of(name)
        condition = condition_from_user(cond, density if cond == "density" else None,
                                        tempo if cond == "tempo" else None)
        engine = self.engine(name)
        audio = engine.generate(float(seconds), int(seed), float(variety), condition)
        rate = engine.sample_rate
        png = os.path.join(png_dir or tempfile.mkdtemp(prefix="musika_"), f"{name}_{int(seed)}.png")
        audio_lib.save_spectrogram_png(png, [audio[: int(DISPLAY_SECONDS * rate)]], engine.preset.audio,
                                       titles=[f"{name}, seed {int(seed)}"])
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        return (rate, pcm), png


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


def build_ui(generator: Generator):
    """The Gradio Blocks app over `generator`'s models."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool
    import gradio as gr

    names = list(generator.models)

    def slider_updates(name):
        cond = generator.condition_of(name)
        return (gr.update(visible=cond == "density"), gr.update(visible=cond == "tempo"),
                generator.describe(name))

    def run(name, seconds, seed, variety, density, tempo):
        try:
            return generator.generate(name, seconds, seed, variety, density, tempo)
        except ValueError as error:
            raise gr.Error(str(error))

    with gr.Blocks(title="musika-tf") as app:
        gr.Markdown("# musika-tf\nFast infinite waveform music generation: any length, stereo, "
                    "on a CPU. The same seed gives the same music.")
        with gr.Row():
            with gr.Column():
                model = gr.Dropdown(names, value=names[0], label="model")
                info = gr.Markdown(generator.describe(names[0]))
                seconds = gr.Slider(1, 600, value=60, step=1, label="length (seconds)")
                seed = gr.Number(value=0, precision=0, label="seed")
                variety = gr.Slider(0.1, 3.9, value=2.0, step=0.1,
                                    label="variety (truncation: low = steady, high = varied)")
                cond = generator.condition_of(names[0])
                lo, hi, default, step = SLIDERS["density"]
                density = gr.Slider(lo, hi, value=default, step=step, visible=cond == "density",
                                    label=f"note density ({CONDITION_UNITS['density']})")
                lo, hi, default, step = SLIDERS["tempo"]
                tempo = gr.Slider(lo, hi, value=default, step=step, visible=cond == "tempo",
                                  label=f"tempo ({CONDITION_UNITS['tempo']})")
                button = gr.Button("Generate", variant="primary")
            with gr.Column():
                sound = gr.Audio(label="generated audio", type="numpy")
                image = gr.Image(label=f"spectrogram (first {DISPLAY_SECONDS:.0f} s)", type="filepath")
        model.change(slider_updates, inputs=model, outputs=[density, tempo, info])
        button.click(run, inputs=[model, seconds, seed, variety, density, tempo],
                     outputs=[sound, image], api_name="generate")
    return app
