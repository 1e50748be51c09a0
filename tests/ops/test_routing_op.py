"""The fused CafeRoute op equals the pure-TF routing (cafe_tf/layers/routing.py) bit for bit."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf.layers import routing
from cafe_tf.sketch import HotSketch, SketchConfig

pytestmark = pytest.mark.skipif(
    HotSketch(SketchConfig(num_buckets=1, hot_rows=1, threshold=1.0)).backend != "op",
    reason="op library not loaded",
)

EXTREMES = np.array(
    [
        np.iinfo(np.int64).min,
        np.iinfo(np.int64).max,
        0,
        -1,
        1,
        np.iinfo(np.int64).min + 1,
        np.iinfo(np.int64).max - 1,
    ],
    np.int64,
)


def _sketch(rng, multi_level):
    """A sketch with hot, medium and cold keys (drawn from a pool the calls reuse)."""
    sketch = HotSketch(
        SketchConfig(
            num_buckets=97,
            hot_rows=40,
            slots_per_bucket=4,
            threshold=6.0,
            medium_threshold=2.0 if multi_level else None,
            num_features=5,
        )
    )
    pool = np.concatenate([rng.integers(-(2**63), 2**63 - 1, 300, dtype=np.int64), EXTREMES])
    for _ in range(3):
        ranks = np.minimum(rng.zipf(1.3, 3000), len(pool)) - 1
        sketch.insert(
            pool[ranks], rng.exponential(1.0, 3000).astype(np.float32), (ranks % 5).astype(np.int32)
        )
        sketch.migrate()
    return sketch, pool


def _tables(rng, num_features, multi_level):
    sizes = rng.integers(1, 50, num_features).tolist()
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    if not multi_level:
        return (offsets, sizes, (), ())
    medium = rng.integers(1, 20, num_features).tolist()
    return (offsets, sizes, np.concatenate([[0], np.cumsum(medium)[:-1]]).tolist(), medium)


def _assert_routes_equal(sketch, keys, feature_index, tables):
    got = routing.route_op(sketch, keys, feature_index, *tables)
    expected = routing.route_reference(
        keys, feature_index, lambda k: sketch.query(k, pure_tf=True), *tables
    )
    for name, a, b in zip(routing.Route._fields, got, expected):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    return got


def _check_route_meaning(route, keys, feature_index):
    """Whatever the implementation: pairs distinct, inverse exact, rows read once."""
    pairs = list(zip(route.keys.numpy().tolist(), route.feature_index.numpy().tolist()))
    assert len(set(pairs)) == len(pairs)
    inverse = route.inverse.numpy()
    np.testing.assert_array_equal(route.keys.numpy()[inverse], keys)
    np.testing.assert_array_equal(route.feature_index.numpy()[inverse], feature_index)
    for read in (route.read_hot, route.read_hashed, route.read_medium):
        assert len(np.unique(read.numpy())) == len(read.numpy())
    hot = route.hot_row.numpy()
    reads = np.concatenate([route.read_hot.numpy(), route.read_hashed.numpy()])
    first = reads[route.first_index.numpy()]
    np.testing.assert_array_equal(first[hot >= 0], hot[hot >= 0])
    np.testing.assert_array_equal(first[hot < 0], route.hashed_row.numpy()[hot < 0])
    np.testing.assert_array_equal(
        route.occurrence_index.numpy(), route.first_index.numpy()[inverse]
    )


@pytest.mark.parametrize(
    "multi_level", [pytest.param(False, id="one-level"), pytest.param(True, id="multi-level")]
)
@pytest.mark.parametrize("num_features", [1, 2, 5, 26])
def test_route_op_equals_reference_fuzz(num_features, multi_level):
    rng = np.random.default_rng(num_features * 2 + multi_level)
    sketch, pool = _sketch(rng, multi_level)
    tables = _tables(rng, num_features, multi_level)
    levels_seen = set()
    for length in (0, 1, 2, 17, 256, 3000):
        for kind in ("zipf", "all-duplicates", "extremes"):
            if kind == "zipf":
                ranks = np.minimum(rng.zipf(1.2, length), len(pool)) - 1
                keys = np.where(
                    rng.random(length) < 0.1,
                    rng.integers(-(2**63), 2**63 - 1, length, dtype=np.int64),
                    pool[ranks],
                )
            elif kind == "all-duplicates":
                keys = np.full(length, pool[0])
            else:
                keys = rng.choice(EXTREMES, length)
            feature_index = rng.integers(0, num_features, length).astype(np.int32)
            if kind == "all-duplicates":
                feature_index[:] = num_features - 1
            route = _assert_routes_equal(
                sketch, tf.constant(keys, tf.int64), tf.constant(feature_index), tables
            )
            _check_route_meaning(route, keys, feature_index)
            levels_seen.update(route.level.numpy().tolist())
    assert levels_seen == ({0, 1, 2} if multi_level else {0, 2})


@pytest.mark.parametrize("multi_level", [False, True])
def test_route_op_equals_reference_with_many_distinct_pairs(multi_level):
    """About 35,000 distinct pairs, over twice the query's part size: the op queries the
    sketch on TF's thread pool."""
    rng = np.random.default_rng(11 + multi_level)
    sketch, pool = _sketch(rng, multi_level)
    tables = _tables(rng, 26, multi_level)
    keys = np.concatenate([pool, rng.integers(-(2**63), 2**63 - 1, 30000, dtype=np.int64)])
    keys = rng.permutation(np.concatenate([keys, keys[:5000]]))
    feature_index = rng.integers(0, 26, len(keys)).astype(np.int32)
    route = _assert_routes_equal(
        sketch, tf.constant(keys, tf.int64), tf.constant(feature_index), tables
    )
    _check_route_meaning(route, keys, feature_index)
    assert route.keys.shape[0] > 30000 and (route.hot_row.numpy() >= 0).any()


