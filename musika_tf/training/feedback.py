"""Condition feedback: generated windows, decoded and measured, as extra examples for the regressor.

The density regressor R (``gan.condition_loss_weight``) learns the per-frame note density of real
latents only. A generator trained to make R read the requested density can then learn to fool R
instead of playing that many notes: at 97,000 steps of the piano model R read 1.5 ... 6.2 onsets/s
on generated windows whose audio madmom counts at 2.1 ... 3.2 (docs/TRAINING.md, session 11).

With ``gan.condition_feedback_every`` = k > 0, every k steps the current generator makes
`WINDOWS_PER_REFRESH` windows from the step's own coordinates and condition curves; they are
decoded to audio and measured with the detector that made the training labels
(`conditioning.density_curve`: madmom onsets -> per-frame density, normalised), and the
``(latents, measured curve)`` pairs join a buffer of the `CAPACITY` most recent ones. Every step
then carries `BATCH` pairs drawn from the buffer, on which R also learns (its error there is added
to the critic's loss with the condition loss weight). R so learns what generated latents really
sound like, and the generator can only make R read the requested density by playing it.

The buffer depends on the generator's state, so a run with feedback is not a pure function of
``(seed, step)`` as batches otherwise are, and a resumed run starts with an empty buffer (refilled
at its first step). Each refresh appends one line to ``feedback.jsonl`` in the run folder: the
step, and the requested and measured onsets per second of every window (mean over frames), the
plainest view of whether the generator follows its condition.
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Callable

import numpy as np

from musika_tf import conditioning, gan
from musika_tf.config import Preset
from musika_tf.layers import reseed_noise

WINDOWS_PER_REFRESH = 4  # generated windows decoded and measured per refresh (~0.6 s CPU each)
CAPACITY = 48  # most recent measured windows kept
BATCH = 8  # measured windows in every training batch
LOG_NAME = "feedback.jsonl"


def check_feedback(preset: Preset, decode_fn) -> None:
    """Raise ValueError when ``condition_feedback_every`` is set where it cannot work."""
    if not preset.gan.condition_feedback_every:
        return
    if preset.gan.cond != "density" or not gan.uses_condition_regressor(preset):
        raise ValueError("condition_feedback_every needs a density-conditioned preset with the "
                         "condition regressor (cond density, condition_loss_weight > 0)")
    if preset.train.strategy != "default":
        raise ValueError("condition_feedback_every is not supported with a distributed strategy yet;"
                         " use --strategy default")
    if decode_fn is None:
        raise ValueError("condition_feedback_every needs the autoencoder's decoder to measure "
                         "generated audio (train through train.py / musika_tf.training.run)")


class ConditionFeedback:
    """Buffer of ``(generated latents [L, 2D], measured network density [L])`` pairs.

    `decode_fn(latents [L, 2D]) -> audio [samples, 2]` at the preset's rate; `log_dir`: where
    ``feedback.jsonl`` goes (None: no log).
    """

    def __init__(self, preset: Preset, decode_fn: Callable, log_dir: str | None = None,
                 capacity: int = CAPACITY):
        self.preset, self.decode_fn, self.log_dir = preset, decode_fn, log_dir
        self.latents: deque = deque(maxlen=capacity)
        self.values: deque = deque(maxlen=capacity)

    def due(self, draw: int) -> bool:
        """Whether batch `draw` refreshes the buffer (every k draws, and whenever it is empty)."""
        return not self.latents or draw % self.preset.gan.condition_feedback_every == 0

    def measure(self, latents: np.ndarray) -> np.ndarray:
        """Normalised density curves ``[N, L]`` of the audio of windows ``[N, L, 2D]``."""
        frames = latents.shape[1]
        return np.stack([conditioning.density_curve(np.asarray(self.decode_fn(z)), self.preset,
                                                    num_frames=frames) for z in latents])

    def refresh(self, generator, batch: dict, step: int) -> None:
        """Generate `WINDOWS_PER_REFRESH` windows from `batch`'s coordinates and conditions (the
        first rows), measure them and add them to the buffer; log requested vs measured."""
        n, latlen = WINDOWS_PER_REFRESH, self.preset.gan.latlen
        coords = gan.append_condition(batch["coords"][:n], batch["cond"][:n])
        reseed_noise(generator, int(batch["noise_seed"]))
        fake = np.asarray(gan.generate_halves(generator, coords, training=False))[:, 0, :latlen]
        measured = self.measure(fake)
        self.latents.extend(fake.astype(np.float32))
        self.values.extend(measured.astype(np.float32))
        requested = np.asarray(batch["cond"][:n, :latlen, 0])
        self._log(step, requested, measured)

    def sample(self, rng: np.random.Generator, n: int = BATCH) -> dict:
        """``{"fb_latents": [n, 1, L, 2D], "fb_cond": [n, L]}`` drawn from the buffer (with
        replacement); the buffer must not be empty."""
        picks = rng.integers(len(self.latents), size=n)
        return {"fb_latents": np.stack([self.latents[i] for i in picks])[:, None],
                "fb_cond": np.stack([self.values[i] for i in picks])}

    def _log(self, step: int, requested: np.ndarray, measured: np.ndarray) -> None:
        if self.log_dir is None:
            return
        per_second = lambda curves: [round(float(v), 3) for v in
                                     conditioning.density_to_onsets_per_second(curves).mean(axis=1)]
        os.makedirs(self.log_dir, exist_ok=True)
        with open(os.path.join(self.log_dir, LOG_NAME), "a") as f:
            f.write(json.dumps({"step": int(step), "requested": per_second(requested),
                                "measured": per_second(measured)}) + "\n")
