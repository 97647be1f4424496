"""Training under tf.distribute on CPU: one step on two logical devices (MirroredStrategy) equals
one step on one device with the same global batch, for the AE phase-2 and level-2 steps and the
GAN step; two local workers (MultiWorkerMirroredStrategy over loopback, TF_CONFIG) train to one
checkpoint that one process then resumes. Each run is a fresh interpreter
(`tests/distributed_worker.py`), since devices and collectives must be configured before
TensorFlow starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from musika_tf import config
from musika_tf.training import distribute
from tests.conftest import REPO
from tests.test_ae_training import RATE, _music
from tests.test_gan_training import write_store
from tests.tiny_models import free_port

RTOL = 1e-3  # per tensor: max |one - two| <= RTOL * max |one| (float summation order differs)
# Adam's first step moves each weight by lr * g / (|g| + eps): a weight whose gradient is near eps
# (a bias that starts at 0, in a layer that barely matters yet) moves by a fraction of lr that
# depends on the rounding of g, so both sides may differ there by a small fraction of lr. A wrong
# gradient (another batch, a missing replica) moves weights by about lr apart, 100x this.
ADAM_ATOL = 0.01 * config.get_preset("tiny").train.lr


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def _worker(*args, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", *map(str, args)],
                            cwd=REPO, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: int = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _assert_close(one: np.ndarray, two: np.ndarray, name: str, atol: float = ADAM_ATOL,
                  rtol: float = RTOL) -> None:
    if one.dtype.kind not in "fc":
        np.testing.assert_array_equal(two, one, err_msg=name)
        return
    scale = max(float(np.max(np.abs(one))), 1e-12) if one.size else 1.0
    diff = float(np.max(np.abs(one - two))) if one.size else 0.0
    assert diff <= rtol * scale + atol, \
        f"{name}: max difference {diff:.3g} vs max magnitude {scale:.3g}"


def _compare_one_step(arrays, rtol: float = RTOL) -> None:
    """Every variable (weights, optimiser slots, extra state) agrees; the step changed weights."""
    assert int(arrays["replicas"]) == 2
    names = sorted(k[len("one/"):] for k in arrays.files if k.startswith("one/"))
    assert names == sorted(k[len("two/"):] for k in arrays.files if k.startswith("two/"))
    for name in names:
        _assert_close(arrays[f"one/{name}"], arrays[f"two/{name}"], name, rtol=rtol)
    moved = [k for k in arrays.files if k.startswith("initial/")
             and not np.array_equal(arrays[k], arrays["one/" + k[len("initial/"):]])]
    assert len(moved) > 10, moved  # a real update, not two untouched copies


def test_mirrored_gan_step_equals_one_device_step(tmp_path):
    store = write_store(tmp_path / "store", config.get_preset("tiny"))
    _finish(_worker("compare-gan", store, tmp_path / "gan.npz"))
    arrays = np.load(tmp_path / "gan.npz")
    _compare_one_step(arrays)
    assert "one/r1_switch" in arrays.files and "one/gen_ema/0" in arrays.files
    assert not bool(arrays["loss_scaled"])


def test_mirrored_mixed_precision_gan_step_equals_one_device_step(tmp_path):
    """Loss-scale optimisers on both sides (float16 sums in another order: a looser tolerance; a
    gradient off by the replica count would be off by 100%)."""
    store = write_store(tmp_path / "store", config.get_preset("tiny"))
    _finish(_worker("compare-gan", store, tmp_path / "gan.npz", json.dumps({"mixed_precision": "on"})))
    arrays = np.load(tmp_path / "gan.npz")
    assert bool(arrays["loss_scaled"])
    _compare_one_step(arrays, rtol=5e-2)


@pytest.mark.parametrize("stage", ["phase2", "ae2"])
def test_mirrored_ae_step_equals_one_device_step(tmp_path, stage):
    """Level-1 phase 2 and level 2 (whose frozen decoder runs on folded latents)."""
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", _music(8.0), RATE)
    _finish(_worker("compare-ae", tmp_path / "audio", tmp_path / "ae.npz",
                    json.dumps({"stage": stage})))
    arrays = np.load(tmp_path / "ae.npz")
    _compare_one_step(arrays)
    assert any(k.startswith("one/critic/") for k in arrays.files)


# ---------------------------------------------------------------------------------------------
# Two workers on loopback


PRESET = config.get_preset("tiny", save_every=2, log_every=1)


def _gan_weights(run: str) -> dict:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(run, "ckpt")))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("generator/", "gen_ema/", "critic/"))}


def _latest_step(run: str) -> int:
    path = tf.train.latest_checkpoint(os.path.join(run, "ckpt"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def test_two_workers_train_to_one_checkpoint_that_one_process_resumes(tmp_path):
    store = write_store(tmp_path / "store", PRESET)
    presets = {}
    for name in ("default", "multi-worker"):
        presets[name] = tmp_path / f"preset-{name}"
        config.save_preset(PRESET.with_overrides(strategy=name), str(presets[name]))
    hosts = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    shared, straight = str(tmp_path / "shared"), str(tmp_path / "straight")

    workers = [_worker("train-gan", presets["multi-worker"], store, shared, 3,
                       TF_CONFIG=distribute.tf_config_example(hosts, i)) for i in range(2)]
    reference = _worker("train-gan", presets["default"], store, straight, 3)
    for proc in workers + [reference]:
        _finish(proc)
    assert _latest_step(shared) == 3
    assert sorted(os.listdir(os.path.join(shared, "ckpt"))) == sorted(os.listdir(
        os.path.join(straight, "ckpt")))  # the chief's checkpoints only, as one process writes
    scratch = os.path.join(tempfile.gettempdir(), f"musika-{workers[1].pid}-worker-1")
    assert not os.path.exists(scratch)  # worker 1 saved to scratch and removed it
    with open(os.path.join(shared, "preset.json")) as fh:
        assert json.load(fh)["train"]["strategy"] == "multi-worker"
    # Two workers of two-sample batches train as one process on the four-sample global batch.
    two, one = _gan_weights(shared), _gan_weights(straight)
    assert sorted(two) == sorted(one)
    for name in one:
        _assert_close(one[name], two[name], name)

    resumed = _finish(_worker("train-gan", presets["default"], store, shared, 5))
    assert "resumed gan" in resumed and "(step 3)" in resumed
    assert _latest_step(shared) == 5
    _finish(_worker("train-gan", presets["default"], store, straight, 5))
    two, one = _gan_weights(shared), _gan_weights(straight)
    for name in one:
        _assert_close(one[name], two[name], name)


def test_batches_split_into_each_replicas_rows_of_the_global_batch():
    """What each replica receives: its rows of every array, the scalars whole (one replica here;
    the rows of two replicas are checked by the equivalence tests above)."""
    strategy = tf.distribute.get_strategy()
    batches = iter([{"real": np.arange(8.0).reshape(4, 2), "noise_seed": np.int64(7)}] * 2)
    first = next(distribute.distribute_batches(strategy, batches))
    np.testing.assert_array_equal(first["real"], np.arange(8.0).reshape(4, 2))
    assert int(first["noise_seed"]) == 7
    ids = tf.constant([1])
    np.testing.assert_array_equal(distribute._split(tf.reshape(tf.range(8), (4, 2)), 2, ids),
                                  [[[4, 5], [6, 7]]])
    np.testing.assert_array_equal(distribute._split(tf.constant(3), 2, ids), [3])
    class TwoReplicas:
        num_replicas_in_sync = 2

    with pytest.raises(ValueError, match="split evenly"):
        distribute.distribute_batches(TwoReplicas(), iter([{"real": np.zeros((3, 2))}]))


def test_chief_and_checkpoint_folder_of_each_role(monkeypatch):
    class Resolver:
        def __init__(self, kind, index, spec):
            self.task_type, self.task_id, self._spec = kind, index, spec

        def cluster_spec(self):
            return tf.train.ClusterSpec(self._spec)

    class Fake:
        def __init__(self, *role):
            self.cluster_resolver = Resolver(*role)

    workers = {"worker": ["a:1", "b:2"]}
    assert distribute.is_chief(tf.distribute.get_strategy())
    assert distribute.is_chief(Fake("worker", 0, workers))
    assert not distribute.is_chief(Fake("worker", 1, workers))
    assert distribute.is_chief(Fake("chief", 0, {**workers, "chief": ["c:3"]}))
    assert not distribute.is_chief(Fake("worker", 0, {**workers, "chief": ["c:3"]}))
    assert distribute.checkpoint_dir(Fake("worker", 0, workers), "run/ckpt") == "run/ckpt"
    other = distribute.checkpoint_dir(Fake("worker", 1, workers), "run/ckpt")
    assert other.startswith(tempfile.gettempdir()) and other.endswith("ckpt")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        monkeypatch.delenv("TF_CONFIG", raising=False)
        distribute.make_strategy("multi-worker")
    with pytest.raises(ValueError, match="unknown strategy"):
        distribute.make_strategy("tpu")
