"""Checkpoints of models with CAFE layers: layout checks, periodic saving, resuming.

Everything a CAFE layer learns is in `tf.Variable`s (hot table, hashed tables,
sketch slots (fingerprint and hot row or cold marker) and scores, decay bookkeeping, counters),
so a plain `tf.train.Checkpoint(model=..., optimizer=...)` or `model.save_weights`
already captures it, optimizer slots included, and each layer also checkpoints
its own layout (`cafe_tf.layers.layout_record.LayerLayoutRecord`), so restoring
into a layer of another layout fails. This module adds:

- `make_checkpoint`: such a checkpoint plus a record of every CAFE layer's layout,
  so a checkpoint written by a layer of another shape *or* another split of the
  same shapes (e.g. vocabulary sizes that move hashed rows between features) is
  refused;
- `verify_checkpoint` / `restore`: refuse a mismatching checkpoint *before*
  touching any variable, with an error that names each mismatch (CAFE layer,
  variable, both shapes or layout fields). Works on any TF checkpoint, also those
  of `model.save_weights` (shapes only, then). They first read every value of the
  checkpoint once, so a truncated, corrupted or missing file is refused too
  (`CheckpointCorruptError`, naming the file), and never half restored;
- `PeriodicCheckpoint`: a Keras callback that saves through a
  `tf.train.CheckpointManager` every N optimizer steps (crash-safe: the manager
  only points at fully written checkpoints);
- `restore_latest`: resume from a manager's newest checkpoint;
- `ExactBackupAndRestore`: tf_keras `BackupAndRestore` (which also handles
  `MultiWorkerMirroredStrategy`) that resumes mid-epoch exactly: it backs up after
  every callback has finished the step, and says how many batches of the input
  stream the backup has trained on, so the resumed run skips exactly those.

Example:
  >>> checkpoint = make_checkpoint(model)                  # model + optimizer + layout  # doctest: +SKIP
  >>> manager = tf.train.CheckpointManager(checkpoint, "/tmp/run", max_to_keep=3)  # doctest: +SKIP
  >>> step = restore_latest(manager)                       # 0 on a fresh start  # doctest: +SKIP
  >>> model.fit(dataset.skip(step), steps_per_epoch=total - step,  # doctest: +SKIP
  ...           callbacks=[CafeMigration(3), PeriodicCheckpoint(manager, every_n_steps=50)])
"""

import json
import os

import tensorflow as tf
import tf_keras
from tensorflow.core.protobuf import trackable_object_graph_pb2

from cafe_tf.layers import optimizer_slots
from cafe_tf.layers.cafe_embedding import find_cafe_layers
from cafe_tf.layers.layout_record import (
    SKETCH_STATE_VERSION,
    CheckpointMismatchError,
    LayoutRecord,
    layer_layout,
    layout_differences,
    mismatch_message,
)

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_LAYOUT_ATTRIBUTE = "cafe_layout"


class CheckpointCorruptError(ValueError):
    """A checkpoint's files cannot be read: missing, truncated or corrupted."""


def layout_signature(root) -> dict[str, dict]:
    """{layer name: layer_layout} of every CAFE layer under `root`."""
    return {layer.name: layer_layout(layer) for layer in find_cafe_layers(root)}


class CafeLayoutRecord(LayoutRecord):
    """Checkpointed record of the CAFE layouts of a model.

    Restoring it (directly through `tf.train.Checkpoint.restore`, too) raises
    `CheckpointMismatchError` when the checkpoint's layouts differ from the
    model's. `verify_checkpoint` checks it before anything is restored.
    """

    def __init__(self, root):
        self._root = root

    def current(self) -> dict[str, dict]:
        return layout_signature(self._root)

    def serialize(self) -> str:
        return json.dumps(self.current(), sort_keys=True)

    def problems(self, saved: str) -> list[str]:
        return layout_differences(json.loads(saved), self.current())


def make_checkpoint(model, optimizer="model", **objects) -> tf.train.Checkpoint:
    """`tf.train.Checkpoint(model=..., optimizer=..., cafe_layout=..., **objects)`.

    Args:
      model: the model (or layer) holding CAFE layers.
      optimizer: "model" for `model.optimizer` (when set), an optimizer, or None.
      **objects: more trackables to save (e.g. a tf.data iterator).
    """
    if optimizer == "model":
        optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        objects["optimizer"] = optimizer
    return tf.train.Checkpoint(
        model=model, **{_LAYOUT_ATTRIBUTE: CafeLayoutRecord(model)}, **objects
    )


