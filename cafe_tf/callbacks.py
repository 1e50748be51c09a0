"""The Keras callback that runs CAFE migration during `model.fit`."""

import tensorflow as tf
import tf_keras

from cafe_tf.layers.cafe_embedding import CafeEmbeddingCollectionLogic, find_cafe_layers


class _StepMigration:
    """The migration a `CafeMigration` runs inside a model's training step.

    Installed once per model (`of`): the model's `train_step` is wrapped so that,
    after the optimizer's update, every CAFE layer migrates when the optimizer's
    `iterations` is a multiple of `every_n_steps`, a variable that is 0 (off) outside
    the fits of a `CafeMigration`. In the step, a migration costs its ops only; a call
    of its own after every batch cost more than its ops (Python dispatch, and TF's
    threads still winding down from the step). The model does not track the variable,
    so checkpoints do not hold it.
    """

    _ATTRIBUTE = "_cafe_step_migration"

    def __init__(self):
        # int64: TF keeps int64 variables where the step runs (int32 on the host, and a
        # GPU kernel may lack bool variables).
        self.every_n_steps = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="cafe_migration_every_n_steps"
        )

    @classmethod
    def of(cls, model) -> "_StepMigration":
        """`model`'s step migration, installed first if need be (then `fit` traces its
        training step again)."""
        installed = model.__dict__.get(cls._ATTRIBUTE)
        if installed is not None:
            return installed
        migration = cls()
        train_step = model.train_step

        def migrating_train_step(data):
            logs = train_step(data)
            migration._run(model)
            return logs

        # Set past Keras's attribute tracking: neither is part of the model's state.
        object.__setattr__(model, "train_step", migrating_train_step)
        object.__setattr__(model, cls._ATTRIBUTE, migration)
        model.train_function = None
        return migration

    def _run(self, model):
        optimizer = model.optimizer
        layers = find_cafe_layers(model)
        every = self.every_n_steps.read_value()
        due = tf.logical_and(
            every > 0,
            tf.equal(
                tf.math.floormod(tf.cast(optimizer.iterations, tf.int64), tf.maximum(every, 1)),
                0,
            ),
        )

        def migrate():
            results = [layer.migrate(optimizer) for layer in layers]
            with tf.control_dependencies(tf.nest.flatten(results)):
                return tf.constant(True)

        tf.cond(due, migrate, lambda: tf.constant(False))


