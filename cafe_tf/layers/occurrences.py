"""Per-occurrence reductions of a CAFE lookup's backward pass.

A call reads each distinct row once and expands it to the N occurrences; its
backward pass sums the occurrences' gradients per distinct row, and the
importance of the occurrences per distinct (key, feature) pair. Both are
single passes over N rows, which stock TF ops make several of.

Each function is defined here in stock TF ops (the reference, which serves
SavedModels without cafe_tf's op library); with `fused=True` it runs the
matching op of cafe_tf's library (custom_ops/core/occurrences.h), which
returns the same values bit for bit. With gradient-norm importance, one op
(`expand_gradient`) makes both reductions, as two tasks on TF's thread pool. Sums
run in occurrence order per output, as TensorFlow's CPU
`unsorted_segment_sum` does.
"""

from collections.abc import Callable

import tensorflow as tf

# A count given as a Python int or a scalar int32 tensor.
TensorLike = int | tf.Tensor


def segment_row_sums(
    rows: tf.Tensor, segment_ids: tf.Tensor, num_segments: TensorLike, fused: bool
) -> tf.Tensor:
    """float32 [num_segments, D]: the sum of the rows [N, D] of each segment."""
    if fused:
        from cafe_tf import _ops

        return _ops.ops.cafe_segment_row_sums(rows, segment_ids, num_segments)
    return tf.math.unsorted_segment_sum(rows, segment_ids, num_segments)


def row_norms(rows: tf.Tensor) -> tf.Tensor:
    """float32 [N]: the Euclidean norm of each row [N, D], summing the squares in column
    order (a fixed order, which the op library repeats)."""
    squares = tf.square(rows)
    total = squares[:, 0]
    for column in range(1, rows.shape[1]):
        total = total + squares[:, column]
    return tf.sqrt(total)


def pair_importance(
    rows: tf.Tensor, pairs: tf.Tensor, num_pairs: TensorLike, norm: bool, fused: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per distinct pair, (float64 [num_pairs] sum of its occurrences' values, float64
    [num_pairs] number of occurrences).

    Args:
      rows: float32 [N, D]; an occurrence's value is its row's norm (`norm`), else
        the absolute value of its one-column row.
      pairs: int32 [N], the distinct pair of each occurrence.
      num_pairs: number of distinct pairs.
      norm: see `rows`.
      fused: run the op library's `CafePairImportance`.
    """
    if fused:
        from cafe_tf import _ops

        return _ops.ops.cafe_pair_importance(rows, pairs, num_pairs, norm=norm)
    values = row_norms(rows) if norm else tf.abs(rows[:, 0])
    values = tf.cast(values, tf.float64)
    per_pair = tf.math.unsorted_segment_sum(
        tf.stack([values, tf.ones_like(values)], 1), pairs, num_pairs
    )
    return per_pair[:, 0], per_pair[:, 1]


def expand_gradient(
    rows: tf.Tensor,
    segment_ids: tf.Tensor,
    num_segments: TensorLike,
    pairs: tf.Tensor,
    num_pairs: TensorLike,
    fused: bool,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`segment_row_sums(rows, segment_ids, num_segments)` and the gradient-norm
    `pair_importance(rows, pairs, num_pairs, norm=True)`, the same values; with
    `fused=True` in one op (the op library's `CafeExpandGradient`, the two sums side by
    side on TF's thread pool).

    Returns:
      (float32 [num_segments, D] row sums, float64 [num_pairs] norm sums, float64
      [num_pairs] occurrences).
    """
    if fused:
        from cafe_tf import _ops

        return tuple(
            _ops.ops.cafe_expand_gradient(rows, segment_ids, num_segments, pairs, num_pairs)
        )
    return (
        segment_row_sums(rows, segment_ids, num_segments, fused=False),
        *pair_importance(rows, pairs, num_pairs, norm=True, fused=False),
    )


def expand(
    rows: tf.Tensor,
    occurrence_rows: tf.Tensor,
    fused: bool,
    on_importance: Callable[[tf.Tensor, tf.Tensor], None] | None = None,
    pairs: tf.Tensor | None = None,
    num_pairs: TensorLike | None = None,
) -> tf.Tensor:
    """`rows[occurrence_rows]`: a few distinct rows [R, D] expanded to many occurrences
    [N] through each occurrence's row `occurrence_rows` [N]. Its gradient is the dense
    per-row sum (`segment_row_sums` over the occurrences' rows); stock gather's
    IndexedSlices gradient would carry one row per occurrence through the tables'
    concat.

    With `on_importance`, the backward pass also calls `on_importance(norm sums,
    occurrences)` with the gradient-norm importance of each distinct pair, given the
    occurrences' `pairs` [N] and `num_pairs` (`expand_gradient`: one op for both sums)."""
    if on_importance is not None and (pairs is None or num_pairs is None):
        raise ValueError("expand: on_importance needs the occurrences' pairs and num_pairs")

    @tf.custom_gradient
    def expand_rows(distinct_rows):
        def gradient(dy):
            # A model's gradient may have lost the static width (a reshape), which the
            # pure-TF norms read; it is the rows'.
            dy.set_shape([None, distinct_rows.shape[1]])
            num_rows = tf.shape(distinct_rows)[0]
            if on_importance is None:
                return segment_row_sums(dy, occurrence_rows, num_rows, fused)
            sums, norm_sums, occurrences = expand_gradient(
                dy, occurrence_rows, num_rows, pairs, num_pairs, fused
            )
            on_importance(norm_sums, occurrences)
            return sums

        return tf.gather(distinct_rows, occurrence_rows), gradient

    return expand_rows(rows)
