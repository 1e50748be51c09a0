"""Bad input gets a clear error and leaves the sketch state unchanged."""

import numpy as np
import pytest
import tensorflow as tf
from sketch_utils import state_arrays

from cafe_tf.sketch import HotSketch, SketchConfig

BACKENDS = ["op", "reference"]

BAD_INSERTS = {
    "float ids": (lambda: (tf.constant([1.0, 2.0]), None, None), "ids must be int32 or int64"),
    "string ids": (lambda: (tf.constant(["a"]), None, None), "ids must be int32 or int64"),
    "rank-2 ids": (lambda: (tf.constant([[1, 2]], tf.int64), None, None), "rank 1"),
    "short importance": (
        lambda: (tf.constant([1, 2, 3], tf.int64), tf.constant([1.0, 2.0]), None),
        "same length",
    ),
    "short feature_index": (
        lambda: (tf.constant([1, 2], tf.int64), None, tf.constant([0])),
        "same length",
    ),
    "int importance": (
        lambda: (tf.constant([1], tf.int64), tf.constant([1]), None),
        "importance must be a float",
    ),
    "NaN importance": (
        lambda: (tf.constant([1, 2], tf.int64), tf.constant([1.0, np.nan]), None),
        "finite",
    ),
    "inf importance": (
        lambda: (tf.constant([1, 2], tf.int64), tf.constant([np.inf, 1.0]), None),
        "finite",
    ),
    "negative importance": (
        lambda: (tf.constant([1, 2], tf.int64), tf.constant([1.0, -0.5]), None),
        ">= 0",
    ),
    "negative feature_index": (
        lambda: (tf.constant([1, 2], tf.int64), None, tf.constant([0, -1])),
        "feature_index must be in",
    ),
    "tag above 2**tag_bits - 1": (
        lambda: (tf.constant([1, 2], tf.int64), None, tf.constant([4, 0])),
        r"feature_index must be in \[0, 2\^tag_bits\) = \[0, 4\)",
    ),
    "tag above 2**30 - 1": (
        lambda: (tf.constant([1, 2], tf.int64), None, tf.constant([2**30, 0])),
        "feature_index must be in",
    ),
}


def _warm_sketch(backend):
    # 3 features: 2 tag bits, feature indices in [0, 4).
    sketch = HotSketch(
        SketchConfig(num_buckets=8, hot_rows=4, slots_per_bucket=2, threshold=2.0, num_features=3),
        backend=backend,
    )
    sketch.insert(tf.constant([1, 1, 2, 3, 4, 5], tf.int64))
    sketch.migrate()
    return sketch


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(BAD_INSERTS))
def test_bad_insert_is_rejected_and_state_unchanged(backend, case):
    make_args, message = BAD_INSERTS[case]
    sketch = _warm_sketch(backend)
    before = state_arrays(sketch)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        sketch.insert(*make_args())
    after = state_arrays(sketch)
    for name in before:
        assert np.array_equal(before[name], after[name]), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_values_rejected_inside_tf_function(backend):
    """Values are only known at run time in a graph: the kernel or the
    reference's assertions reject them, still before any state changes."""
    sketch = _warm_sketch(backend)
    before = state_arrays(sketch)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec([None])])
    def insert(ids, importance):
        sketch.insert(ids, importance)

    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        insert(tf.constant([1, 2], tf.int64), tf.constant([1.0, np.nan]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same length"):
        insert(tf.constant([1, 2], tf.int64), tf.constant([1.0]))
    after = state_arrays(sketch)
    for name in before:
        assert np.array_equal(before[name], after[name]), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_changes_nothing(backend):
    sketch = _warm_sketch(backend)
    before = state_arrays(sketch)
    sketch.insert(tf.zeros([0], tf.int64), tf.zeros([0]))
    after = state_arrays(sketch)
    for name in before:
        assert np.array_equal(before[name], after[name]), name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_buckets=0, hot_rows=4), "num_buckets"),
        (dict(num_buckets=-3, hot_rows=4), "num_buckets"),
        (dict(num_buckets=8, hot_rows=0), "hot_rows"),
        (dict(num_buckets=8, hot_rows=4, slots_per_bucket=0), "slots_per_bucket"),
        (dict(num_buckets=8, hot_rows=4, threshold=0.0), "threshold"),
        (dict(num_buckets=8, hot_rows=4, threshold=-1.0), "threshold"),
        (dict(num_buckets=8, hot_rows=4, threshold=float("nan")), "threshold"),
        (dict(num_buckets=8, hot_rows=4, decay_rate=1.5), "decay_rate"),
        (dict(num_buckets=8, hot_rows=4, decay_rule="often"), "decay_rule"),
        (dict(num_buckets=8, hot_rows=4, decay_rule="batches"), "decay_period"),
        (dict(num_buckets=8, hot_rows=4, threshold=2.0, medium_threshold=3.0), "medium_threshold"),
        (dict(num_buckets=8, hot_rows=4, threshold=2.0, demote_threshold=3.0), "demote_threshold"),
        # Subnormal thresholds: 0 to TF's flush-to-zero CPU kernels, not to CUDA.
        (dict(num_buckets=8, hot_rows=4, threshold=1e-39), "threshold"),
        (
            dict(num_buckets=8, hot_rows=4, threshold=2.0, medium_threshold=1e-40),
            "medium_threshold",
        ),
        (
            dict(num_buckets=8, hot_rows=4, threshold=2.0, demote_threshold=1e-40),
            "demote_threshold",
        ),
        (dict(num_buckets=8, hot_rows=4, fill_free_rows=1), "fill_free_rows"),
        (dict(num_buckets=8, hot_rows=4, threshold=2.0, yield_threshold=3.0), "yield_threshold"),
        (dict(num_buckets=8, hot_rows=4, yield_threshold=float("nan")), "yield_threshold"),
        (dict(num_buckets=8, hot_rows=4, num_features=0), "num_features"),
        (dict(num_buckets=8, hot_rows=4, num_features=2**30 + 1), "num_features"),
        # A hot entry is (row << tag_bits) | tag in an int32: 3 tags (2 bits) allow 2**29 rows.
        (
            dict(num_buckets=8, hot_rows=2**29 + 1, num_features=3),
            r"hot_rows \* 2\*\*tag_bits must be <= 2\*\*31.*at most 536870912 hot rows",
        ),
    ],
)
def test_bad_config_is_a_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SketchConfig(**kwargs)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        HotSketch(SketchConfig(num_buckets=8, hot_rows=4), backend="gpu")