class CafeMigrationLogic:
    """The Keras-independent logic of `CafeMigration` (a mixin; layers/keras_base.py)."""

    def __init__(
        self, every_n_steps: int = 1, log_dir: str | None = None, log_every_n_steps: int = 100
    ):
        super().__init__()
        # Batch logs stay tensors: otherwise Keras copies them to the host after every
        # batch for this callback, a stall per step that it never reads.
        self._supports_tf_logs = True
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be > 0, got {every_n_steps}")
        if log_every_n_steps <= 0:
            raise ValueError(f"log_every_n_steps must be > 0, got {log_every_n_steps}")
        self.every_n_steps = every_n_steps
        self.log_dir = log_dir
        self.log_every_n_steps = log_every_n_steps
        self._layers: list[CafeEmbeddingCollectionLogic] = []

    def set_model(self, model):
        super().set_model(model)
        self._layers = find_cafe_layers(model)
        self._migration_fn = None
        # fit calls set_model before it traces its training step.
        self._step_migration = _StepMigration.of(model) if self._layers else None
        self._writer = tf.summary.create_file_writer(self.log_dir) if self.log_dir else None
        self._steps = 0  # batches trained before the current one ended
        self._epoch_base = None  # batches trained before this epoch
        self._epoch_start = {}
        self._log_start = {}

    def _build_migration_fn(self):
        strategy = self.model.distribute_strategy
        layers = self._layers
        optimizer = self.model.optimizer

        @tf.function
        def migrate_all(force_decay):
            return strategy.run(lambda: [layer.migrate(optimizer, force_decay) for layer in layers])

        # The traced function itself, called with ready-made arguments: the tf.function's
        # own dispatch (matching its arguments against its traces) costs about as much as
        # the migration's ops.
        arguments = {force: tf.constant(force) for force in (False, True)}
        return migrate_all.get_concrete_function(arguments[False]), arguments

    def _migrate(self, force_decay: bool = False):
        """Runs one migration of every CAFE layer; returns the first replica's results."""
        if self._migration_fn is None:
            self._migration_fn = self._build_migration_fn()
        function, arguments = self._migration_fn
        per_replica = function(arguments[bool(force_decay)])
        return self.model.distribute_strategy.experimental_local_results(per_replica)[0]

    def _occupancy(self) -> dict[str, float]:
        """Per layer, the share of hot rows in use (a device read)."""
        return {
            f"{layer.name}_hot_occupancy": int(layer.sketch.hot_rows_used()) / layer.layout.hot_rows
            for layer in self._layers
            if layer.built
        }

    def migrate_now(self, force_decay: bool = False) -> dict[str, float]:
        """Runs one migration of every CAFE layer now, outside `fit`: in a custom
        training loop, or before evaluating.

        It migrates as the callback does during `fit`: on every replica of the
        model's distribution strategy, resetting the promoted rows' slots of
        `model.optimizer` (so compile the model with the optimizer the loop applies).

        Args:
          force_decay: decay now even if the decay rule does not say so.

        Returns:
          Per layer: `<layer>_promotions` and `<layer>_demotions` of this migration,
          `<layer>_hot_occupancy` after it.

        Raises:
          RuntimeError: no model yet (call `set_model(model)` first; `fit` does).

        Example:
          >>> migration = CafeMigration()                       # doctest: +SKIP
          >>> migration.set_model(model)                        # doctest: +SKIP
          >>> for step, batch in enumerate(dataset):            # doctest: +SKIP
          ...     train_step(batch)
          ...     if step % 10 == 9:
          ...         stats = migration.migrate_now()
        """
        if self.model is None:
            raise RuntimeError(
                "CafeMigration.migrate_now needs the model: call "
                "set_model(model) first (model.fit does)"
            )
        if not self._layers:
            return {}
        stats = {}
        for layer, result in zip(self._layers, self._migrate(force_decay)):
            stats[f"{layer.name}_promotions"] = int(result["promotions"])
            stats[f"{layer.name}_demotions"] = int(result["demotions"])
        stats.update(self._occupancy())
        return stats

    @staticmethod
    def _counters(layer):
        """promotions, demotions, hot lookups, lookups, exchanged pairs (a device read)."""
        if not layer.built:  # subclassed models build their layers on the first batch
            return (0, 0, 0, 0, 0)
        return tuple(
            int(v.numpy())
            for v in (
                layer.promotions,
                layer.demotions,
                layer.hot_lookups,
                layer.lookups,
                layer.exchanged_pairs,
            )
        )

    def _trained_batches(self) -> int:
        """The optimizer's iteration count (checkpoints hold it)."""
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return self._steps if iterations is None else int(iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._steps = self._trained_batches()
        # Set by the epoch's first batch: a resumed epoch (BackupAndRestore) starts at
        # the batch after the backed-up one, not at batch 0.
        self._epoch_base = None
        self._epoch_start = {layer.name: self._counters(layer) for layer in self._layers}
        self._log_start = {name: (self._steps, c) for name, c in self._epoch_start.items()}

    def on_train_begin(self, logs=None):
        if self._step_migration is not None:
            self._step_migration.every_n_steps.assign(self.every_n_steps)

    def on_train_end(self, logs=None):
        if self._step_migration is not None:
            self._step_migration.every_n_steps.assign(0)

    def on_train_batch_begin(self, batch, logs=None):
        if self._epoch_base is None:
            self._epoch_base = self._steps - batch

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch_base is None:  # called outside fit's epochs
            self._epoch_base = self._steps = self._trained_batches() - batch - 1
        # `batch` is the epoch's last batch index run (several with steps_per_execution).
        previous, step = self._steps, self._epoch_base + batch + 1
        self._steps = step
        if step // self.log_every_n_steps == previous // self.log_every_n_steps:
            return
        stats = {**self._occupancy(), **self._since_log_point(step), **self._since_epoch_start()}
        if logs is not None:
            logs.update(stats)
        if self._writer is not None:
            with self._writer.as_default(step=step):
                for name, value in stats.items():
                    tf.summary.scalar(f"cafe/{name}", value)

    def _since_log_point(self, step) -> dict[str, float]:
        """Promotions, demotions and exchanged pairs per step since the last log point."""
        stats = {}
        for layer in self._layers:
            now = self._counters(layer)
            start_step, start = self._log_start.get(layer.name, (0, (0,) * 5))
            self._log_start[layer.name] = (step, now)
            stats[f"{layer.name}_promotions"] = now[0] - start[0]
            stats[f"{layer.name}_demotions"] = now[1] - start[1]
            if self.model.distribute_strategy.num_replicas_in_sync > 1 and step > start_step:
                stats[f"{layer.name}_exchanged_pairs_per_step"] = (now[4] - start[4]) / (
                    step - start_step
                )
        return stats

    def _since_epoch_start(self) -> dict[str, float]:
        """Promotions, demotions and the share of lookups served hot this epoch."""
        stats = {}
        for layer in self._layers:
            now = self._counters(layer)
            start = self._epoch_start.get(layer.name, (0,) * 5)
            stats[f"{layer.name}_epoch_promotions"] = now[0] - start[0]
            stats[f"{layer.name}_epoch_demotions"] = now[1] - start[1]
            lookups = now[3] - start[3]
            if lookups > 0:
                stats[f"{layer.name}_hot_lookup_share"] = (now[2] - start[2]) / lookups
        return stats

    def on_epoch_end(self, epoch, logs=None):
        stats = {**self._since_epoch_start(), **self._occupancy()}
        if logs is not None:
            logs.update(stats)
        if self._writer is not None:
            with self._writer.as_default(step=self._steps):
                for name, value in stats.items():
                    tf.summary.scalar(f"cafe/epoch_{name}", value)
            self._writer.flush()


class CafeMigration(CafeMigrationLogic, tf_keras.callbacks.Callback):
    """Runs decay, demotion and promotion of every CAFE layer of the model.

    During `fit`, every `every_n_steps` optimizer updates, the model's training
    step calls `layer.migrate` with the model's optimizer right after the update
    (so promoted rows get fresh optimizer slots), on every replica under a
    distribution strategy: the callback wraps the model's `train_step` the first
    time it drives the model, and switches the migration on for the fits it is
    passed to (a `fit` without it does not migrate). Steps are counted by
    `model.optimizer.iterations` (checkpoints hold it), so a run resumed from a
    checkpoint (also mid-epoch, by `BackupAndRestore`) migrates at the same steps
    as an uninterrupted run, and with `steps_per_execution` it still migrates after
    every update. A step that logs nothing reads no value back from the device.
    Outside `fit`, `migrate_now` migrates once.

    Every `log_every_n_steps` batches it adds to the Keras batch logs, per layer,
    `<layer>_promotions` / `<layer>_demotions` since the previous point,
    `<layer>_hot_occupancy` (share of hot rows in use after the last migration),
    `<layer>_hot_lookup_share` (share of the epoch's training lookups served by
    hot rows) and, under a distribution strategy, `<layer>_exchanged_pairs_per_step`
    ((key, feature) pairs all-gathered per step for the importance exchange); to
    the epoch logs, `<layer>_epoch_promotions` / `<layer>_epoch_demotions`,
    `<layer>_hot_lookup_share` and `<layer>_hot_occupancy`; and writes them to
    TensorBoard when `log_dir` is set. The layers are found in `set_model`, so
    the callback can be deep-copied (keras-tuner does) and reused across models.

    Args:
      every_n_steps: M, batches between migrations (paper: 1).
      log_dir: optional TensorBoard log directory.
      log_every_n_steps: batches between log points.

    Example:
      >>> model.fit(dataset, epochs=1, callbacks=[CafeMigration(every_n_steps=1)])  # doctest: +SKIP
    """
