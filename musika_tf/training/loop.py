"""The one training loop every stage (ae1, ae2, gan) runs on.

A stage is a `Trainer` subclass that owns its models, optimisers, data and `train_step`; this module
owns everything around it: checkpoints (atomic, resumable, with the preset beside them), the NaN guard,
tqdm progress with running losses, TensorBoard scalars and periodic previews, and running each
step under the preset's `tf.distribute` strategy (`distribute`).

Checkpoints use `tf.train.CheckpointManager`: TensorFlow writes each checkpoint's files under
temporary names and renames them, and only then atomically rewrites the `checkpoint` index file, so a
crash mid-save leaves the previous checkpoint as the latest valid one.
"""

from __future__ import annotations

import os
import time
from typing import Iterator

import keras
import tensorflow as tf
from tqdm import tqdm

from ..config import Preset, save_preset
from ..layers import replica_batch
from . import distribute

CHECKPOINT_DIR = "ckpt"
LOG_DIR = "logs"
PREVIEW_DIR = "previews"


class NonFiniteTraining(RuntimeError):
    """Training kept producing NaN/inf even after restoring the last good checkpoint."""


def use_mixed_precision(preset: Preset) -> bool:
    """True when the preset asks for it, or on `auto` when a GPU is visible."""
    mode = preset.train.mixed_precision
    if mode == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return mode == "on"


def make_optimizer(preset: Preset, lr: float | None = None, mixed: bool = False):
    """Adam with the preset's settings, wrapped for loss scaling under mixed precision."""
    t = preset.train
    opt = keras.optimizers.Adam(learning_rate=t.lr if lr is None else lr, beta_1=t.beta1,
                                beta_2=t.beta2)
    return keras.optimizers.LossScaleOptimizer(opt) if mixed else opt


def precision_policy(preset: Preset) -> str:
    """The Keras dtype policy models of this preset are built under."""
    return "mixed_float16" if use_mixed_precision(preset) else "float32"


MAX_LOSS_SCALE_SKIPS = 64  # consecutive skipped loss-scaled updates before giving up (2^-64 scale)