def _checkpoint_objects(root, graph):
    """(live object, attribute name, checkpoint key) of the checkpoint's attributes,
    matched to `root`'s objects the way restore matches them (by child names)."""
    matched, seen = [], set()
    stack = [(0, root)]
    while stack:
        node_id, obj = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        matched.extend((obj, a.name, a.checkpoint_key) for a in node.attributes)
        try:
            children = tf.train.TrackableView.children(obj)
        except Exception:
            continue
        for ref in node.children:
            child = children.get(ref.local_name)
            if child is not None:
                stack.append((ref.node_id, child))
    return matched


def _variable_owners(root):
    """id(variable) -> (rank, description) for CAFE layers' variables and their
    optimizer slots (rank orders the error lines: layer state first)."""
    optimizers = [
        obj
        for obj in tf.train.TrackableView(root).descendants()
        if isinstance(obj, (tf_keras.optimizers.Optimizer, tf_keras.optimizers.legacy.Optimizer))
    ]
    owners = {}
    for layer in find_cafe_layers(root):
        for v in layer.weights:
            short = v.name.split("/")[-1].split(":")[0]
            owners[id(v)] = (1, f"CAFE layer '{layer.name}', {short}")
            for optimizer in optimizers if v.trainable else ():
                for slot, _ in optimizer_slots.slots_for(optimizer, v):
                    slot_name = slot.name.split("/")[0]
                    owners[id(slot)] = (
                        2,
                        f"CAFE layer '{layer.name}', {short}: optimizer slot '{slot_name}'",
                    )
    return owners


def read_checkpoint(save_path: str):
    """`tf.train.load_checkpoint(save_path)`, after reading each of its values once.

    TensorFlow checks each value's checksum as it reads it, so this finds a truncated or
    corrupted file before any variable is restored, which could otherwise fail halfway
    (or later, when a variable created after the restore reads its value). It costs one
    read of the checkpoint's data.

    Raises:
      CheckpointCorruptError: the index file is missing or unreadable, or a value
        cannot be read from the data files; the message names the file.
    """
    index = f"{save_path}.index"
    try:
        reader = tf.train.load_checkpoint(save_path)
    except Exception as err:
        what = "is unreadable" if tf.io.gfile.exists(index) else "does not exist"
        raise CheckpointCorruptError(
            f"checkpoint '{save_path}': its index file {index} {what} "
            f"({_first_line(err)}); nothing was restored"
        ) from None
    data = sorted(tf.io.gfile.glob(f"{save_path}.data-*"))
    problem = (
        f"the data file {' or '.join(data)} is truncated or corrupted"
        if data
        else f"its data file {save_path}.data-*-of-* is missing"
    )
    for key in sorted(reader.get_variable_to_shape_map()):
        try:
            reader.get_tensor(key)
        except Exception as err:
            raise CheckpointCorruptError(
                f"checkpoint '{save_path}': {problem}: reading '{key}' failed "
                f"({_first_line(err)}); nothing was restored"
            ) from None
    return reader


def _first_line(err: Exception) -> str:
    text = getattr(err, "message", None) or str(err) or type(err).__name__
    return text.strip().splitlines()[0]


def mismatches(root, save_path: str) -> list[str]:
    """Why the checkpoint at `save_path` cannot be restored into `root` ([] if it can).

    `root` is what the checkpoint was written from: a `tf.train.Checkpoint`
    (for `Checkpoint.save` / `CheckpointManager`) or the model (for
    `model.save_weights`). Build the model first: unbuilt layers have no
    variables to compare.

    Raises:
      CheckpointCorruptError: the checkpoint's files cannot be read (`read_checkpoint`).
    """
    reader = read_checkpoint(save_path)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
    owners = _variable_owners(root)
    problems = []  # (rank, text)
    found = set()
    for obj, attribute, key in _checkpoint_objects(root, graph):
        if isinstance(obj, LayoutRecord) and key in shapes:
            problems.extend((0, p) for p in obj.problems(reader.get_tensor(key).decode()))
            continue
        if attribute != "VARIABLE_VALUE" or key not in shapes:
            continue
        found.add(id(obj))
        shape, dtype = getattr(obj, "shape", None), getattr(obj, "dtype", None)
        if shape is None or dtype is None:
            continue
        rank, what = owners.get(id(obj), (3, f"variable '{getattr(obj, 'name', key)}'"))
        if list(shape) != list(shapes[key]):
            problems.append(
                (
                    rank,
                    f"{what}: shape {list(shapes[key])} in the checkpoint but "
                    f"{shape.as_list()} in this model",
                )
            )
        elif tf.as_dtype(dtype).base_dtype != dtypes[key]:
            problems.append(
                (
                    rank,
                    f"{what}: dtype {dtypes[key].name} in the checkpoint but "
                    f"{tf.as_dtype(dtype).name} in this model",
                )
            )
    # A CAFE layer's state the checkpoint lacks would silently keep its fresh value.
    old_layout = any(
        k.endswith(f"/{name}/.ATTRIBUTES/VARIABLE_VALUE")
        for k in shapes
        for name in ("row_slot", "packed_int32")
    )
    for layer in find_cafe_layers(root):
        for v in layer.weights:
            if id(v) not in found:
                hint = (
                    " (the checkpoint has the keys/packed_int32 or rows/tags/row_slot "
                    "variables of an older sketch layout, sketch_state_version 1 or 2; "
                    f"this cafe_tf reads version {SKETCH_STATE_VERSION}: it cannot be "
                    "restored)"
                    if old_layout and "/slots:" in v.name
                    else ""
                )
                problems.append((1, f"{owners[id(v)][1]}: not in the checkpoint{hint}"))
    return list(dict.fromkeys(text for _, text in sorted(problems)))