def test_route_op_pair_tables_kept_across_calls_leave_no_trace():
    """The op keeps its pair tables across calls and empties only the slots a call took:
    calls of growing and shrinking sizes, one after another and several at once (four
    routes in one tf.function, which TF may run side by side), each equal the reference."""
    rng = np.random.default_rng(5)
    sketch, pool = _sketch(rng, multi_level=False)
    tables = _tables(rng, 26, multi_level=False)

    def draw(length):
        keys = np.where(
            rng.random(length) < 0.5,
            rng.integers(-(2**63), 2**63 - 1, length, dtype=np.int64),
            pool[np.minimum(rng.zipf(1.2, length), len(pool)) - 1],
        )
        return tf.constant(keys, tf.int64), tf.constant(rng.integers(0, 26, length), tf.int32)

    for length in (3000, 17, 40000, 5, 0, 3000, 1):
        keys, feature_index = draw(length)
        route = _assert_routes_equal(sketch, keys, feature_index, tables)
        _check_route_meaning(route, keys.numpy(), feature_index.numpy())

    calls = [draw(length) for length in (20000, 7, 5000, 20000)]
    routes = tf.function(lambda: [routing.route_op(sketch, k, f, *tables) for k, f in calls])()
    for (keys, feature_index), got in zip(calls, routes):
        expected = routing.route_reference(
            keys, feature_index, lambda k: sketch.query(k, pure_tf=True), *tables
        )
        for name, a, b in zip(routing.Route._fields, got, expected):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


@pytest.mark.parametrize("sizes", [[0], [5], [3, 0, 7], [4096] * 26, [0, 0, 1]])
def test_field_keys_op_equals_reference(sizes):
    """CafeFieldKeys: each feature's ids XOR its salt and its index, the features one after
    another, bit for bit as the stock-TF definition, eagerly and traced with unknown sizes."""
    rng = np.random.default_rng(len(sizes) * 100 + sum(sizes))
    ids = [
        tf.constant(
            np.where(
                rng.random(n) < 0.2, rng.choice(EXTREMES, n), rng.integers(-(2**40), 2**40, n)
            ),
            tf.int64,
        )
        for n in sizes
    ]
    expected = routing.field_keys(ids, fused=False)
    traced = tf.function(
        lambda *x: routing.field_keys(list(x), fused=True),
        input_signature=[tf.TensorSpec([None], tf.int64)] * len(ids),
    )
    for got in (routing.field_keys(ids, fused=True), traced(*ids)):
        for a, b in zip(got, expected):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(expected[1].numpy(), np.repeat(np.arange(len(sizes)), sizes))


def test_field_keys_op_rejects_ids_that_are_not_vectors():
    from cafe_tf import _ops

    with pytest.raises(tf.errors.InvalidArgumentError, match="must be a vector.*feature 1"):
        _ops.ops.cafe_field_keys([tf.constant([1], tf.int64), tf.constant([[1, 2]], tf.int64)])


def test_route_op_rejects_bad_input():
    sketch, _ = _sketch(np.random.default_rng(0), False)
    tables = ([0, 10], [10, 10], (), ())
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"feature_index must be in \[0, 2\)"):
        routing.route_op(sketch, tf.constant([1, 2], tf.int64), tf.constant([0, 2]), *tables)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one length|must be equal"):
        routing.route_op(sketch, tf.constant([1, 2], tf.int64), tf.constant([0]), *tables)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sizes must be in \[1, 2\^32\)"):
        routing.route_op(sketch, tf.constant([1], tf.int64), tf.constant([0]), [0, 10], [10, 0])
    # Rows are hashed from 32-bit fingerprints: a table of 2^32 rows is refused.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"32-bit\s+fingerprints"):
        routing.route_op(sketch, tf.constant([1], tf.int64), tf.constant([0]), [0, 10], [10, 2**32])


def test_hashed_rows_are_a_function_of_fingerprint_and_feature():
    """A key's hashed row is `fingerprint_row(fingerprint(key))`: what migration uses."""
    from cafe_tf import hashing

    sketch, pool = _sketch(np.random.default_rng(3), False)
    tables = ([0, 30], [30, 17], (), ())
    keys = tf.constant(pool[:50], tf.int64)
    feature_index = tf.constant(np.arange(50) % 2, tf.int32)
    route = routing.route_op(sketch, keys, feature_index, *tables)
    expected = routing.packed_rows(
        hashing.fingerprint(route.keys), route.feature_index, *tables[:2], routing.HASHED_SEED
    ).numpy()
    hot = route.hot_row.numpy() >= 0
    np.testing.assert_array_equal(route.hashed_row.numpy()[~hot], expected[~hot])
