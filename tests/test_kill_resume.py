"""Nothing lost on a crash: GAN training SIGKILLed at random moments (saves every step, so kills
land inside saves too) resumes from its last checkpoint and ends with the weights of an
uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from musika_tf import config
from tests.conftest import REPO
from tests.test_gan_training import write_store

STEPS = 8
PRESET = config.get_preset("tiny", save_every=1, log_every=1, batch_size=2)
TRAIN = """
import sys
from musika_tf.config import load_preset
from musika_tf.training.gan import train_gan
preset = load_preset(sys.argv[1])
train_gan(preset, sys.argv[2], sys.argv[3], steps=int(sys.argv[4]), progress=False)
"""


def _start(preset_dir, store, run) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", TRAIN, preset_dir, store, run, str(STEPS)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _latest_step(run) -> int:
    path = tf.train.latest_checkpoint(os.path.join(run, "ckpt"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def _final_weights(run) -> list:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run, "ckpt")))
    names = sorted(k for k in reader.get_variable_to_shape_map() if k.startswith("gen_ema/"))
    return [reader.get_tensor(k) for k in names]


def test_sigkilled_training_resumes_to_the_uninterrupted_result(tmp_path):
    preset_dir = tmp_path / "preset"
    config.save_preset(PRESET, str(preset_dir))
    store = write_store(tmp_path / "store", PRESET)
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    result = _start(str(preset_dir), store, straight)
    assert result.wait(timeout=600) == 0, result.stderr.read().decode()[-2000:]

    rng = np.random.default_rng(0)
    kills = 0
    while kills < 3:
        proc = _start(str(preset_dir), store, killed)
        before = _latest_step(killed)
        deadline = time.monotonic() + 300
        while _latest_step(killed) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # wait for this process's first save: training is under way
        if proc.poll() is not None:
            break  # finished before it could be killed again
        time.sleep(rng.uniform(0.0, 0.15))  # a save takes about as long as a step here
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert _latest_step(killed) >= before  # never loses more than what was unsaved
    final = _start(str(preset_dir), store, killed)
    assert final.wait(timeout=600) == 0, final.stderr.read().decode()[-2000:]
    assert kills >= 1 and _latest_step(killed) == STEPS
    for a, b in zip(_final_weights(straight), _final_weights(killed)):
        np.testing.assert_array_equal(a, b)
