"""HotSketch: the sketch state in tf.Variables, updated by the C++ op or the pure-TF reference."""
from typing import Callable, Optional

import tensorflow as tf

from cafe_tf.sketch import reference
from cafe_tf.sketch.config import SketchConfig

BACKENDS = ("auto", "op", "reference")

VariableCreator = Callable[[str, list, tf.DType, Callable[[], tf.Tensor]], tf.Variable]


def _plain_variable(name, shape, dtype, initial_value):
    return tf.Variable(initial_value, trainable=False, name=name, dtype=dtype)


def packed_int64_length(slots: int, hot_rows: int) -> int:
    """Length of the int64 variable that holds rows [slots], row_slot [hot_rows]
    and row_tag [hot_rows] as int32 words, back to back."""
    return (slots + 2 * hot_rows + 1) // 2


def pack_int32(rows, row_slot, row_tag):
    """rows, row_slot and row_tag (flat int32) as the packed int64 vector."""
    words = tf.concat([rows, row_slot, row_tag], 0)
    words = tf.pad(words, [[0, tf.size(words) % 2]])
    return tf.bitcast(tf.reshape(words, [-1, 2]), tf.int64)


def unpack_int32(packed, slots: int, hot_rows: int):
    """(rows, row_slot, row_tag), flat int32, from the packed int64 vector."""
    words = tf.reshape(tf.bitcast(packed, tf.int32), [-1])
    return (words[:slots], words[slots:slots + hot_rows],
            words[slots + hot_rows:slots + 2 * hot_rows])


def _op_library():
    """The loaded op library, or None when running on the reference by choice."""
    from cafe_tf import _ops
    return _ops.ops


def _invalid(message):
    return tf.errors.InvalidArgumentError(None, None, message)


