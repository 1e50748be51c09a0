"""Turns every supported id input into one flat list of (id, example, weight).

Supported per feature: dense `[B]` (one id per example) or `[B, L]` (L ids per
example, all valid), `tf.RaggedTensor` `[B, None]`, `tf.SparseTensor`
`[B, L]`; ids of any integer dtype (any int64 value is valid) or strings
(fingerprinted to int64). An integer id is the int64 of the same value, whatever its
dtype, except uint64 ids of 2**63 and above: those are the int64 with the same 64 bits
(value - 2**64), so distinct uint64 ids stay distinct. Features of one call may differ
in dtype. Optional weights with the same structure. All embedding layers of
cafe_tf (CAFE and the baselines) share this, and `pool` below.
"""

import collections
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

from cafe_tf import hashing

COMBINERS = ("sum", "mean", "sqrtn")

FlatIds = collections.namedtuple(
    "FlatIds", ["ids", "examples", "weights", "batch_size", "one_per_example"], defaults=[False]
)
FlatIds.__doc__ = """ids int64 [N], examples int32 [N] (row of each id in the batch),
weights float32 [N] or None, batch_size (scalar int32 tensor), one_per_example (bool:
known when tracing that example b holds exactly id b, as dense [B] or [B, 1] ids do)."""


# Dense, ragged or sparse ids (or weights) of one feature.
IdsLike = tf.Tensor | tf.RaggedTensor | tf.SparseTensor


def _as_int64_ids(values: tf.Tensor, feature: str) -> tf.Tensor:
    if values.dtype == tf.string:
        return hashing.string_ids(values)
    if values.dtype == tf.uint64:
        # A cast would be implementation-defined above 2**63; the bits are the id.
        return tf.bitcast(values, tf.int64)
    if values.dtype.is_integer:
        return tf.cast(values, tf.int64)
    raise TypeError(
        f"feature '{feature}': ids must be integers (any int or uint dtype) or "
        f"strings, got {values.dtype.name}"
    )


def _check_weights_type(weights: IdsLike | None, kind: type, feature: str) -> None:
    if weights is not None and not isinstance(weights, kind):
        raise TypeError(
            f"feature '{feature}': weights must be a {kind.__name__} like its ids, "
            f"got {type(weights).__name__}"
        )


def _weight_values(
    feature: str,
    weights: IdsLike | None,
    kind: type,
    layout: Callable[[IdsLike], tf.Tensor],
    ids: IdsLike,
    what: str,
) -> tf.Tensor | None:
    """The values of ragged or sparse `weights`, checked (at run time) to have the
    `layout` (row splits or indices) of `ids`; None without weights."""
    _check_weights_type(weights, kind, feature)
    if weights is None:
        return None
    check = tf.debugging.assert_equal(
        tf.cast(layout(weights), tf.int64),
        tf.cast(layout(ids), tf.int64),
        message=f"feature '{feature}': weights must have the {what} of ids",
    )
    with tf.control_dependencies([check]):
        return tf.identity(weights.values)


def flatten(feature: str, ids: IdsLike, weights: IdsLike | None = None) -> FlatIds:
    """Flattens one feature's ids (and weights) into a `FlatIds`.

    Raises:
      TypeError: ids neither integer nor string (e.g. float or bool), or weights of another kind than ids.
      ValueError: unsupported rank (ids must be [B], [B, L] or ragged/sparse [B, L]).
      InvalidArgumentError: (at run time) weights whose shape does not match ids.
    """
    if isinstance(ids, tf.RaggedTensor):
        if ids.ragged_rank != 1 or ids.shape.rank != 2:
            raise ValueError(
                f"feature '{feature}': ragged ids must be [B, None], got shape {ids.shape}"
            )
        flat_weights = _weight_values(
            feature, weights, tf.RaggedTensor, lambda t: t.row_splits, ids, "row lengths"
        )
        return FlatIds(
            _as_int64_ids(ids.values, feature),
            tf.cast(ids.value_rowids(), tf.int32),
            flat_weights,
            tf.cast(ids.nrows(), tf.int32),
        )
    if isinstance(ids, tf.SparseTensor):
        if ids.shape.rank != 2:
            raise ValueError(
                f"feature '{feature}': sparse ids must be [B, L], got rank {ids.shape.rank}"
            )
        flat_weights = _weight_values(
            feature, weights, tf.SparseTensor, lambda t: t.indices, ids, "indices"
        )
        return FlatIds(
            _as_int64_ids(ids.values, feature),
            tf.cast(ids.indices[:, 0], tf.int32),
            flat_weights,
            tf.cast(ids.dense_shape[0], tf.int32),
        )
    ids = tf.convert_to_tensor(ids)
    if ids.shape.rank not in (1, 2):
        raise ValueError(
            f"feature '{feature}': dense ids must be [B] or [B, L], got rank "
            f"{ids.shape.rank} (shape {ids.shape})"
        )
    if weights is not None:
        _check_weights_type(weights, tf.Tensor, feature)
        weights = tf.convert_to_tensor(weights)
        if weights.shape.rank is not None and weights.shape.rank != ids.shape.rank:
            raise ValueError(
                f"feature '{feature}': weights must have the shape of ids "
                f"{ids.shape}, got {weights.shape}"
            )
        check = tf.debugging.assert_equal(
            tf.shape(weights),
            tf.shape(ids),
            message=(f"feature '{feature}': weights must have the shape of ids"),
        )
        with tf.control_dependencies([check]):
            weights = tf.reshape(weights, [-1])
    batch_size = tf.shape(ids)[0]
    one_per_example = ids.shape.rank == 1 or ids.shape[1] == 1
    examples = tf.range(batch_size)
    if not one_per_example:
        examples = tf.repeat(examples, tf.shape(ids)[1])
    return FlatIds(
        _as_int64_ids(tf.reshape(ids, [-1]), feature),
        examples,
        weights,
        batch_size,
        one_per_example,
    )


