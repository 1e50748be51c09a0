"""HotSketch: the sketch state in tf.Variables, updated by the C++ op or the pure-TF reference."""

from collections.abc import Callable

import tensorflow as tf

from cafe_tf.sketch import reference
from cafe_tf.sketch.config import SketchConfig

BACKENDS = ("auto", "op", "reference")

VariableCreator = Callable[[str, list, tf.DType, Callable[[], tf.Tensor]], tf.Variable]


def _plain_variable(name, shape, dtype, initial_value):
    return tf.Variable(initial_value, trainable=False, name=name, dtype=dtype)


def _op_library():
    """The loaded op library, or None when running on the reference by choice."""
    from cafe_tf import _ops

    return _ops.ops


def _invalid(message):
    return tf.errors.InvalidArgumentError(None, None, message)


class HotSketch(tf.Module):
    """A HotSketch (docs/sketch.md) held in tf.Variables.

    All state is in non-trainable variables, so checkpoints, SavedModels and
    distribution strategies see it: `slots` int64 and `scores` float32 of
    shape [W, c], and scalars `mass` and `batches`. A slot word holds the
    key's 32-bit fingerprint (high half) and an int32 entry (low half): the
    hot row and tag, (row << tag_bits) | tag, of a hot key, or the tag and
    second-sighting mark of a key that is not hot. A slot costs 12 bytes, and
    hot rows cost nothing more (docs/sketch.md). Only int64 and float32
    variables: TensorFlow keeps int32 variables in host memory (no int32
    variables on GPUs) and its collectives have no unsigned types.
    `read_state()` unpacks the slot words.

    Args:
      config: a `SketchConfig`.
      backend: "op" (the C++ kernels), "reference" (pure TF) or "auto" (the op
        when its library loads, else the reference). Both give identical state.
      num_threads: threads of the op's insert and query (0: TF's intra-op
        pool). The state does not depend on it.
      variable_creator: `fn(name, shape, dtype, initial_value) -> tf.Variable`,
        `initial_value` a function returning the initial tensor; a
        Keras layer passes its own so the variables become its weights.
      name: module name.

    Example:
      >>> sketch = HotSketch(SketchConfig(num_buckets=1024, hot_rows=1024, threshold=5.0))
      >>> sketch.insert(tf.constant([7, 7, 9], tf.int64))       # frequency importance
      >>> result = sketch.migrate()                              # promotes score >= 5
      >>> rows, levels = sketch.query(tf.constant([7, 9], tf.int64))
    """

    def __init__(
        self,
        config: SketchConfig,
        backend: str = "auto",
        num_threads: int = 0,
        variable_creator: VariableCreator | None = None,
        name: str = "hot_sketch",
    ):
        super().__init__(name=name)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        ops = _op_library() if backend != "reference" else None
        if backend == "op" and ops is None:
            from cafe_tf import _ops

            raise _ops.load_error
        self.config = config
        self.backend = "op" if ops is not None else "reference"
        self._ops = ops
        self.num_threads = num_threads
        make = variable_creator or _plain_variable
        w, c = config.num_buckets, config.slots_per_bucket

        def empty_slots():
            entries = tf.fill([w * c], reference.ROW_NONE)
            return tf.reshape(reference.pack_slots(tf.zeros([w * c], tf.int64), entries), [w, c])

        with tf.name_scope(name):
            self.slots = make("slots", [w, c], tf.int64, empty_slots)
            self.scores = make("scores", [w, c], tf.float32, lambda: tf.zeros([w, c]))
            self.mass = make("mass", [], tf.float32, lambda: tf.zeros([]))
            self.batches = make("batches", [], tf.int64, lambda: tf.zeros([], tf.int64))

    @property
    def state_variables(self):
        """The state variables, in the order the ops take them."""
        return [self.slots, self.scores, self.mass, self.batches]

    def read_state(self) -> reference.SketchTensors:
        """The current state as flat tensors (the slot words unpacked)."""
        fingerprints, entries = reference.unpack_slots(tf.reshape(self.slots.read_value(), [-1]))
        return reference.SketchTensors(
            fingerprints,
            tf.reshape(self.scores.read_value(), [-1]),
            entries,
            self.mass.read_value(),
            self.batches.read_value(),
        )

    def _assign_state(self, state: reference.SketchTensors):
        slots = reference.pack_slots(state.fingerprints, state.entries)
        return tf.group(
            self.slots.assign(tf.reshape(slots, self.slots.shape)),
            self.scores.assign(tf.reshape(state.scores, self.scores.shape)),
            self.mass.assign(state.mass),
            self.batches.assign(state.batches),
        )

    def hot_rows_used(self) -> tf.Tensor:
        """Number of hot rows in use (int32): one per hot slot."""
        _, entries = reference.unpack_slots(self.slots.read_value())
        return tf.reduce_sum(tf.cast(entries >= 0, tf.int32))

    def _handles(self):
        return [v.handle for v in self.state_variables]

    def memory_bytes(self) -> int:
        """Bytes held by the sketch state."""
        return self.config.memory_bytes()

    # ---- insert -------------------------------------------------------------------------
    @staticmethod
    def _check_ids(ids, what="ids"):
        ids = tf.convert_to_tensor(ids)
        if ids.dtype not in (tf.int32, tf.int64):
            raise _invalid(f"{what} must be int32 or int64, got {ids.dtype.name}")
        if ids.shape.rank is not None and ids.shape.rank != 1:
            raise _invalid(f"{what} must be a vector (rank 1), got shape {ids.shape}")
        return tf.cast(ids, tf.int64)

    def insert(self, ids, importance=None, feature_index=None):
        """Inserts a batch (docs/sketch.md, "Batch insert").

        Args:
          ids: int32/int64 vector of keys.
          importance: float vector of the same length, finite and >= 0
            (default: 1 per id, i.e. frequency).
          feature_index: int32 vector in [0, 2**tag_bits) of the same length
            (tag_bits from `config.num_features`), the feature of each key, kept
            in its slot's tag field (default 0).

        Returns:
          The update op in graph mode, None eagerly.

        Raises:
          InvalidArgumentError: wrong dtype or rank, mismatched lengths,
            NaN/inf/negative importance or a feature index outside
            [0, 2**tag_bits). The
            state is unchanged.
        """
        ids = self._check_ids(ids)
        n = tf.size(ids)
        if importance is None:
            importance = tf.ones_like(ids, tf.float32)
        importance = tf.convert_to_tensor(importance)
        if not importance.dtype.is_floating:
            raise _invalid(f"importance must be a float tensor, got {importance.dtype.name}")
        importance = tf.cast(importance, tf.float32)
        feature_index = (
            tf.zeros_like(ids, tf.int32)
            if feature_index is None
            else tf.convert_to_tensor(feature_index)
        )
        if feature_index.dtype not in (tf.int32, tf.int64):
            raise _invalid(f"feature_index must be int32, got {feature_index.dtype.name}")
        feature_index = tf.cast(feature_index, tf.int32)
        for tensor, what in ((importance, "importance"), (feature_index, "feature_index")):
            if tensor.shape.rank is not None and tensor.shape.rank != 1:
                raise _invalid(f"{what} must be a vector (rank 1), got shape {tensor.shape}")
            if (
                tensor.shape[0] is not None
                and ids.shape[0] is not None
                and tensor.shape[0] != ids.shape[0]
            ):
                raise _invalid(
                    f"ids and {what} must have the same length, got "
                    f"{ids.shape[0]} and {tensor.shape[0]}"
                )
        if self._ops is not None:
            return self._ops.cafe_sketch_insert(
                *self._handles(),
                ids=ids,
                importance=importance,
                feature_index=feature_index,
                tag_bits=self.config.tag_bits,
                second_sighting=self.config.second_sighting,
                replacement=self.config.replacement,
                num_threads=self.num_threads,
            )
        index_message = (
            f"feature_index must be in [0, 2^tag_bits) = "
            f"[0, {1 << self.config.tag_bits}) (tag_bits {self.config.tag_bits}, "
            f"from num_features {self.config.num_features})"
        )
        checks = [
            tf.debugging.assert_equal(
                tf.size(importance), n, message="ids and importance must have the same length"
            ),
            tf.debugging.assert_equal(
                tf.size(feature_index), n, message="ids and feature_index must have the same length"
            ),
            tf.debugging.assert_all_finite(importance, "importance must be finite (no NaN/inf)"),
            tf.debugging.assert_non_negative(importance, message="importance must be >= 0"),
            tf.debugging.assert_non_negative(feature_index, message=index_message),
            tf.debugging.assert_less(
                feature_index, 1 << self.config.tag_bits, message=index_message
            ),
        ]
        with tf.control_dependencies(checks):
            new_state = reference.insert(
                self.config, self.read_state(), ids, importance, feature_index
            )
            return self._assign_state(new_state)

    # ---- query --------------------------------------------------------------------------
    def query(self, ids, pure_tf: bool = False):
        """Hot row (or -1) and level (0 cold, 1 medium, 2 hot) per id, shaped like ids.

        With `pure_tf`, the reference path answers even when the op is loaded
        (same result), so a traced graph holds stock TensorFlow ops only.
        """
        ids = tf.convert_to_tensor(ids)
        if ids.dtype not in (tf.int32, tf.int64):
            raise _invalid(f"ids must be int32 or int64, got {ids.dtype.name}")
        ids = tf.cast(ids, tf.int64)
        if self._ops is not None and not pure_tf:
            return self._ops.cafe_sketch_query(
                self.slots.read_value(),
                self.scores.read_value(),
                ids,
                medium_threshold=self.config.effective_medium_threshold,
                tag_bits=self.config.tag_bits,
                num_threads=self.num_threads,
            )
        return reference.query(self.config, self.slots.read_value(), self.scores.read_value(), ids)

    # ---- migration ----------------------------------------------------------------------
    def migrate(self, force_decay=False) -> reference.MigrationResult:
        """Decay when due (or when forced), demote, then promote (docs/sketch.md, "Migration").

        Returns:
          A `MigrationResult` of tensors: whether it decayed, the demoted
          (fingerprints, feature index, rows), the decay's in slot order then the
          displaced ones, and the promoted (fingerprints, feature index, rows) in
          promotion order.
        """
        cfg = self.config
        if self._ops is not None:
            return reference.MigrationResult(
                *self._ops.cafe_sketch_migrate(
                    *self._handles(),
                    force_decay=tf.convert_to_tensor(force_decay, tf.bool),
                    hot_rows=cfg.hot_rows,
                    tag_bits=cfg.tag_bits,
                    threshold=cfg.threshold,
                    demote_threshold=cfg.effective_demote_threshold,
                    decay_rate=cfg.effective_decay_rate,
                    decay_rule=cfg.decay_rule,
                    decay_mass_factor=cfg.effective_decay_mass_factor,
                    decay_period=cfg.decay_period,
                    swap_margin=cfg.swap_margin or 0.0,
                    fill_free_rows=cfg.fill_free_rows,
                    yield_threshold=float(cfg.yield_threshold),
                )
            )
        state, result = reference.migrate(cfg, self.read_state(), force_decay)
        with tf.control_dependencies([self._assign_state(state)]):
            return reference.MigrationResult(*[tf.identity(t) for t in result])

    def decay(self) -> reference.MigrationResult:
        """Decays now (with demotions), then promotes as `migrate` does."""
        return self.migrate(force_decay=True)
