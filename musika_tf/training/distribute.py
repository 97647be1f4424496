"""Training on several devices or machines with `tf.distribute`.

`TrainConfig.strategy` (flag ``--strategy``) picks one of `STRATEGIES`:

- ``default``: one device, TensorFlow's default strategy; every helper here is then the identity,
  so steps, numbers and checkpoints are those of training without tf.distribute.
- ``mirrored``: `tf.distribute.MirroredStrategy` over all local GPUs (all logical CPU devices when
  there is no GPU, which is how the tests split one CPU in two).
- ``multi-worker``: `tf.distribute.MultiWorkerMirroredStrategy`; the cluster and this process's role
  come from the ``TF_CONFIG`` environment variable, and the strategy must exist before TensorFlow
  runs its first op (`strategy_for` is called first thing by the training entry points).

The global batch (``TrainConfig.batch_size``) is split evenly: replica ``r`` of ``N`` trains on
rows ``[r B/N, (r+1) B/N)`` of exactly the batch one device would see at that step (`distribute_batches`),
and every loss is a mean over the global batch (`global_mean`, `to_global`), so one step on N replicas
matches one step on one device up to float summation order. Checkpoints are written by the chief;
other workers write theirs to a scratch folder that is deleted again (`checkpoint_dir`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from ..config import STRATEGIES

_CACHE: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """A new strategy of kind `name` (one of `STRATEGIES`)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=local_devices())
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi-worker needs the TF_CONFIG environment variable "
                             "(the cluster and this worker's task; see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def strategy_for(preset) -> tf.distribute.Strategy:
    """The process-wide strategy of ``preset.train.strategy`` (created once, then reused)."""
    name = preset.train.strategy
    if name not in _CACHE:
        _CACHE[name] = make_strategy(name)
    return _CACHE[name]


def local_devices() -> list[str]:
    """Devices a mirrored strategy replicates over: every logical GPU, else every logical CPU."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [d.name for d in devices]


# ---------------------------------------------------------------------------------------------
# Inside a step (replica context)


def num_replicas() -> int:
    """Replicas taking part in the current step (1 outside a distributed step)."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def global_mean(value: tf.Tensor) -> tf.Tensor:
    """The mean of this replica's scalar mean `value` over all replicas: with equal per-replica
    batches, the mean over the global batch. Differentiable; the identity on one replica."""
    if num_replicas() == 1:
        return value
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, value)


def to_global(loss: tf.Tensor) -> tf.Tensor:
    """This replica's share of a global-batch mean loss (``loss / N``): gradients of it, summed
    over replicas by the optimiser, are the gradients of the global-batch loss. The identity on
    one replica."""
    n = num_replicas()
    return loss if n == 1 else loss / tf.cast(n, loss.dtype)


def all_replicas(flag: tf.Tensor) -> tf.Tensor:
    """Scalar bool: `flag` holds on every replica (the identity on one replica)."""
    if num_replicas() == 1:
        return flag
    failures = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(flag), tf.float32))
    return tf.equal(failures, 0.0)


def replica_rows(tensor: tf.Tensor) -> tf.Tensor:
    """This replica's rows of `tensor` ``[N * b, ...]`` drawn for the whole global batch: rows
    ``[r b, (r+1) b)`` of replica ``r`` (all of it on one replica)."""
    ctx = tf.distribute.get_replica_context()
    n = num_replicas()
    if n == 1:
        return tensor
    rows = tf.shape(tensor)[0] // n
    return tensor[ctx.replica_id_in_sync_group * rows:][:rows]


def batch_rows(batch: dict) -> tf.Tensor:
    """The batch size of a (per-replica) batch dict: the leading size of its first array."""
    for value in batch.values():
        if value.shape.rank:
            return tf.shape(value)[0]
    raise ValueError("the batch holds no array with a batch axis")


def in_replica_step() -> bool:
    """True inside `strategy.run` of a strategy other than the default one."""
    return tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context()