@pytest.mark.parametrize(
    "attrs, message",
    [
        (dict(threshold=0.0), "threshold must be finite and > 0"),
        (dict(decay_rate=1.5), "decay_rate must be in"),
        (dict(decay_rule="batches", decay_period=0), "decay_period must be > 0"),
        (
            dict(hot_rows=2**29 + 1),
            r"a hot slot packs .* hot_rows \* 2\^tag_bits must be <= 2\^31: "
            r"tag_bits 2 \(tags < 4\) allows at most 536870912 hot rows, "
            r"got 536870913",
        ),
    ],
)
def test_migrate_op_rejects_bad_attributes(attrs, message):
    """The raw migrate op validates its attributes itself, state untouched."""
    from cafe_tf import _ops

    sketch = _warm_sketch("op")
    before = state_arrays(sketch)
    options = dict(hot_rows=4, tag_bits=2, threshold=2.0, demote_threshold=2.0, decay_rate=0.99)
    with pytest.raises(tf.errors.InvalidArgumentError, match="CafeSketchMigrate: " + message):
        _ops.ops.cafe_sketch_migrate(
            *[v.handle for v in sketch.state_variables], force_decay=True, **{**options, **attrs}
        )
    after = state_arrays(sketch)
    for name in before:
        assert np.array_equal(before[name], after[name]), name


def test_op_rejects_state_variables_not_matching_the_layout():
    """The raw ops check the dtypes and shapes of the variables they are handed."""
    from cafe_tf import _ops

    sketch = _warm_sketch("op")
    before = state_arrays(sketch)
    handles = [v.handle for v in sketch.state_variables]
    ids, ones, index = tf.constant([1], tf.int64), tf.constant([1.0]), tf.constant([0])
    wrong_dtype = tf.Variable(tf.zeros(sketch.slots.shape, tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="slots' must be int64"):
        _ops.ops.cafe_sketch_insert(
            wrong_dtype.handle,
            *handles[1:],
            ids=ids,
            importance=ones,
            feature_index=index,
            tag_bits=2,
        )
    wrong_shape = tf.Variable(tf.zeros([4, 2]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="scores must have the shape"):
        _ops.ops.cafe_sketch_migrate(
            handles[0],
            wrong_shape.handle,
            *handles[2:],
            force_decay=False,
            hot_rows=4,
            tag_bits=2,
            threshold=2.0,
            demote_threshold=2.0,
            decay_rate=0.99,
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="slots and scores must have one"):
        _ops.ops.cafe_sketch_query(sketch.slots, tf.zeros([8]), ids, medium_threshold=1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="tag_bits must be in"):
        _ops.ops.cafe_sketch_query(
            sketch.slots, sketch.scores, ids, medium_threshold=1.0, tag_bits=31
        )
    after = state_arrays(sketch)
    for name in before:
        assert np.array_equal(before[name], after[name]), name


def test_migrate_op_rejects_a_state_with_rows_beyond_hot_rows():
    """Hot rows live only in the slots' entries: a migrate op told fewer hot rows than
    the state uses (or other tag bits) refuses it before any change."""
    from cafe_tf import _ops

    sketch = HotSketch(
        SketchConfig(num_buckets=8, hot_rows=4, slots_per_bucket=4, threshold=2.0), backend="op"
    )
    sketch.insert(tf.constant([1, 1, 2, 2, 3, 3, 4, 4], tf.int64))
    assert sketch.migrate().promoted_rows.numpy().tolist() == [0, 1, 2, 3]
    before = state_arrays(sketch)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"holds hot row [23], but hot_rows is 2"
    ):
        _ops.ops.cafe_sketch_migrate(
            *[v.handle for v in sketch.state_variables],
            force_decay=True,
            hot_rows=2,
            threshold=2.0,
            demote_threshold=2.0,
            decay_rate=0.99,
        )
    after = state_arrays(sketch)
    for name in before:
        assert np.array_equal(before[name], after[name]), name