def scale_loss(optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss a tape differentiates: this replica's share of the global-batch loss
    (`distribute.to_global`; the loss itself on one device), scaled by a loss-scale optimiser."""
    loss = distribute.to_global(loss)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def update_is_finite(losses_: list, grads: list, mixed: bool) -> tf.Tensor:
    """Whether a step may be applied: finite losses, and finite gradients unless a loss-scale
    optimiser (mixed precision) handles overflowing gradients itself; on several replicas, on
    every replica (so all of them take the same decision)."""
    return distribute.all_replicas(all_finite(*losses_, *([] if mixed else grads)))


def update_applied(finite: tf.Tensor, grads: list, mixed: bool) -> tf.Tensor:
    """Whether the optimisers really change the weights this step: `finite`, and under mixed
    precision also finite (loss-scaled) gradients, since a loss-scale optimiser skips a step whose
    gradients overflow (lowering its scale). A skipped step must not advance an EMA or a counter."""
    return tf.logical_and(finite, distribute.all_replicas(all_finite(*grads))) if mixed else finite


def sync_overflow(grads: list) -> list:
    """Loss-scaled `grads` of a replica step, made non-finite on every replica when they overflow
    on any, so the loss-scale optimiser skips the update and lowers its scale on all replicas alike
    (it checks one replica's gradients only). Unchanged outside a replica step."""
    if not distribute.in_replica_step():
        return grads
    poison = tf.where(distribute.all_replicas(all_finite(*grads)), 0.0, float("nan"))
    return [None if g is None else g + tf.cast(poison, g.dtype) for g in grads]


def all_finite(*tensors) -> tf.Tensor:
    """Scalar bool: every element of every (possibly None) tensor is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(tf.cast(t, tf.float32))) for t in tensors
              if t is not None]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


def apply_if_finite(optimizer, grads, variables, finite: tf.Tensor) -> None:
    """Apply `grads` only when `finite`; otherwise leave weights and optimiser state untouched.

    On several replicas `grads` are this replica's (of `scale_loss`'s share of the loss); the
    optimiser sums them over the replicas, and `finite` must be equal on all (`update_is_finite`).
    """
    grads = list(grads)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        grads = sync_overflow(grads)
    distribute.apply_in_sync(lambda g: optimizer.apply_gradients(zip(g, variables)), finite, grads)


class Trainer:
    """Base class of a training stage.

    Subclasses set `name` and implement `models`, `optimizers`, `batches` and `train_step`;
    `extra_state` and `preview` are optional. `train_step(batch)` must return a dict of scalar
    losses plus a boolean `finite` and must not update anything when `finite` is False (use
    `apply_if_finite`); optionally a boolean `applied` (`update_applied`), False when a loss-scale
    optimiser skipped the update, so the step is not counted.

    Under a distributed strategy the trainer is built in ``strategy.scope()`` and `train_step`
    runs on each replica with its rows of the batch: losses through `scale_loss` (the replica's
    share of the global-batch loss), decisions through `update_is_finite` / `update_applied` (equal
    on all replicas), updates through `apply_if_finite` or `distribute.apply_in_sync`.
    """

    name = "stage"

    def __init__(self, preset: Preset, run_dir: str):
        self.preset = preset
        self.run_dir = run_dir

    def models(self) -> dict[str, keras.Model]:
        raise NotImplementedError

    def optimizers(self) -> dict:
        raise NotImplementedError

    def extra_state(self) -> dict[str, tf.Variable]:
        return {}

    def batches(self, start_step: int = 0) -> Iterator:
        """Endless batches, beginning with the one of step `start_step` (`fit` passes the number
        of finished steps after any restore, so a resumed run sees the batches an uninterrupted
        one would; a step skipped as non-finite consumes its batch, as it does uninterrupted)."""
        raise NotImplementedError

    def train_step(self, batch) -> dict[str, tf.Tensor]:
        raise NotImplementedError

    def build_optimizers(self) -> None:
        """Create optimiser slots before the first step, so checkpoints can restore into them."""
        for name, opt in self.optimizers().items():
            opt.build(self.trainable_variables_for(name))

    def trainable_variables_for(self, optimizer_name: str) -> list:
        """The variables optimiser `optimizer_name` updates (default: the same-named model's)."""
        return self.models()[optimizer_name].trainable_variables

    def preview(self, out_dir: str) -> None:
        """Write preview audio/images for the current weights into `out_dir` (optional)."""


class RunningMeans:
    """Means of logged scalars since the last `reset`."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, logs: dict) -> None:
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def reset(self) -> None:
        self.sums, self.count = {}, 0


def fit(trainer: Trainer, steps: int | None = None, resume: bool = True, progress: bool = True,
        max_nan_steps: int = 5, preview: bool = True, max_to_keep: int = 3) -> dict[str, float]:
    """Train `trainer` up to `steps` total steps (default: the preset's); return the last means.

    Resumes from the latest checkpoint in `run_dir/ckpt` when `resume`. A step whose losses or
    gradients are not finite changes nothing; after `max_nan_steps` such steps in a row the last
    good checkpoint is restored (or, if it keeps failing after a restore, `NonFiniteTraining`).

    Under ``preset.train.strategy`` (the trainer must have been built in its scope) each step runs
    on every replica; only the chief writes the preset, logs, previews and checkpoints.
    """
    preset = trainer.preset
    steps = preset.train.steps if steps is None else steps
    strategy = distribute.strategy_for(preset)
    chief = distribute.is_chief(strategy)
    if chief:
        os.makedirs(trainer.run_dir, exist_ok=True)
        save_preset(preset, trainer.run_dir)

    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")  # host-side counter
    with strategy.scope():
        trainer.build_optimizers()
    checkpoint = tf.train.Checkpoint(step=step, **trainer.models(), **_prefixed(trainer.optimizers()),
                                     **trainer.extra_state())
    folder = os.path.join(trainer.run_dir, CHECKPOINT_DIR)
    manager = tf.train.CheckpointManager(checkpoint, distribute.checkpoint_dir(strategy, folder),
                                         max_to_keep=max_to_keep)
    latest = lambda: tf.train.latest_checkpoint(folder)  # every worker reads the chief's
    if resume and latest():
        restore_all(checkpoint, latest())
        tqdm.write(f"resumed {trainer.name} from {latest()} (step {int(step)})")

    step_fn = make_step_fn(trainer, strategy)
    writer = (tf.summary.create_file_writer(os.path.join(trainer.run_dir, LOG_DIR, trainer.name))
              if chief else tf.summary.create_noop_writer())
    running, last = RunningMeans(), {}
    nan_streak, restored_since_good, scale_skips = 0, False, 0
    batches = trainer.batches(int(step))
    if preset.train.strategy != "default":
        batches = distribute.distribute_batches(strategy, batches)
    bar = tqdm(total=steps, initial=int(step), desc=trainer.name, unit="step",
               disable=not (progress and chief), dynamic_ncols=True)
    started = time.perf_counter()
    while int(step) < steps:
        logs = step_fn(next(batches))
        if not bool(logs.pop("finite")):
            nan_streak += 1
            if nan_streak >= max_nan_steps:
                restored_since_good = _recover(checkpoint, latest(), restored_since_good,
                                               trainer.name)
                nan_streak = 0
            continue
        nan_streak, restored_since_good = 0, False
        if not bool(logs.pop("applied", True)):  # loss scale lowered after an overflow: not a step
            scale_skips += 1
            if scale_skips > MAX_LOSS_SCALE_SKIPS:
                raise NonFiniteTraining(f"{trainer.name}: {scale_skips} loss-scaled updates in a row "
                                        "overflowed float16; train with --mixed-precision off")
            continue
        scale_skips = 0
        step.assign_add(1)
        bar.update(1)
        running.add(logs)
        current = int(step)
        if current % preset.train.log_every == 0 or current == steps:
            last = running.means()
            elapsed = time.perf_counter() - started
            last["sec_per_step"] = elapsed / max(running.count, 1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in last.items()})
            with writer.as_default(step=current):
                for key, value in last.items():
                    tf.summary.scalar(key, value)
            running.reset()
            started = time.perf_counter()
        if current % preset.train.save_every == 0 or current == steps:
            manager.save(checkpoint_number=current)  # every worker: saving may need collectives
            if preview and chief:
                trainer.preview(os.path.join(trainer.run_dir, PREVIEW_DIR, f"step-{current:08d}"))
    bar.close()
    writer.flush()
    distribute.discard_scratch(strategy)
    return last


def make_step_fn(trainer: Trainer, strategy: tf.distribute.Strategy):
    """The compiled step: `trainer.train_step` itself with the default strategy, else run on
    every replica with its logs reduced to global-batch means (flags taken from the first
    replica: they are equal on all)."""
    xla = trainer.preset.train.xla
    if trainer.preset.train.strategy == "default":
        return tf.function(trainer.train_step, jit_compile=xla)
    if xla:
        raise ValueError("--xla is not supported with a distributed --strategy yet; use --xla false")

    def reduce(value):
        first = strategy.experimental_local_results(value)[0]
        if first.dtype == tf.bool:
            return first
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

    def replica_step(batch):
        with replica_batch(distribute.batch_rows(batch)):
            return trainer.train_step(batch)

    def distributed_step(batch):
        logs = strategy.run(replica_step, args=(batch,))
        return {key: reduce(value) for key, value in logs.items()}

    return tf.function(distributed_step)


def checkpoint_children(path: str) -> set[str]:
    """Names of the objects saved at the root of a `tf.train.Checkpoint` (e.g. ``gen_ema``)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name for child in graph.nodes[0].children}


def _prefixed(optimizers: dict) -> dict:
    return {f"opt_{name}": opt for name, opt in optimizers.items()}


def restore_all(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restore `path` into `checkpoint`, requiring every saved value and every tracked object
    (weights, optimiser slots, counters) to match; a mismatch is an error naming the file."""
    status = checkpoint.restore(path)
    try:
        status.assert_consumed()
    except AssertionError as err:
        raise ValueError(
            f"{path}: the checkpoint does not hold exactly this stage's training state (networks, "
            f"optimiser slots, counters): {str(err)[:400]}; it was written by another preset or "
            "version: start the stage over with --no-resume or use another --run") from err


def _recover(checkpoint, latest: str | None, restored_since_good: bool, name: str) -> bool:
    """Restore the last good checkpoint `latest` after repeated non-finite steps."""
    if restored_since_good or not latest:
        raise NonFiniteTraining(
            f"{name}: losses or gradients stayed NaN/inf"
            + (" after restoring the last checkpoint" if restored_since_good else
               " and there is no checkpoint to restore yet")
            + "; lower the learning rate (--lr) or check the data")
    restore_all(checkpoint, latest)
    tqdm.write(f"warning: {name}: repeated non-finite steps; restored {latest}")
    return True

