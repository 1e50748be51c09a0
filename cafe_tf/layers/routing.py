"""Routing of a CAFE lookup: distinct (key, feature) pairs, and the table rows each reads.

One call of a CAFE collection looks up N occurrences of keys. Most of them
repeat (click logs are Zipf-like), so the collection works on distinct
(key, feature) pairs: it queries the sketch, chooses the table rows and gathers
once per distinct pair, and expands to the occurrences by the inverse index.
It also reads every table row once, so each table's gradient holds distinct rows.

`route_reference` is the pure-TF definition (stock ops only: it serves
SavedModels without cafe_tf's op library); the fused `CafeRoute` op
(custom_ops/core/routing.h) returns the same tensors bit for bit.
"""

import collections
from collections.abc import Callable, Sequence

import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.sketch import LEVEL_MEDIUM, HotSketch

# Seeds of the first (every non-hot feature) and second (medium level) hashed tables.
HASHED_SEED, MEDIUM_SEED = 1, 2

Route = collections.namedtuple(
    "Route",
    [
        "keys",
        "feature_index",
        "inverse",
        "hot_row",
        "level",
        "hashed_row",
        "medium_row",
        "read_hot",
        "read_hashed",
        "read_medium",
        "first_index",
        "medium_index",
        "occurrence_index",
    ],
)
Route.__doc__ = """Routing of N occurrences over U distinct (key, feature) pairs.

Every [U] vector holds one value per distinct pair, hence the singular names
(`budget.CafeLayout.hot_rows` and `hashed_rows` are table sizes).

keys int64 [U], feature_index int32 [U]: the distinct pairs, in order of first
  occurrence.
inverse int32 [N]: the distinct pair of each occurrence.
hot_row int32 [U]: the pair's hot row, or -1. level int32 [U]: 0 cold, 1 medium, 2 hot.
hashed_row int64 [U]: row in the packed hashed tables, -1 when hot (a function of
  the key's fingerprint and feature: `packed_rows`).
medium_row int64 [U]: row in the packed medium tables, -1 unless medium.
read_hot int32 [Rh], read_hashed int64 [Rs], read_medium int64 [Rm]: each
  table's distinct rows read, in order of first use by the distinct pairs.
first_index int32 [U]: the pair's hot or hashed vector in
  concat(read_hot rows, read_hashed rows); medium_index int32 [U]: its
  medium vector in read_medium, or -1.
occurrence_index int32 [N]: each occurrence's vector in that concat, its pair's
  first_index (the lookup reads and its gradient sums through it).
"""


def packed_rows(
    fingerprints: tf.Tensor,
    feature_index: tf.Tensor,
    offsets: Sequence[int],
    sizes: Sequence[int],
    seed: int,
) -> tf.Tensor:
    """Rows of keys, given by their fingerprints (`hashing.fingerprint`) and feature
    indices, in per-feature hashed tables packed back to back (int64)."""
    feature_index = tf.convert_to_tensor(feature_index, tf.int32)
    return tf.gather(tf.constant(offsets, tf.int64), feature_index) + hashing.fingerprint_row(
        fingerprints, tf.gather(tf.constant(sizes, tf.int64), feature_index), seed
    )