class HotSketch(tf.Module):
    """A HotSketch (docs/sketch.md) held in tf.Variables.

    All state is in non-trainable variables, so checkpoints, SavedModels and
    distribution strategies see it: `keys` int64 and `scores` float32 of shape
    [W, c]; `packed_int32`, an int64 vector holding three int32 arrays back to
    back (per slot its hot row, or the tag and second-sighting mark of a key
    that is not hot [W*c]; per hot row its owning slot and its key's tag
    [hot_rows] each); scalars `mass` and `batches`. A slot costs 16 bytes
    (docs/sketch.md). The int32 arrays are packed
    into int64 because TensorFlow keeps int32 variables in host memory (no
    int32 variables on GPUs) and its collectives have no unsigned types;
    `read_state()` unpacks them.

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

    def __init__(self, config: SketchConfig, backend: str = "auto", num_threads: int = 0,
                 variable_creator: Optional[VariableCreator] = None, name: str = "hot_sketch"):
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
        w, c, h = config.num_buckets, config.slots_per_bucket, config.hot_rows
        self._slots = w * c
        empty_ints = lambda: pack_int32(tf.fill([w * c], reference.ROW_NONE),  # noqa: E731
                                        tf.fill([h], -1), tf.zeros([h], tf.int32))
        with tf.name_scope(name):
            self.keys = make("keys", [w, c], tf.int64, lambda: tf.zeros([w, c], tf.int64))
            self.scores = make("scores", [w, c], tf.float32, lambda: tf.zeros([w, c]))
            self.packed_int32 = make("packed_int32", [packed_int64_length(w * c, h)], tf.int64,
                                     empty_ints)
            self.mass = make("mass", [], tf.float32, lambda: tf.zeros([]))
            self.batches = make("batches", [], tf.int64, lambda: tf.zeros([], tf.int64))

    @property
    def state_variables(self):
        """The state variables, in the order the ops take them."""
        return [self.keys, self.scores, self.packed_int32, self.mass, self.batches]

    def read_state(self) -> reference.SketchTensors:
        """The current state as flat tensors (the int32 arrays unpacked)."""
        rows, row_slot, row_tag = unpack_int32(self.packed_int32.read_value(), self._slots,
                                               self.config.hot_rows)
        return reference.SketchTensors(
            tf.reshape(self.keys.read_value(), [-1]), tf.reshape(self.scores.read_value(), [-1]),
            rows, row_slot, row_tag, self.mass.read_value(), self.batches.read_value())

    def _assign_state(self, state: reference.SketchTensors):
        return tf.group(self.keys.assign(tf.reshape(state.keys, self.keys.shape)),
                        self.scores.assign(tf.reshape(state.scores, self.scores.shape)),
                        self.packed_int32.assign(pack_int32(state.rows, state.row_slot,
                                                            state.row_tag)),
                        self.mass.assign(state.mass), self.batches.assign(state.batches))

    def hot_rows_used(self) -> tf.Tensor:
        """Number of hot rows in use (int32)."""
        return tf.reduce_sum(tf.cast(self.read_state().row_slot >= 0, tf.int32))

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

    def insert(self, ids, importance=None, tags=None):
        """Inserts a batch (spec section 2, batch insert).

        Args:
          ids: int32/int64 vector of keys.
          importance: float vector of the same length, finite and >= 0
            (default: 1 per id, i.e. frequency).
          tags: int32 vector in [0, 2**30) of the same length, carried with
            each key (the feature index in CAFE layers; default 0).

        Returns:
          The update op in graph mode, None eagerly.

        Raises:
          InvalidArgumentError: wrong dtype or rank, mismatched lengths,
            NaN/inf/negative importance or tags outside [0, 2**30). The state
            is unchanged.
        """
        ids = self._check_ids(ids)
        n = tf.size(ids)
        if importance is None:
            importance = tf.ones_like(ids, tf.float32)
        importance = tf.convert_to_tensor(importance)
        if not importance.dtype.is_floating:
            raise _invalid(f"importance must be a float tensor, got {importance.dtype.name}")
        importance = tf.cast(importance, tf.float32)
        tags = tf.zeros_like(ids, tf.int32) if tags is None else tf.convert_to_tensor(tags)
        if tags.dtype not in (tf.int32, tf.int64):
            raise _invalid(f"tags must be int32, got {tags.dtype.name}")
        tags = tf.cast(tags, tf.int32)
        for tensor, what in ((importance, "importance"), (tags, "tags")):
            if tensor.shape.rank is not None and tensor.shape.rank != 1:
                raise _invalid(f"{what} must be a vector (rank 1), got shape {tensor.shape}")
            if (tensor.shape[0] is not None and ids.shape[0] is not None
                    and tensor.shape[0] != ids.shape[0]):
                raise _invalid(f"ids and {what} must have the same length, got "
                               f"{ids.shape[0]} and {tensor.shape[0]}")
        if self._ops is not None:
            return self._ops.cafe_sketch_insert(*self._handles(), ids=ids, importance=importance,
                                                tags=tags, hot_rows=self.config.hot_rows,
                                                second_sighting=self.config.second_sighting,
                                                replacement=self.config.replacement,
                                                num_threads=self.num_threads)
        checks = [
            tf.debugging.assert_equal(tf.size(importance), n, message="ids and importance must "
                                      "have the same length"),
            tf.debugging.assert_equal(tf.size(tags), n, message="ids and tags must have the "
                                      "same length"),
            tf.debugging.assert_all_finite(importance, "importance must be finite (no NaN/inf)"),
            tf.debugging.assert_non_negative(importance, message="importance must be >= 0"),
            tf.debugging.assert_non_negative(tags, message="tags must be in [0, 2**30)"),
            tf.debugging.assert_less_equal(tags, reference.MAX_TAG,
                                           message="tags must be in [0, 2**30)"),
        ]
        with tf.control_dependencies(checks):
            new_state = reference.insert(self.config, self.read_state(), ids, importance, tags)
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
                self.keys.read_value(), self.scores.read_value(), self.packed_int32.read_value(),
                ids, medium_threshold=self.config.effective_medium_threshold,
                num_threads=self.num_threads)
        rows, _, _ = unpack_int32(self.packed_int32.read_value(), self._slots,
                                  self.config.hot_rows)
        return reference.query(self.config, self.keys, self.scores, rows, ids)

    # ---- migration ----------------------------------------------------------------------
    def migrate(self, force_decay=False) -> reference.MigrationResult:
        """Decay when due (or when forced), demote, then promote (spec section 4).

        Returns:
          A `MigrationResult` of tensors: whether it decayed, the demoted
          (keys, tags, rows) in slot order and the promoted (keys, tags, rows)
          in promotion order.
        """
        cfg = self.config
        if self._ops is not None:
            return reference.MigrationResult(*self._ops.cafe_sketch_migrate(
                *self._handles(), force_decay=tf.convert_to_tensor(force_decay, tf.bool),
                hot_rows=cfg.hot_rows, threshold=cfg.threshold, demote_threshold=cfg.effective_demote_threshold,
                decay_rate=cfg.effective_decay_rate, decay_rule=cfg.decay_rule,
                decay_mass_factor=cfg.effective_decay_mass_factor,
                decay_period=cfg.decay_period, swap_margin=cfg.swap_margin or 0.0))
        state, result = reference.migrate(cfg, self.read_state(), force_decay)
        with tf.control_dependencies([self._assign_state(state)]):
            return reference.MigrationResult(*[tf.identity(t) for t in result])

    def decay(self) -> reference.MigrationResult:
        """Decays now (with demotions), then promotes as `migrate` does."""
        return self.migrate(force_decay=True)