def verify_checkpoint(root, save_path: str) -> None:
    """Raises `CheckpointMismatchError` naming every mismatch, or `CheckpointCorruptError`
    naming an unreadable file, before any restore."""
    problems = mismatches(root, save_path)
    if problems:
        raise CheckpointMismatchError(mismatch_message(f"checkpoint '{save_path}'", problems))


def restore(root, save_path: str):
    """Verifies, then restores `save_path` into `root`.

    `root`: a `tf.train.Checkpoint` (returns its restore status) or a Keras
    model whose weights were saved with `save_weights` (TF format).
    """
    verify_checkpoint(root, save_path)
    if isinstance(root, tf_keras.Model):
        return root.load_weights(save_path)
    return root.restore(save_path)


def restore_latest(manager: tf.train.CheckpointManager) -> int:
    """Restores the manager's newest checkpoint (after verifying it).

    Returns:
      The optimizer's iteration count after restoring (0 when there is no
      checkpoint yet, or no optimizer in the checkpoint): how many batches the
      resumed run has already trained on.
    """
    path = manager.latest_checkpoint
    checkpoint = manager.checkpoint
    if path is None:
        return 0
    restore(checkpoint, path).assert_existing_objects_matched()
    optimizer = getattr(checkpoint, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None)
    return 0 if iterations is None else int(iterations.numpy())


class PeriodicCheckpoint(tf_keras.callbacks.Callback):
    """Saves `manager`'s checkpoint every `every_n_steps` optimizer steps.

    The checkpoint of step s is written when step s is fully done: at the start
    of the next batch (or at the end of training), i.e. after every callback's
    `on_train_batch_end` for step s, `CafeMigration` included, whatever the
    callback order. Checkpoints are numbered by the optimizer's iteration count,
    which is checkpointed too, so resumed runs continue the numbering.
    A `tf.train.CheckpointManager` writes each checkpoint completely before its
    index points at it, so a process killed mid-write leaves the previous
    checkpoint as the latest.

    Args:
      manager: a `tf.train.CheckpointManager` of a checkpoint holding the model
        and its optimizer (e.g. `make_checkpoint(model)`).
      every_n_steps: optimizer steps between checkpoints.
      save_at_end: also save when training ends.
    """

    def __init__(
        self, manager: tf.train.CheckpointManager, every_n_steps: int, save_at_end: bool = True
    ):
        super().__init__()
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be > 0, got {every_n_steps}")
        self.manager = manager
        self.every_n_steps = every_n_steps
        self.save_at_end = save_at_end
        self.saved_steps: list[int] = []
        self._last_saved = None

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _save(self, step: int):
        if step != self._last_saved:
            self.manager.save(checkpoint_number=step)
            self.saved_steps.append(step)
            self._last_saved = step

    def on_train_begin(self, logs=None):
        # The state at the start (fresh, or just restored) needs no new checkpoint.
        self._last_saved = self._step()

    def on_train_batch_begin(self, batch, logs=None):
        step = self._step()
        if step % self.every_n_steps == 0:
            self._save(step)

    def on_train_end(self, logs=None):
        if self.save_at_end:
            self._save(self._step())


