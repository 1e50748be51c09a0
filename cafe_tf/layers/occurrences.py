"""Per-occurrence reductions of a CAFE lookup's backward pass.

A call reads each distinct row once and expands it to the N occurrences; its
backward pass sums the occurrences' gradients per distinct row, and the
importance of the occurrences per distinct (key, feature) pair. Both are
single passes over N rows, which stock TF ops make several of.

Each function is defined here in stock TF ops (the reference, which serves
SavedModels without cafe_tf's op library); with `fused=True` it runs the
matching op of cafe_tf's library (custom_ops/core/occurrences.h), which
returns the same values bit for bit. Sums run in occurrence order per output,
as TensorFlow's CPU `unsorted_segment_sum` does.
"""

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


def expand(rows: tf.Tensor, pair_rows: tf.Tensor, pairs: tf.Tensor, fused: bool) -> tf.Tensor:
    """`rows[pair_rows[pairs]]`: a few distinct rows [R, D] expanded to many occurrences,
    through each distinct pair's row `pair_rows` [U] and each occurrence's pair `pairs`
    [N]. Its gradient is the dense per-row sum (`segment_row_sums` over the occurrences'
    rows); stock gather's IndexedSlices gradient would carry one row per occurrence
    through the tables' concat.

    The forward pass gathers the [U] pairs' vectors first and expands those, so no [N]
    row index sits before the [N, D] gather; the backward pass builds that index, from
    forward values only, so it can run while the gradient is still on its way."""

    @tf.custom_gradient
    def expand_rows(distinct_rows):
        def gradient(dy):
            return segment_row_sums(
                dy, tf.gather(pair_rows, pairs), tf.shape(distinct_rows)[0], fused
            )

        return tf.gather(tf.gather(distinct_rows, pair_rows), pairs), gradient

    return expand_rows(rows)