def field_keys(ids: Sequence[tf.Tensor], fused: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """A call's sketch keys and their feature indices, from each feature's int64 ids [N_i]:
    (int64 [N] feature i's ids XOR its salt, `hashing.field_keys`; int32 [N] i), the
    features one after another. With `fused=True`, one `CafeFieldKeys` op of cafe_tf's
    library (the same tensors), in place of two ops per feature and two concats."""
    if fused:
        from cafe_tf import _ops

        return tuple(_ops.ops.cafe_field_keys([tf.convert_to_tensor(x, tf.int64) for x in ids]))
    keys = tf.concat([hashing.field_keys(x, i) for i, x in enumerate(ids)], 0)
    feature_index = tf.concat([tf.fill(tf.shape(x), i) for i, x in enumerate(ids)], 0)
    return keys, feature_index


def _distinct(values: tf.Tensor, where: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Distinct values[where] in order of first appearance, and per position its index
    among them (-1 where `where` is False)."""
    positions = tf.where(where)[:, 0]
    distinct, index = tf.unique(tf.gather(values, positions), out_idx=tf.int32)
    return distinct, tf.tensor_scatter_nd_update(
        tf.fill(tf.shape(values), -1), positions[:, None], index
    )


def route_reference(
    keys: tf.Tensor,
    feature_index: tf.Tensor,
    query: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
    hashed_offsets: Sequence[int],
    hashed_sizes: Sequence[int],
    medium_offsets: Sequence[int] = (),
    medium_sizes: Sequence[int] = (),
) -> Route:
    """The routing of keys [N] (int64) of features `feature_index` [N] (int32), in stock
    TF ops.

    Args:
      keys, feature_index: the call's sketch keys and the feature index of each.
      query: `fn(keys) -> (hot row, level)` per key, the sketch's read-only query.
      hashed_offsets, hashed_sizes: per feature, first row and rows of its hashed table.
      medium_offsets, medium_sizes: the same for the medium tables (empty: one level).

    Returns:
      A `Route`.
    """
    keys = tf.convert_to_tensor(keys, tf.int64)
    feature_index = tf.convert_to_tensor(feature_index, tf.int32)
    # Pairs: distinct keys first, then (key index, feature index), a bijection of the pair.
    num_features = len(hashed_sizes)
    distinct_keys, key_index = tf.unique(keys, out_idx=tf.int64)
    pairs, inverse = tf.unique(
        key_index * num_features + tf.cast(feature_index, tf.int64), out_idx=tf.int32
    )
    unique_keys = tf.gather(distinct_keys, pairs // num_features)
    unique_features = tf.cast(pairs % num_features, tf.int32)
    hot_row, level = query(unique_keys)
    is_hot = hot_row >= 0
    no_rows = tf.fill(tf.shape(unique_keys), tf.constant(-1, tf.int64))
    fingerprints = hashing.fingerprint(unique_keys)
    hashed = tf.where(
        is_hot,
        no_rows,
        packed_rows(fingerprints, unique_features, hashed_offsets, hashed_sizes, HASHED_SEED),
    )
    if medium_sizes:
        is_medium = level == LEVEL_MEDIUM
        medium = tf.where(
            is_medium,
            packed_rows(fingerprints, unique_features, medium_offsets, medium_sizes, MEDIUM_SEED),
            no_rows,
        )
    else:
        is_medium, medium = tf.zeros_like(is_hot), no_rows
    read_hot, hot_index = _distinct(hot_row, is_hot)
    read_hashed, hashed_index = _distinct(hashed, tf.logical_not(is_hot))
    read_medium, medium_index = _distinct(medium, is_medium)
    first_index = tf.where(is_hot, hot_index, tf.size(read_hot) + hashed_index)
    return Route(
        unique_keys,
        unique_features,
        inverse,
        hot_row,
        level,
        hashed,
        medium,
        read_hot,
        read_hashed,
        read_medium,
        first_index,
        medium_index,
        tf.gather(first_index, inverse),
    )


def route_op(
    sketch: HotSketch,
    keys: tf.Tensor,
    feature_index: tf.Tensor,
    hashed_offsets: Sequence[int],
    hashed_sizes: Sequence[int],
    medium_offsets: Sequence[int] = (),
    medium_sizes: Sequence[int] = (),
) -> Route:
    """`route_reference` through the fused `CafeRoute` op of cafe_tf's library,
    querying `sketch` (a `HotSketch` on the op backend)."""
    from cafe_tf import _ops

    return Route(
        *_ops.ops.cafe_route(
            sketch.slots.read_value(),
            sketch.scores.read_value(),
            tf.convert_to_tensor(keys, tf.int64),
            tf.convert_to_tensor(feature_index, tf.int32),
            hashed_offsets=list(hashed_offsets),
            hashed_sizes=list(hashed_sizes),
            medium_offsets=list(medium_offsets),
            medium_sizes=list(medium_sizes),
            medium_threshold=sketch.config.effective_medium_threshold,
            tag_bits=sketch.config.tag_bits,
        )
    )