def check_features(
    layer: str, names: Sequence[str], inputs: Any, weights: Mapping[str, Any] | None
) -> None:
    """The input contract of every embedding collection of cafe_tf: `inputs` maps every
    feature name to its ids (other keys are ignored: a model may pass all its inputs),
    and `weights`, when given, maps some of those features to their weights.

    Raises:
      TypeError: `inputs` or `weights` is not a mapping of feature names.
      ValueError: `inputs` lacks features, or `weights` names features the layer
        does not have (a misspelt name would otherwise silently weigh 1 per id).
    """
    for what, value in (("inputs", inputs), ("weights", weights)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(
                f"{layer}: {what} must be a dict of feature name to tensor, got "
                f"{type(value).__name__} (features: {list(names)})"
            )
    missing = [name for name in names if name not in inputs]
    if missing:
        raise ValueError(
            f"{layer}: inputs lack the features {missing} (features: "
            f"{list(names)}, inputs: {sorted(inputs)})"
        )
    unknown = sorted(set(weights or {}) - set(names))
    if unknown:
        raise ValueError(
            f"{layer}: weights given for unknown features {unknown} (features: {list(names)})"
        )


def output_shapes(names, input_shape, embedding_dim: int):
    """{name: TensorShape [B, embedding_dim]}: the pooled outputs of a collection's features,
    B taken from each feature's ids shape (`input_shape`, {name: shape})."""
    missing = [name for name in names if name not in input_shape]
    if missing:
        raise ValueError(f"input shapes lack features {missing}; got {sorted(input_shape)}")
    shapes = {}
    for name in names:
        shape = tf.TensorShape(input_shape[name])
        if shape.rank is not None and shape.rank not in (1, 2):
            raise ValueError(f"feature '{name}': ids must be [B] or [B, L], got shape {shape}")
        shapes[name] = tf.TensorShape([shape[0] if shape.rank else None, embedding_dim])
    return shapes


def pool(vectors: tf.Tensor, flat: FlatIds, combiner: str) -> tf.Tensor:
    """Combines per-id vectors [N, D] into per-example vectors [B, D].

    sum: sum of w * v; mean: divided by the sum of weights; sqrtn: divided by
    the square root of the sum of squared weights (as tf.nn.safe_embedding_lookup_sparse).
    Examples without ids give zeros.
    """
    if combiner not in COMBINERS:
        raise ValueError(f"combiner must be one of {COMBINERS}, got {combiner!r}")
    if flat.one_per_example and flat.weights is None:
        # Each example's one vector, times weight 1, divided by 1 for `mean` and `sqrtn`:
        # the vector itself, without a segment sum forward and a gather backward.
        return vectors
    weights = (
        tf.ones([tf.shape(vectors)[0]], vectors.dtype)
        if flat.weights is None
        else tf.cast(flat.weights, vectors.dtype)
    )
    summed = tf.math.unsorted_segment_sum(
        vectors * weights[:, None], flat.examples, flat.batch_size
    )
    if combiner == "sum":
        return summed
    scale = weights if combiner == "mean" else tf.square(weights)
    total = tf.math.unsorted_segment_sum(scale, flat.examples, flat.batch_size)
    if combiner == "sqrtn":
        total = tf.sqrt(total)
    return tf.math.divide_no_nan(summed, total[:, None])