class ExactBackupAndRestore(tf_keras.callbacks.BackupAndRestore):
    """tf_keras `BackupAndRestore` whose resumed run continues on the very next batch.

    Plain `BackupAndRestore(save_freq=N)` restores the model at the backed-up step but
    `fit` reads its input from the start again, so a mid-epoch resume trains on
    batches it has already seen. This callback adds what exact resuming needs:

    - `skip_trained(dataset, steps_per_epoch)` (or `trained_batches`) reads the
      backup before `fit` and drops the batches it has trained on, so the resumed
      `fit` gets the batch after the backed-up step;
    - the backup of step s is written when step s is fully done: at the start of the
      next batch (or at the end of the epoch), after every callback's
      `on_train_batch_end` for step s, `CafeMigration` included, whatever the
      callback order.

    What is restored is what `BackupAndRestore` restores: the model (every CAFE
    variable: sketch, tables, bookkeeping, counters), its optimizer (slots and
    `iterations`, which `CafeMigration` counts steps by), the epoch and the batch.
    It works the same under `MultiWorkerMirroredStrategy`: every worker restores from
    `backup_dir/chief`, which all workers must see (shared storage). The input must
    be one stream for the whole `fit` call: a `.repeat()`ed dataset (before
    `experimental_distribute_dataset`) with `steps_per_epoch`, started at epoch 0, as
    distributed datasets require anyway. `dataset.skip` reads the skipped batches
    once more and discards them.

    Args:
      backup_dir: directory of the backup (only this run may use it).
      save_freq: `"epoch"`, or the number of training steps (executions) between
        backups.
      delete_checkpoint: delete the backup when `fit` finishes.

    Example:
      >>> backup = ExactBackupAndRestore("/tmp/backup", save_freq=50)  # doctest: +SKIP
      >>> data = backup.skip_trained(dataset.repeat(), steps_per_epoch)  # doctest: +SKIP
      >>> model.fit(strategy.experimental_distribute_dataset(data), epochs=epochs,  # doctest: +SKIP
      ...           steps_per_epoch=steps_per_epoch,
      ...           callbacks=[backup, CafeMigration(every_n_steps=3)])
    """

    def __init__(self, backup_dir: str, save_freq="epoch", delete_checkpoint: bool = True):
        if save_freq != "epoch" and (
            isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0
        ):
            raise ValueError(f'save_freq must be "epoch" or a positive int, got {save_freq!r}')
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self._pending = False  # a backup is due once the current step is fully done

    def trained_batches(self, steps_per_epoch: int) -> int:
        """How many batches of `fit`'s input stream the backup has trained on.

        This is where tf_keras resumes: the epoch and batch after the backed-up
        ones, counted in batches from the start of `fit`.

        Args:
          steps_per_epoch: the `steps_per_epoch` given to `fit`.

        Returns:
          The number of batches to skip; 0 when there is no backup.
        """
        if (
            isinstance(steps_per_epoch, bool)
            or not isinstance(steps_per_epoch, int)
            or steps_per_epoch <= 0
        ):
            raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
        path = tf.train.latest_checkpoint(os.path.join(self.backup_dir, "chief"))
        if path is None:
            return 0
        reader = tf.train.load_checkpoint(path)
        epoch = int(reader.get_tensor("ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
        batch = int(reader.get_tensor("ckpt_saved_batch/.ATTRIBUTES/VARIABLE_VALUE"))
        if self.save_freq == "epoch":
            return (epoch + 1) * steps_per_epoch if epoch >= 0 else 0
        if batch >= steps_per_epoch:
            raise ValueError(
                f"the backup in {self.backup_dir} was written at batch {batch} of "
                f"an epoch, but steps_per_epoch is {steps_per_epoch}: resume with "
                "the steps_per_epoch it was trained with"
            )
        return epoch * steps_per_epoch + batch + 1 if batch >= 0 else 0

    def skip_trained(self, dataset: tf.data.Dataset, steps_per_epoch: int) -> tf.data.Dataset:
        """`dataset` without the batches the backup has trained on.

        Args:
          dataset: the input stream of `fit` (global batches, repeated).
          steps_per_epoch: the `steps_per_epoch` given to `fit`.

        Returns:
          `dataset.skip(self.trained_batches(steps_per_epoch))`.
        """
        return dataset.skip(self.trained_batches(steps_per_epoch))

    def _flush(self):
        if self._pending:
            self._pending = False
            self._backup(epoch=self._current_epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._flush()

    def on_train_batch_end(self, batch, logs=None):
        # The position tf_keras resumes after. Set here, not at the batch's start as the
        # base class does, since the backup is written at the next batch's start.
        self._training_state._ckpt_saved_batch.assign(batch)
        if self.save_freq != "epoch":
            self._batches_count += 1
            if self._batches_count >= self.save_freq:
                self._batches_count = 0
                self._pending = True

    def on_epoch_end(self, epoch, logs=None):
        self._flush()
        super().on_epoch_end(epoch, logs)
