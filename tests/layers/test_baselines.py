"""Baseline embedding collections: lookups, input kinds, budgets, gradients, serialisation."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf import hashing
from cafe_tf.layers import baselines
from cafe_tf.layers.baselines import (
    FullEmbeddingCollection,
    HashEmbeddingCollection,
    QREmbeddingCollection,
)

D = 4
ROW_BYTES = D * budget_lib.FLOAT_BYTES
FEATURES = [
    {"name": "a", "vocabulary_size": 50, "combiner": "sum"},
    {"name": "b", "vocabulary_size": 200, "combiner": "mean"},
    {"name": "c", "vocabulary_size": 30, "combiner": "sqrtn"},
]

# Every collection at a budget that compresses (Full cannot, by definition).
MAKERS = {
    "full": lambda features: FullEmbeddingCollection(features, D),
    "hash": lambda features: HashEmbeddingCollection(features, D, compression_ratio=3),
    "hash_bytes": lambda features: HashEmbeddingCollection(features, D, budget_bytes=1000),
    "qr_mult": lambda features: QREmbeddingCollection(features, D, compression_ratio=4),
    "qr_add": lambda features: QREmbeddingCollection(
        features, D, budget_bytes=2000, operation="add"
    ),
}


def _randomize(layer, seed=0):
    """Distinct, non-zero table values, so that every wrong row shows."""
    rng = np.random.default_rng(seed)
    for table in layer.weights:
        table.assign(rng.uniform(0.5, 1.5, table.shape).astype(np.float32))


def _tables(layer):
    return {table.name.split("/")[-1].split(":")[0]: table.numpy() for table in layer.weights}


def _documented_rows(layer, index, ids):
    """{table kind: row of each id (with the feature's offset)}, from the documented mapping."""
    keys = hashing.field_keys(tf.constant(ids, tf.int64), index)
    table_rows = layer.table_rows
    offset = {kind: sum(counts[:index]) for kind, counts in table_rows.items()}
    if isinstance(layer, QREmbeddingCollection):
        m, q = table_rows["remainder"][index], table_rows["quotient"][index]
        hashed = hashing.hashed_row(keys, m * q, baselines._ROW_SEED).numpy()
        return {
            "quotient": offset["quotient"] + hashed // m,
            "remainder": offset["remainder"] + hashed % m,
        }
    size = table_rows["embeddings"][index]
    rows = hashing.hashed_row(keys, size, baselines._ROW_SEED).numpy()
    if isinstance(layer, FullEmbeddingCollection):  # ids in [0, n) read their own row
        as_ints = np.array([i if isinstance(i, (int, np.integer)) else -1 for i in ids])
        rows = np.where((as_ints >= 0) & (as_ints < size), as_ints, rows)
    return {"embeddings": offset["embeddings"] + rows}


def _id_vectors(layer, index, ids):
    """Each id's [D] vector, re-derived from the documented id -> row mapping."""
    tables, rows = _tables(layer), _documented_rows(layer, index, ids)
    if isinstance(layer, QREmbeddingCollection):
        quotient, remainder = (
            tables["quotient"][rows["quotient"]],
            tables["remainder"][rows["remainder"]],
        )
        return quotient * remainder if layer.operation == "mult" else quotient + remainder
    return tables["embeddings"][rows["embeddings"]]


def _pooled(layer, index, id_lists, weight_lists, combiner):
    """Reference pooling of per-example id lists (numpy)."""
    out = np.zeros([len(id_lists), D], np.float32)
    for b, (ids, weights) in enumerate(zip(id_lists, weight_lists)):
        if not ids:
            continue
        w = np.asarray(weights, np.float32)[:, None]
        total = (w * _id_vectors(layer, index, ids)).sum(0)
        scale = {"sum": 1.0, "mean": w.sum(), "sqrtn": np.sqrt((w**2).sum())}[combiner]
        out[b] = total / scale
    return out


# -- values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "combiner,factor", [("sum", 3.5), ("mean", 1.0), ("sqrtn", 3.5 / math.sqrt(5.25))]
)
@pytest.mark.parametrize(
    "maker",
    [
        lambda f: FullEmbeddingCollection(f, 2),
        lambda f: HashEmbeddingCollection(f, 2, compression_ratio=1),
        lambda f: QREmbeddingCollection(f, 2, budget_bytes=16, operation="mult"),
        lambda f: QREmbeddingCollection(f, 2, budget_bytes=16, operation="add"),
    ],
    ids=["full", "hash", "qr_mult", "qr_add"],
)
def test_hand_computed_single_row(maker, combiner, factor):
    # A vocabulary of 1: every id, however large, reads the single row (QR:
    # one quotient and one remainder row), so the output is known by hand.
    layer = maker([{"name": "f", "vocabulary_size": 1, "combiner": combiner}])
    for table in layer.weights:
        table.assign(tf.constant([[2.0, -3.0]]))
    vector = {"full": [2.0, -3.0], "mult": [4.0, 9.0], "add": [4.0, -6.0]}[
        getattr(layer, "operation", "full")
    ]
    ids = tf.constant([[5, -7, 2**62], [0, 0, 0]], tf.int64)
    weights = tf.constant([[1.0, 2.0, 0.5], [1.0, 2.0, 0.5]])
    out = layer({"f": ids}, weights={"f": weights})["f"]
    np.testing.assert_allclose(out, [np.multiply(vector, factor)] * 2, rtol=1e-6)


def _inputs(kind):
    """(ids, weights, id lists, weight lists) of one input kind."""
    big = [2**62 + 11, -(2**40), 3]  # ids far outside every vocabulary are valid
    if kind == "dense_1d":
        lists = [[7], [big[0]], [big[1]], [7]]
        return tf.constant([ids[0] for ids in lists], tf.int64), None, lists, [[1.0]] * 4
    if kind == "dense_2d":
        lists = [[1, 2], [big[0], 2], [7, 7], [big[1], 0]]
        weights = [[0.5, 2.0], [1.0, 1.0], [3.0, 0.25], [1.0, 0.0]]
        return (tf.constant(lists, tf.int64), tf.constant(weights), lists, weights)
    lists = [[1, 2, big[0]], [], [7, 7], [big[1]]]
    weights = [[0.5, 2.0, 1.0], [], [3.0, 0.25], [1.5]]
    ids, w = tf.ragged.constant(lists, tf.int64), tf.ragged.constant(weights, tf.float32)
    if kind == "ragged":
        return ids, w, lists, weights
    if kind == "sparse":
        return ids.to_sparse(), w.to_sparse(), lists, weights
    assert kind == "string"
    strings = [[f"v{i}" for i in ids] for ids in lists]
    fingerprints = [
        hashing.string_ids(tf.constant(ids, tf.string)).numpy().tolist() if ids else []
        for ids in strings
    ]
    return tf.ragged.constant(strings), w, fingerprints, weights


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("kind", ["dense_1d", "dense_2d", "ragged", "sparse", "string"])
@pytest.mark.parametrize("name", list(MAKERS))
def test_lookup_matches_documented_mapping(name, kind, weighted):
    layer = MAKERS[name](FEATURES)
    _randomize(layer)
    ids, weights, id_lists, weight_lists = _inputs(kind)
    if not weighted or weights is None:
        weights, weight_lists = None, [[1.0] * len(ids) for ids in id_lists]
    inputs = {f["name"]: ids for f in FEATURES}
    out = layer(inputs, weights=None if weights is None else {f["name"]: weights for f in FEATURES})
    assert set(out) == {"a", "b", "c"}
    for index, feature in enumerate(FEATURES):
        expected = _pooled(layer, index, id_lists, weight_lists, feature["combiner"])
        assert out[feature["name"]].shape == (len(id_lists), D)
        np.testing.assert_allclose(out[feature["name"]], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(MAKERS))
def test_features_differ_and_call_is_deterministic(name):
    # Equal ids of different features are different keys; a call is a pure function.
    layer = MAKERS[name]([{"name": n, "vocabulary_size": 300} for n in "xy"])
    _randomize(layer)
    ids = tf.range(64, dtype=tf.int64)
    out = layer({"x": ids, "y": ids})
    assert not np.allclose(out["x"], out["y"])
    np.testing.assert_array_equal(out["x"], layer({"x": ids, "y": ids})["x"])


def test_works_in_tf_function_and_functional_model():
    layer = HashEmbeddingCollection({"a": 100, "b": 10}, D, compression_ratio=4)
    inputs = {
        "a": tf_keras.Input(shape=(), dtype=tf.int64, name="a"),
        "b": tf_keras.Input(shape=(None,), dtype=tf.int64, ragged=True, name="b"),
    }
    model = tf_keras.Model(inputs, layer(inputs))
    batch = {
        "a": tf.constant([1, 2, 3], tf.int64),
        "b": tf.ragged.constant([[1], [], [2, 3]], tf.int64),
    }

    @tf.function
    def serve(features):
        return model(features)

    eager, graph = layer(batch), serve(batch)
    for name in eager:
        np.testing.assert_allclose(graph[name], eager[name])


# -- budgets -----------------------------------------------------------------


@pytest.mark.parametrize(
    "vocabulary,ratio",
    [([50, 200, 30], 3), ([1000], 7), ([1, 2, 3], 2), ([10**6, 17], 1000), ([999], 1)],
)
def test_hash_rows_are_ceil_n_over_cr(vocabulary, ratio):
    features = {f"f{i}": n for i, n in enumerate(vocabulary)}
    layer = HashEmbeddingCollection(features, D, compression_ratio=ratio)
    rows = tuple(math.ceil(n / ratio) for n in vocabulary)
    assert layer.table_rows == {"embeddings": rows}
    assert layer.memory_bytes() == layer.budget_bytes == sum(rows) * ROW_BYTES


def _variable_bytes(layer):
    return sum(v.shape.num_elements() * v.dtype.size for v in layer.weights)


def _minimum_bytes(cls, vocabulary):
    """The smallest budget `cls` takes, from its definition: one row per feature (hash), or
    per feature the smallest remainder and quotient tables, min over m of m + ceil(n / m) (QR)."""
    if cls is HashEmbeddingCollection:
        return len(vocabulary) * ROW_BYTES
    return sum(min(m + -(-n // m) for m in range(1, n + 1)) for n in vocabulary) * ROW_BYTES


@pytest.mark.parametrize("vocabulary", [[50, 200, 30], [10_000], [3, 100_000, 7, 1]])
@pytest.mark.parametrize("budget_fraction", [0.02, 0.1, 0.5, 0.99])
@pytest.mark.parametrize("cls", [HashEmbeddingCollection, QREmbeddingCollection])
def test_budget_bytes_is_respected_and_used(cls, vocabulary, budget_fraction):
    features = {f"f{i}": n for i, n in enumerate(vocabulary)}
    budget = int(budget_lib.full_table_bytes(vocabulary, D) * budget_fraction)
    minimum = _minimum_bytes(cls, vocabulary)
    if budget < minimum:  # refused exactly below the minimum, naming it
        with pytest.raises(budget_lib.BudgetTooSmallError, match=f"at least {minimum:,} bytes"):
            cls(features, D, budget_bytes=budget)
        return
    layer = cls(features, D, budget_bytes=budget)
    assert layer.budget_bytes == budget
    assert layer.memory_bytes() == _variable_bytes(layer)
    # Rounding to whole rows loses less than one row per feature (and one
    # overall); a feature capped at a full table leaves less than its vocabulary.
    rows = [sum(counts) for counts in zip(*layer.table_rows.values())]
    cap = 1 if cls is QREmbeddingCollection else 0
    capped = sum(n for n, r in zip(vocabulary, rows) if r == n + cap)
    lost_rows = len(vocabulary) + 1 + capped
    assert budget - lost_rows * ROW_BYTES < layer.memory_bytes() <= budget


@pytest.mark.parametrize("ratio", [1, 2, 4, 5])
def test_compression_ratio_budget(ratio):
    vocabulary = [50, 200, 30]
    features = {f"f{i}": n for i, n in enumerate(vocabulary)}
    full = budget_lib.full_table_bytes(vocabulary, D)
    layer = QREmbeddingCollection(features, D, compression_ratio=ratio)
    assert layer.budget_bytes == full // ratio
    assert _variable_bytes(layer) == layer.memory_bytes() <= layer.budget_bytes
    assert FullEmbeddingCollection(features, D).memory_bytes() == full


@pytest.mark.parametrize(
    "size,share",
    [
        (10_000, 200),
        (10_000, 201),
        (10_000, 500),
        (10_000, 5001),
        (10_000, 10_001),
        (1, 2),
        (2, 3),
        (7, 8),
        (1_000_003, 2_001),
        (1_000_003, 500_002),
    ],
)
def test_qr_sizing(size, share):
    layer = QREmbeddingCollection({"f": size}, D, budget_bytes=share * ROW_BYTES)
    m, q = layer.table_rows["remainder"][0], layer.table_rows["quotient"][0]
    assert m + q == min(share, size + 1)  # the whole share, but never beyond a full table
    assert m * q >= size  # the hash range covers the vocabulary
    # m is the smallest remainder table that fits.
    assert m == 1 or (m - 1) + math.ceil(size / (m - 1)) > share


@pytest.mark.parametrize(
    "make,minimum",
    [
        (lambda f, b: FullEmbeddingCollection(f, D, budget_bytes=b), (50 + 200) * ROW_BYTES),
        (lambda f, b: HashEmbeddingCollection(f, D, budget_bytes=b), 2 * ROW_BYTES),
        # ceil(2 sqrt(50)) = 15, ceil(2 sqrt(200)) = 29
        (lambda f, b: QREmbeddingCollection(f, D, budget_bytes=b), (15 + 29) * ROW_BYTES),
    ],
    ids=["full", "hash", "qr"],
)
def test_too_small_budget_names_the_minimum(make, minimum):
    features = {"a": 50, "b": 200}
    make(features, minimum)  # exactly the minimum fits
    with pytest.raises(ValueError, match=f"at least {minimum:,} bytes"):
        make(features, minimum - 1)


def test_full_rejects_compression_and_budget_arguments_are_exclusive():
    with pytest.raises(ValueError, match="at least 4,000 bytes"):
        FullEmbeddingCollection({"a": 250}, D, compression_ratio=2)
    with pytest.raises(ValueError, match="exactly one"):
        HashEmbeddingCollection({"a": 250}, D, compression_ratio=2, budget_bytes=100)
    with pytest.raises(ValueError, match="operation"):
        QREmbeddingCollection({"a": 250}, D, compression_ratio=2, operation="concat")


# -- gradients ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(MAKERS))
def test_gradient_is_indexed_slices_over_rows_read(name):
    layer = MAKERS[name](FEATURES)
    _randomize(layer)
    ids = tf.ragged.constant([[1, 2**50], [], [7, 7, -3]], tf.int64)
    with tf.GradientTape() as tape:
        out = layer({"a": ids, "b": ids[:, :1], "c": ids.to_sparse()})
        loss = sum(tf.reduce_sum(v) for v in out.values())
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(grads) == len(layer.table_rows)
    for table, grad in zip(layer.trainable_variables, grads):
        assert isinstance(grad, tf.IndexedSlices), type(grad)
        kind = table.name.split("/")[-1].split(":")[0]
        touched = set(grad.indices.numpy().tolist())
        dense = tf.convert_to_tensor(grad).numpy()
        assert set(np.flatnonzero(np.abs(dense).sum(1))) == touched
        # The rows read, derived independently of the layer's lookup.
        expected = set()
        for index, feature_ids in enumerate([[1, 2**50, 7, 7, -3], [1, 7], [1, 2**50, 7, 7, -3]]):
            expected.update(_documented_rows(layer, index, feature_ids)[kind].tolist())
        assert touched == expected


# -- serialisation -----------------------------------------------------------


@pytest.mark.parametrize("name", list(MAKERS))
def test_config_round_trip(name):
    layer = MAKERS[name]([dict(f, combiner="mean") for f in FEATURES])
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert clone.table_rows == layer.table_rows
    assert clone.budget_bytes == layer.budget_bytes
    # Also through the Keras registry, as a model's config would be.
    clone = tf_keras.layers.deserialize(tf_keras.layers.serialize(layer))
    assert type(clone) is type(layer) and clone.get_config() == config


@pytest.mark.parametrize("fmt", ["tf", "h5"])
@pytest.mark.parametrize("name", list(MAKERS))
def test_save_and_load_weights(name, fmt, tmp_path):
    def model_of(layer):
        inputs = {
            f["name"]: tf_keras.Input(shape=(2,), dtype=tf.int64, name=f["name"]) for f in FEATURES
        }
        return tf_keras.Model(inputs, layer(inputs))

    layer = MAKERS[name](FEATURES)
    _randomize(layer, seed=1)
    path = str(tmp_path / ("weights.h5" if fmt == "h5" else "weights"))
    model_of(layer).save_weights(path)
    clone = type(layer).from_config(layer.get_config())
    model_of(clone).load_weights(path)
    batch = {f["name"]: tf.constant([[1, 2**33], [5, 5]], tf.int64) for f in FEATURES}
    expected, actual = layer(batch), clone(batch)
    for feature in FEATURES:
        np.testing.assert_array_equal(actual[feature["name"]], expected[feature["name"]])