def apply_in_sync(fn: Callable, condition: tf.Tensor, *args) -> None:
    """Run ``fn(*args)`` on every replica when `condition` (equal on all replicas) holds.

    A `tf.cond` whose branch applies gradients is not allowed inside a replica step of a strategy
    that synchronises through ``merge_call`` (the optimiser's update needs one), so the condition
    is taken in cross-replica context and the branch re-enters every replica, as Keras's
    `LossScaleOptimizer` does.
    """
    if not in_replica_step():
        tf.cond(condition, lambda: (fn(*args), tf.constant(True))[1], lambda: tf.constant(False))
        return

    def cross_replica(distribution, condition, *args):
        first = distribution.experimental_local_results(condition)[0]

        def run():
            distribution.extended.call_for_each_replica(fn, args=args)
            return tf.constant(True)

        tf.cond(first, run, lambda: tf.constant(False))

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(condition, *args))


# ---------------------------------------------------------------------------------------------
# Data


def distribute_batches(strategy: tf.distribute.Strategy, batches: Iterator[dict]) -> Iterator:
    """Per-replica batches from the global-batch iterator `batches` (dicts of arrays whose leading
    axis is the batch, plus scalars that every replica gets, such as a noise seed).

    Each worker reads the global batches and keeps the rows of its own replicas
    (`tf.distribute.Strategy.distribute_datasets_from_function`), so the data of step n does not
    depend on how many replicas train it, and a run resumes with any number of replicas.
    """
    first = next(batches)
    spec = {k: tf.TensorSpec(np.shape(v), tf.as_dtype(np.asarray(v).dtype)) for k, v in first.items()}
    replicas = strategy.num_replicas_in_sync
    batch = _leading(first)
    if batch % replicas:
        raise ValueError(f"batch size {batch} does not split evenly over {replicas} replicas; "
                         f"use a multiple of {replicas}")

    def generate():
        yield first
        yield from batches

    def input_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        ids = tf.range(context.input_pipeline_id * local, (context.input_pipeline_id + 1) * local)
        whole = tf.data.Dataset.from_generator(
            lambda: ({k: np.asarray(v) for k, v in b.items()} for b in generate()),
            output_signature=spec)
        return whole.flat_map(lambda b: tf.data.Dataset.from_tensor_slices(
            {k: _split(v, replicas, ids) for k, v in b.items()})).prefetch(2)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return iter(strategy.distribute_datasets_from_function(input_fn, options))


def _leading(batch: dict) -> int:
    sizes = {np.shape(v)[0] for v in batch.values() if np.ndim(v)}
    if len(sizes) != 1:
        raise ValueError(f"batch arrays disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def _split(value: tf.Tensor, replicas: int, ids: tf.Tensor) -> tf.Tensor:
    """``[len(ids), B/N, ...]``: the rows of replicas `ids`; scalars repeated for each."""
    if value.shape.rank == 0:
        return tf.fill(tf.shape(ids), value)
    parts = tf.reshape(value, tf.concat([[replicas, -1], tf.shape(value)[1:]], 0))
    return tf.gather(parts, ids)


# ---------------------------------------------------------------------------------------------
# Roles and checkpoints


def task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """``(task type, task id)`` of this process in a multi-worker cluster; ``(None, 0)`` otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: the only process, the ``chief`` task, or worker
    0 of a cluster without a chief."""
    kind, index = task(strategy)
    if kind is None or kind == "chief":
        return True
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return kind == "worker" and index == 0 and "chief" not in spec


def checkpoint_dir(strategy: tf.distribute.Strategy, folder: str) -> str:
    """Where this process writes checkpoints: `folder` for the chief, a scratch folder for other
    workers (every worker must take part in a save; theirs is thrown away, `discard_scratch`)."""
    if is_chief(strategy):
        return folder
    return os.path.join(_scratch(strategy), os.path.basename(folder))


def discard_scratch(strategy: tf.distribute.Strategy) -> None:
    """Delete a non-chief worker's checkpoint scratch folder (nothing for the chief)."""
    if not is_chief(strategy):
        shutil.rmtree(_scratch(strategy), ignore_errors=True)


def _scratch(strategy: tf.distribute.Strategy) -> str:
    kind, index = task(strategy)
    return os.path.join(tempfile.gettempdir(), f"musika-{os.getpid()}-{kind}-{index}")


def tf_config_example(hosts: list[str], index: int) -> str:
    """A ``TF_CONFIG`` value for worker `index` of a cluster of `hosts` (``host:port`` strings)."""
    return json.dumps({"cluster": {"worker": list(hosts)}, "task": {"type": "worker", "index": index}})
