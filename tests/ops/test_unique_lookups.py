"""Unique lookups: the collection routes, reads and updates each distinct (key, feature) once.

The oracle is `PerOccurrenceCollection`, the per-occurrence path the layer had
before: every occurrence queried, gathered (one gradient row each) and inserted
into the sketch with its own normalised importance. Unique lookups must give
the same outputs, sketch state and trained weights, up to float rounding (the
importance is summed before it is normalised, and gradients per row before
the optimizer sees them).
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cafe_tf import hashing
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection, FeatureConfig
from cafe_tf.layers import inputs as inputs_lib
from cafe_tf.layers.cafe_embedding import NORMALISATION_EPS, _sparse_read
from cafe_tf.sketch import LEVEL_MEDIUM


class PerOccurrenceCollection(CafeEmbeddingCollection):
    """The per-occurrence lookup path (test oracle): no deduplication anywhere."""

    def call(self, inputs, weights=None, training=None):
        weights = weights or {}
        flats = [
            inputs_lib.flatten(f.name, inputs[f.name], weights.get(f.name)) for f in self.features
        ]
        keys = tf.concat([hashing.field_keys(flat.ids, i) for i, flat in enumerate(flats)], 0)
        feature_index = tf.concat(
            [tf.fill(tf.shape(flat.ids), i) for i, flat in enumerate(flats)], 0
        )
        hot_rows, levels = self.sketch.query(keys, pure_tf=self.pure_tf_lookups)
        hashed, medium = self._hashed_indices(hashing.fingerprint(keys), feature_index)
        n = tf.shape(hot_rows)[0]
        parts = tf.where(hot_rows >= 0, 0, tf.where(levels == LEVEL_MEDIUM, 1, 2))
        positions = tf.dynamic_partition(tf.range(n), parts, 3)
        hot = _sparse_read(self.hot_table, tf.gather(hot_rows, positions[0]))
        medium_vectors = _sparse_read(self.hashed_tables, tf.gather(hashed, positions[1]))
        if self.medium_tables is not None:
            medium_vectors += _sparse_read(self.medium_tables, tf.gather(medium, positions[1]))
        cold = _sparse_read(self.hashed_tables, tf.gather(hashed, positions[2]))
        vectors = tf.reshape(
            tf.dynamic_stitch(positions, [hot, medium_vectors, cold]),
            [n, self.config.embedding_dim],
        )
        if training:
            id_weights = tf.concat(
                [
                    tf.ones_like(flat.ids, tf.float32)
                    if flat.weights is None
                    else tf.cast(flat.weights, tf.float32)
                    for flat in flats
                ],
                0,
            )

            @tf.custom_gradient
            def tap(x):
                def backward(dy):
                    self._insert_per_occurrence(keys, feature_index, id_weights, dy)
                    return tf.identity(dy)

                return tf.identity(x), backward

            vectors = tap(vectors)
        per_feature = tf.split(vectors, [tf.size(flat.ids) for flat in flats], 0)
        return {
            f.name: inputs_lib.pool(v, flat, f.combiner)
            for f, v, flat in zip(self.features, per_feature, flats)
        }

    def _insert_per_occurrence(self, keys, feature_index, id_weights, gradients):
        if self.config.importance == "gradient":
            values = tf.norm(gradients, axis=1)
            count = len(self.features)
            totals = tf.math.unsorted_segment_sum(values, feature_index, count)
            occurrences = tf.math.unsorted_segment_sum(tf.ones_like(values), feature_index, count)
            values = (
                values
                * tf.gather(occurrences, feature_index)
                / (tf.gather(totals, feature_index) + NORMALISATION_EPS)
            )
        else:
            values = tf.abs(id_weights)
        return self.sketch.insert(keys, values, feature_index)


FEATURES = [
    FeatureConfig("user", 3000),
    FeatureConfig("item", 800, "mean"),
    FeatureConfig("tags", 400, "sqrtn"),
]


def _batches(seed, steps=6, batch=96):
    """Zipf-skewed ids: dense [B], dense [B, 2] and ragged weighted [B, None] features."""
    rng = np.random.default_rng(seed)
    zipf = lambda size, vocab: np.minimum(rng.zipf(1.2, size), vocab) - 1  # noqa: E731
    out = []
    for _ in range(steps):
        lengths = rng.integers(0, 4, batch)
        tags = tf.RaggedTensor.from_row_lengths(zipf(lengths.sum(), 400), lengths)
        tag_weights = tf.RaggedTensor.from_row_lengths(
            rng.uniform(0.2, 2.0, lengths.sum()).astype(np.float32), lengths
        )
        out.append(
            (
                {
                    "user": tf.constant(zipf(batch, 3000)),
                    "item": tf.constant(zipf(2 * batch, 800).reshape(batch, 2)),
                    "tags": tags,
                },
                {"tags": tag_weights},
            )
        )
    return out


def _train(layer_class, config, batches, pure_tf=False):
    layer = layer_class(FEATURES, config, name="cafe")
    layer.build(None)
    layer.pure_tf_lookups = pure_tf
    rng = np.random.default_rng(0)
    for variable in layer.trainable_weights:  # the same start for both paths
        variable.assign(rng.normal(0, 0.1, variable.shape).astype(np.float32))
    optimizer = tf_keras.optimizers.Adagrad(0.1)
    targets = {
        f.name: tf.constant(np.linspace(-1, 1, config.embedding_dim), tf.float32) for f in FEATURES
    }

    @tf.function
    def step(ids, weights):
        with tf.GradientTape() as tape:
            out = layer(ids, weights, training=True)
            loss = tf.add_n([tf.reduce_sum(tf.square(out[k] - targets[k])) for k in out])
        grads = tape.gradient(loss, layer.trainable_weights)
        optimizer.apply_gradients(zip(grads, layer.trainable_weights))
        return out, grads

    outputs, gradients = [], []
    for ids, weights in batches:
        out, grads = step(ids, weights)
        outputs.append({k: v.numpy() for k, v in out.items()})
        gradients.append(grads)
        layer.migrate(optimizer)
    layer.step_ops = {
        op.type for op in step.get_concrete_function(*batches[0]).graph.get_operations()
    }
    return layer, outputs, gradients


CONFIGS = [
    pytest.param(dict(importance="gradient"), id="gradient"),
    pytest.param(dict(importance="frequency"), id="frequency"),
    pytest.param(
        dict(importance="gradient", multi_level=True, medium_share=0.3, medium_threshold_ratio=0.3),
        id="gradient-multi_level",
    ),
]


@pytest.mark.parametrize(
    "pure_tf", [pytest.param(False, id="op"), pytest.param(True, id="pure_tf")]
)
@pytest.mark.parametrize("overrides", CONFIGS)
def test_unique_lookups_equal_the_per_occurrence_path(overrides, pure_tf):
    config = CafeConfig(embedding_dim=4, compression_ratio=20, threshold=4.0, **overrides)
    batches = _batches(seed=3)
    unique, unique_out, unique_grads = _train(CafeEmbeddingCollection, config, batches, pure_tf)
    oracle, oracle_out, _ = _train(PerOccurrenceCollection, config, batches)
    for step, (a, b) in enumerate(zip(unique_out, oracle_out)):
        for name in a:
            np.testing.assert_allclose(
                a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=f"output {name} at step {step}"
            )
    state, expected = unique.sketch.read_state(), oracle.sketch.read_state()
    for name in ("fingerprints", "entries", "batches"):
        np.testing.assert_array_equal(getattr(state, name), getattr(expected, name), name)
    # Erosion subtracts: a small score carries the rounding of the large ones it came from.
    np.testing.assert_allclose(
        state.scores,
        expected.scores,
        rtol=1e-5,
        atol=1e-5 * float(np.max(expected.scores)),
        err_msg="scores",
    )
    # mass keeps what is left of a partial decay period: the rounding of the whole
    # mass inserted, relative to the period, not to what is left.
    np.testing.assert_allclose(
        state.mass,
        expected.mass,
        rtol=1e-5,
        atol=1e-5 * unique.sketch_config.decay_mass_limit,
        err_msg="mass",
    )
    assert int(unique.promotions.numpy()) == int(oracle.promotions.numpy()) > 0
    for a, b in zip(unique.trainable_weights, oracle.trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
    # With gradient importance, one op reads the occurrences' gradient for both sums.
    fused_ops = {"CafeExpandGradient", "CafeSegmentRowSums", "CafePairImportance"}
    expected_ops = (
        set()
        if pure_tf
        else {"CafeExpandGradient"} | ({"CafeSegmentRowSums"} if config.multi_level else set())
        if config.importance == "gradient"
        else {"CafeSegmentRowSums", "CafePairImportance"}
    )
    assert unique.step_ops & fused_ops == expected_ops
    # Each table's gradient lists a row once.
    for grads in unique_grads:
        for grad, variable in zip(grads, unique.trainable_weights):
            assert isinstance(grad, tf.IndexedSlices), variable.name
            rows = grad.indices.numpy()
            assert len(np.unique(rows)) == len(rows), f"{variable.name}: a row twice"


def test_keys_of_two_features_that_collide_stay_two_pairs():
    """An id of feature 1 whose sketch key equals an id's key of feature 0 keeps its own
    hashed row (pairs are (key, feature), not keys)."""
    layer = CafeEmbeddingCollection(
        {"a": 1000, "b": 1000},
        CafeConfig(embedding_dim=4, compression_ratio=10, threshold=1e9),
        name="cafe",
    )
    layer.build(None)
    key = hashing.field_keys(tf.constant([12345], tf.int64), 0)[0]
    b_id = tf.bitwise.bitwise_xor(key, tf.constant(hashing.field_salt(1), tf.int64))
    ids = {"a": tf.constant([12345, 12345]), "b": tf.reshape(tf.stack([b_id, b_id]), [2])}
    oracle = PerOccurrenceCollection({"a": 1000, "b": 1000}, layer.config, name="oracle")
    oracle.build(None)
    oracle.set_weights(layer.get_weights())
    for pure_tf in (False, True):
        layer.pure_tf_lookups = pure_tf
        route = layer.route(tf.stack([key, key, key]), tf.constant([0, 1, 0]))
        np.testing.assert_array_equal(route.feature_index, [0, 1])
        np.testing.assert_array_equal(route.inverse, [0, 1, 0])
        out, expected = layer(ids), oracle(ids)
        for name in ids:
            np.testing.assert_array_equal(out[name], expected[name])


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param({"a": np.zeros([0], np.int64), "b": np.zeros([0], np.int64)}, id="empty"),
        pytest.param({"a": np.full([64], 7), "b": np.full([64], 7)}, id="all-duplicates"),
        pytest.param({"a": np.arange(50), "b": np.zeros([0], np.int64)}, id="one-feature-only"),
    ],
)
def test_bad_batches_train(ids):
    layer = CafeEmbeddingCollection(
        {"a": 100, "b": 100},
        CafeConfig(embedding_dim=4, compression_ratio=2, threshold=2.0),
        name="cafe",
    )
    oracle = PerOccurrenceCollection({"a": 100, "b": 100}, layer.config, name="oracle")
    layer.build(None)
    oracle.build(None)
    oracle.set_weights(layer.get_weights())
    for model in (layer, oracle):
        with tf.GradientTape() as tape:
            loss = tf.add_n(
                [
                    tf.reduce_sum(tf.square(v - 1.0))
                    for v in model(
                        {k: tf.constant(v, tf.int64) for k, v in ids.items()}, training=True
                    ).values()
                ]
            )
        tape.gradient(loss, model.trainable_weights)
    # The layer normalises in float64, the oracle in float32; an eroded (small) score
    # carries the rounding of the larger ones it came from.
    expected = oracle.sketch.scores.numpy()
    np.testing.assert_allclose(
        layer.sketch.scores.numpy(),
        expected,
        rtol=1e-5,
        atol=1e-5 * float(np.max(expected, initial=0.0)),
    )
    np.testing.assert_array_equal(layer.sketch.slots.numpy(), oracle.sketch.slots.numpy())
    assert int(layer.lookups.numpy()) == sum(len(v) for v in ids.values())


def test_non_finite_importance_is_refused_with_the_sketch_unchanged():
    layer = CafeEmbeddingCollection(
        {"a": 100}, CafeConfig(embedding_dim=4, compression_ratio=2, threshold=2.0), name="cafe"
    )
    layer({"a": tf.constant([1, 2])}, training=False)
    before = [v.numpy() for v in layer.sketch.state_variables]
    with pytest.raises(tf.errors.InvalidArgumentError, match="importance must be finite"):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer({"a": tf.constant([1, 2, 1])}, training=True)["a"])
            loss = loss * float("inf")
        tape.gradient(loss, layer.trainable_weights)
    for a, b in zip(before, layer.sketch.state_variables):
        np.testing.assert_array_equal(a, b.numpy())
