"""CafeEmbeddingCollection / CafeEmbedding: lookups, importance, migration, errors, config."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from cafe_tf import hashing
from cafe_tf.callbacks import CafeMigration
from cafe_tf.layers import (
    CafeConfig,
    CafeEmbedding,
    CafeEmbeddingCollection,
    FeatureConfig,
    optimizer_slots,
)
from cafe_tf.layers.cafe_embedding import HASHED_SEED, MEDIUM_SEED
from cafe_tf.sketch.reference import slot_tags


def _layer(features=None, **config):
    config.setdefault("embedding_dim", 4)
    config.setdefault("compression_ratio", 10)
    config.setdefault("threshold", 3.0)
    config.setdefault("importance", "frequency")
    # Hand-worked promotions at k; filling free rows below k has its own tests.
    config.setdefault("fill_free_rows", False)
    layer = CafeEmbeddingCollection(features or {"a": 1000, "b": 200}, CafeConfig(**config))
    layer.build(None)
    return layer


def _hashed_row_by_hand(layer, feature_index, id_value, medium=False):
    """Row of an id in the packed table, from the documented formulas in plain Python: the
    row of the key's fingerprint (the high 32 bits of splitmix64(key))."""
    sizes = layer.layout.medium_rows if medium else layer.layout.hashed_rows
    seed = MEDIUM_SEED if medium else HASHED_SEED
    key = hashing.as_signed64(id_value ^ hashing.field_salt(feature_index))
    fingerprint = hashing.mix64_int(key) >> 32
    salted = fingerprint ^ hashing.mix64_int(~seed)
    # Per-feature tables are packed back to back; a shared table starts every feature at 0.
    offset = 0 if layer.layout.shared_hashed_tables else sum(sizes[:feature_index])
    return offset + hashing.mix64_int(salted) % sizes[feature_index]


def _max_hot_row(layer):
    """The largest hot row in use (-1: none), from the slots' entries."""
    entries = layer.sketch.read_state().entries.numpy()
    return int((entries >> layer.sketch_config.tag_bits).max())


@pytest.mark.parametrize("share_hashed_tables", [False, True])
def test_output_matches_hand_computed_rows_then_hot_row(share_hashed_tables):
    layer = _layer(share_hashed_tables=share_hashed_tables)
    assert layer.layout.shared_hashed_tables == share_hashed_tables
    table = np.arange(np.prod(layer.hashed_tables.shape), dtype=np.float32).reshape(
        layer.hashed_tables.shape
    )
    layer.hashed_tables.assign(table)
    ids = {"a": tf.constant([5, 77], tf.int64), "b": tf.constant([5, 5], tf.int64)}
    out = layer(ids)
    for f_index, name in enumerate(["a", "b"]):
        expected = [table[_hashed_row_by_hand(layer, f_index, int(i))] for i in ids[name]]
        np.testing.assert_array_equal(out[name].numpy(), expected)
    # id 5 of feature b occurs 4 times over these calls: promote it (k = 3).
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(ids, training=True)["b"])
        tape.gradient(loss, layer.trainable_weights)
    result = layer.migrate()
    assert int(result["promotions"]) == 1
    hot_row = _max_hot_row(layer)
    layer.hot_table.assign(tf.ones_like(layer.hot_table) * 42.0)
    out = layer(ids)
    np.testing.assert_array_equal(out["b"].numpy(), np.full([2, 4], 42.0))
    assert hot_row == 0
    np.testing.assert_array_equal(
        out["a"].numpy()[0], table[_hashed_row_by_hand(layer, 0, 5)]
    )  # a:5 is another key


def test_free_rows_go_to_every_tracked_feature_strongest_first():
    """With the defaults, a migration fills free hot rows with the features the sketch
    tracks, k or not, by score; each starts as the vector it was reading."""
    layer = _layer(fill_free_rows=True)
    sketch = layer.sketch_config
    assert sketch.fill_free_rows and sketch.demote_threshold == 0.0
    assert sketch.yield_threshold == sketch.threshold / 2
    ids = {"a": tf.constant([5, 5, 5, 9], tf.int64), "b": tf.constant([7, 7, 3, 3], tf.int64)}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids, training=True)["b"])
    tape.gradient(loss, layer.trainable_weights)
    before = layer(ids)
    result = layer.migrate()
    # a:5 (3 lookups: k) takes row 0, then b:7 and b:3 (2 each), then a:9 (1).
    assert int(result["promotions"]) == 4 and int(result["hot_rows_used"]) == 4
    keys = tf.concat([hashing.field_keys(ids[name], f) for f, name in enumerate("ab")], 0)
    rows = layer.sketch.query(keys)[0].numpy()
    assert rows[0] == 0 and rows[3] == 3  # a:5 first, a:9 last
    assert sorted(set(rows.tolist())) == [0, 1, 2, 3]
    after = layer(ids)
    for name in ids:  # every feature reads its new hot row, which holds the same vector
        np.testing.assert_array_equal(after[name].numpy(), before[name].numpy())


def _per_id_vectors(layer, ids):
    return layer({"a": tf.constant(ids, tf.int64)})["a"].numpy()


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("kind", ["dense", "ragged", "sparse"])
@pytest.mark.parametrize("weighted", [False, True])
def test_input_kinds_and_combiners(kind, combiner, weighted):
    layer = CafeEmbeddingCollection(
        [FeatureConfig("a", 1000, combiner)], CafeConfig(embedding_dim=4, compression_ratio=10)
    )
    rows = [[1, 2, 3], [4], [5, 5]] if kind != "dense" else [[1, 2], [3, 3], [9, 4]]
    weights = [[0.5 + i + j for j in range(len(r))] for i, r in enumerate(rows)]
    if kind == "dense":
        ids, w = tf.constant(rows, tf.int64), tf.constant(weights)
    elif kind == "ragged":
        ids, w = tf.ragged.constant(rows, tf.int64), tf.ragged.constant(weights)
    else:
        ids = tf.ragged.constant(rows, tf.int64).to_sparse()
        w = tf.ragged.constant(weights).to_sparse()
    out = layer({"a": ids}, weights={"a": w} if weighted else None)["a"].numpy()
    for r, row_ids in enumerate(rows):
        vectors = _per_id_vectors(layer, row_ids)
        wr = np.asarray(weights[r] if weighted else [1.0] * len(row_ids), np.float32)
        expected = (vectors * wr[:, None]).sum(0)
        if combiner == "mean":
            expected /= wr.sum()
        elif combiner == "sqrtn":
            expected /= np.sqrt((wr**2).sum())
        np.testing.assert_allclose(out[r], expected, rtol=1e-6, atol=1e-7)


def test_string_ids_and_int32_ids():
    layer = CafeEmbeddingCollection(
        {"a": 100_000}, CafeConfig(embedding_dim=4, compression_ratio=10)
    )
    out = layer({"a": tf.constant(["x", "y", "x"])})["a"].numpy()
    np.testing.assert_array_equal(out[0], out[2])
    assert not np.array_equal(out[0], out[1])
    np.testing.assert_array_equal(
        layer({"a": tf.constant([3, 4], tf.int32)})["a"].numpy(), _per_id_vectors(layer, [3, 4])
    )


def test_empty_rows_give_zeros():
    layer = CafeEmbeddingCollection(
        [FeatureConfig("a", 1000, "mean")], CafeConfig(embedding_dim=4, compression_ratio=10)
    )
    out = layer({"a": tf.ragged.constant([[1], []], tf.int64)})["a"].numpy()
    np.testing.assert_array_equal(out[1], np.zeros(4))


def test_gradients_reach_only_rows_read():
    layer = _layer(importance="gradient")
    ids = {"a": tf.constant([3, 9, 3], tf.int64), "b": tf.constant([1, 1, 2], tf.int64)}
    with tf.GradientTape() as tape:
        out = layer(ids, training=True)
        loss = tf.reduce_sum(out["a"] ** 2) + tf.reduce_sum(out["b"])
    grads = dict(
        zip([v.name for v in layer.trainable_weights], tape.gradient(loss, layer.trainable_weights))
    )
    hashed_grad = grads[layer.hashed_tables.name]
    assert isinstance(hashed_grad, tf.IndexedSlices)
    read = {
        _hashed_row_by_hand(layer, f, i)
        for f, name in enumerate("ab")
        for i in ids[name].numpy().tolist()
    }
    assert set(hashed_grad.indices.numpy().tolist()) == read
    hot_grad = grads[layer.hot_table.name]
    assert isinstance(hot_grad, tf.IndexedSlices) and hot_grad.indices.shape[0] == 0

    # Adagrad: only the rows read change, in the table and in the accumulator.
    optimizer = tf_keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.5)
    before = layer.hashed_tables.numpy()
    optimizer.apply_gradients(zip(grads.values(), layer.trainable_weights))
    changed = np.flatnonzero(np.any(layer.hashed_tables.numpy() != before, axis=1))
    assert set(changed.tolist()) == read
    (accumulator,) = [v for v in optimizer.variables if v.shape == layer.hashed_tables.shape]
    touched = np.flatnonzero(np.any(accumulator.numpy() != 0.5, axis=1))
    assert set(touched.tolist()) == read


def _train_step(layer, ids, loss_fn):
    with tf.GradientTape() as tape:
        loss = loss_fn(layer(ids, training=True))
    return tape.gradient(loss, layer.trainable_weights)


@pytest.mark.parametrize(
    "replacement, second_sighting", [("inherit", False), ("inherit", True), ("erode", True)]
)
def test_replacement_and_second_sighting_reach_the_layers_sketch(replacement, second_sighting):
    """Through the layer's own inserts into a saturated sketch: SpaceSaving's takeovers
    inherit the scores they replace, so the scores add up to every occurrence inserted,
    erosion loses mass; and only second_sighting marks those takeovers pending (erosion by
    importance 1 empties a slot of score 1 rather than taking it over)."""
    layer = _layer(
        {"a": 5000},
        budget_bytes=2000,
        compression_ratio=None,
        threshold=1e6,
        replacement=replacement,
        second_sighting=second_sighting,
    )
    assert layer.sketch_config.replacement == replacement
    assert layer.sketch_config.second_sighting == second_sighting
    slots = layer.sketch_config.num_buckets * layer.sketch_config.slots_per_bucket
    rng = np.random.default_rng(0)
    occurrences = 0
    for _ in range(5):  # each id once per step, weight 1: importance 1 per occurrence
        ids = tf.constant(rng.choice(10**9, size=4 * slots, replace=False), tf.int64)
        _train_step(layer, {"a": ids}, lambda out: tf.reduce_sum(out["a"]))
        occurrences += int(ids.shape[0])
    state = layer.sketch.read_state()
    total = float(np.sum(state.scores.numpy(), dtype=np.float64))
    entries = state.entries.numpy()
    pending = np.count_nonzero((entries < 0) & ((-1 - entries) % 2 == 1))
    if replacement == "inherit":
        assert np.all(state.scores.numpy() > 0)  # saturated: every slot taken
        assert total == occurrences
        assert (pending > 0) == second_sighting
    else:
        assert total < occurrences / 10


def test_gradient_importance_is_normalised_per_feature():
    layer = _layer(importance="gradient", threshold=1000.0)
    ids = {"a": tf.constant([1, 2, 3], tf.int64), "b": tf.constant([7, 7, 8], tf.int64)}
    scale = tf.constant([[1.0], [2.0], [5.0]])
    _train_step(layer, ids, lambda out: tf.reduce_sum(out["a"] * scale) + tf.reduce_sum(out["b"]))
    scores = _scores_by_key(layer)
    # feature a: gradient norms 2, 4, 10 (D=4, sqrt(4) * scale) -> n * g / sum g
    for id_value, expected in zip([1, 2, 3], 3 * np.array([1.0, 2.0, 5.0]) / 8.0):
        assert scores[("a", id_value)] == pytest.approx(expected, rel=1e-6)
    # feature b: equal norms; 7 occurs twice
    assert scores[("b", 7)] == pytest.approx(2.0, rel=1e-6)
    assert scores[("b", 8)] == pytest.approx(1.0, rel=1e-6)


def test_all_zero_gradient_batch_inserts_nothing():
    layer = _layer(importance="gradient")
    _train_step(
        layer,
        {"a": tf.constant([1, 2], tf.int64), "b": tf.constant([3, 4], tf.int64)},
        lambda out: 0.0 * tf.reduce_sum(out["a"]) + 0.0 * tf.reduce_sum(out["b"]),
    )
    assert np.all(layer.sketch.scores.numpy() == 0)
    assert int(layer.sketch.batches.numpy()) == 1 and float(layer.sketch.mass.numpy()) == 0.0


def test_sketch_is_not_updated_outside_training():
    layer = _layer()
    ids = {"a": tf.constant([1, 1, 1, 1], tf.int64), "b": tf.constant([2, 2, 2, 2], tf.int64)}
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids, training=False)["a"])
    tape.gradient(loss, layer.trainable_weights)
    assert np.all(layer.sketch.scores.numpy() == 0)


class _ScoresById(dict):
    """{(feature index, fingerprint): score}, looked up by (feature name, id)."""

    def __init__(self, layer, scores):
        super().__init__(scores)
        self.names = [f.name for f in layer.features]

    def _key(self, name_and_id):
        name, id_value = name_and_id
        index = self.names.index(name)
        key = hashing.field_keys(tf.constant([id_value], tf.int64), index)
        return index, int(hashing.fingerprint(key).numpy()[0])

    def __getitem__(self, name_and_id):
        return super().__getitem__(self._key(name_and_id))

    def get(self, name_and_id, default=None):
        return super().get(self._key(name_and_id), default)


def _scores_by_key(layer):
    """Scores of the tracked keys, by (feature name, id): the sketch keeps each key's
    fingerprint and tag (feature)."""
    state = layer.sketch.read_state()
    fingerprints, scores = state.fingerprints.numpy(), state.scores.numpy()
    tags = slot_tags(state, layer.sketch_config.tag_bits).numpy()
    return _ScoresById(
        layer, {(int(t), int(f)): float(s) for f, s, t in zip(fingerprints, scores, tags) if s > 0}
    )


OPTIMIZERS = {  # name: (optimizer, fresh slot value, slots per variable)
    "adam": (lambda: tf_keras.optimizers.Adam(0.01), 0.0, 2),
    "adam_ema": (lambda: tf_keras.optimizers.Adam(0.01, use_ema=True), 0.0, 2),
    "adagrad": (lambda: tf_keras.optimizers.Adagrad(0.01, initial_accumulator_value=0.25), 0.25, 1),
    "legacy_adam": (lambda: tf_keras.optimizers.legacy.Adam(0.01), 0.0, 2),
    "legacy_adagrad": (
        lambda: tf_keras.optimizers.legacy.Adagrad(0.01, initial_accumulator_value=0.25),
        0.25,
        1,
    ),
}


def _hot_table_optimizer_variables(optimizer, layer):
    """(slots, moving averages) of the hot table, found by shape and name."""
    variables = optimizer.variables() if callable(optimizer.variables) else optimizer.variables
    mine = [v for v in variables if v.shape == layer.hot_table.shape]
    averages = [v for v in mine if "average" in v.name]
    return [v for v in mine if "average" not in v.name], averages


@pytest.mark.parametrize(
    "multi_level, share_hashed_tables",
    [(False, False), (True, False), (False, True), (True, True)],
)
@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
def test_migration_copies_the_row_read_and_resets_optimizer_slots(
    multi_level, share_hashed_tables, optimizer_name
):
    make_optimizer, initial, slots_per_variable = OPTIMIZERS[optimizer_name]
    features = {"a": 1000, "b": 500, "c": 300}
    layer = _layer(
        features,
        multi_level=multi_level,
        medium_share=0.3,
        threshold=3.0,
        share_hashed_tables=share_hashed_tables,
    )
    optimizer = make_optimizer()
    ids = {
        "a": tf.constant([11, 12, 13, 14], tf.int64),
        "b": tf.constant([21, 22, 23, 24], tf.int64),
        "c": tf.constant([31, 31, 31, 32], tf.int64),
    }
    before = layer({k: v[:1] for k, v in ids.items()} | {"c": tf.constant([31], tf.int64)})["c"]
    # Train once so the optimizer has slots, and every hot-table slot row is non-initial.
    grads = _train_step(layer, ids, lambda out: sum(tf.reduce_sum(v) for v in out.values()))
    optimizer.apply_gradients(zip(grads, layer.trainable_weights))
    slots, averages = _hot_table_optimizer_variables(optimizer, layer)
    assert len(slots) == slots_per_variable
    assert len(averages) == (1 if optimizer_name.endswith("ema") else 0)
    for variable in slots + averages:
        variable.assign(tf.fill(variable.shape, 7.0))
    expected = layer({"a": ids["a"][:1], "b": ids["b"][:1], "c": tf.constant([31], tf.int64)})["c"]
    assert not np.array_equal(expected.numpy(), before.numpy())  # the optimizer moved it
    result = layer.migrate(optimizer)
    assert int(result["promotions"]) == 1  # c:31 (score 3) in the third feature
    row = _max_hot_row(layer)
    # The hot row starts as what feature c, id 31 was reading (its own field's rows).
    np.testing.assert_array_equal(layer.hot_table.numpy()[row], expected.numpy()[0])
    after = layer({"a": ids["a"][:1], "b": ids["b"][:1], "c": tf.constant([31], tf.int64)})["c"]
    np.testing.assert_array_equal(after.numpy(), expected.numpy())
    for variable, fresh in [(v, np.full(4, initial, np.float32)) for v in slots] + [
        (v, expected.numpy()[0]) for v in averages
    ]:
        value = variable.numpy()
        np.testing.assert_array_equal(value[row], fresh, err_msg=variable.name)
        others = np.delete(value, row, axis=0)
        assert np.all(others == 7.0), f"{variable.name}: rows of other hot rows were touched"


@pytest.mark.parametrize(
    "make_input, error, message",
    [
        (lambda: {"a": tf.constant([1.5]), "b": tf.constant([1])}, TypeError, "got float32"),
        (
            lambda: {"a": tf.zeros([2, 2, 2], tf.int64), "b": tf.constant([1, 2])},
            ValueError,
            "rank 3",
        ),
    ],
)
def test_bad_inputs(make_input, error, message):
    layer = _layer()
    with pytest.raises(error, match=message):
        layer(make_input())


def test_weights_not_matching_ids():
    layer = _layer()
    ids = {"a": tf.constant([[1, 2]], tf.int64), "b": tf.constant([[3, 4]], tf.int64)}
    with pytest.raises(ValueError, match="weights must have the shape of ids"):
        layer(ids, weights={"a": tf.constant([1.0, 2.0])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="weights must have the shape"):
        layer(ids, weights={"a": tf.constant([[1.0, 2.0, 3.0]])})
    ragged = {"a": tf.ragged.constant([[1, 2], [3]], tf.int64), "b": tf.constant([1, 2])}
    with pytest.raises(tf.errors.InvalidArgumentError, match="row lengths"):
        layer(ragged, weights={"a": tf.ragged.constant([[1.0], [2.0, 3.0]])})
    with pytest.raises(TypeError, match="weights must be a RaggedTensor"):
        layer(ragged, weights={"a": tf.constant([[1.0, 2.0], [3.0, 0.0]])})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # One hot row with its three slots (its own, two spare) and one hashed row per
        # feature need 280 bytes; with one shared hashed row, 216.
        (dict(embedding_dim=16, budget_bytes=215), "needs at least 216 bytes"),
        (
            dict(embedding_dim=16, budget_bytes=279, share_hashed_tables=False),
            "needs at least 280 bytes",
        ),
        (
            dict(embedding_dim=16, compression_ratio=10, share_hashed_tables=1),
            "share_hashed_tables",
        ),
        (dict(embedding_dim=16, compression_ratio=1e7), "too small"),
        (dict(embedding_dim=16), "exactly one"),
        (dict(embedding_dim=0, compression_ratio=10), "embedding_dim"),
        (dict(embedding_dim=8, compression_ratio=10, importance="loss"), "importance"),
    ],
)
def test_bad_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CafeEmbeddingCollection({"a": 1000, "b": 200}, CafeConfig(**kwargs))


@pytest.mark.parametrize("ratio", [2, 10, 100, 1000])
@pytest.mark.parametrize(
    "multi_level, share_hashed_tables",
    [(False, False), (True, False), (False, True), (True, True)],
)
def test_memory_within_budget(ratio, multi_level, share_hashed_tables):
    layer = _layer(
        {"a": 2_000_000, "b": 30_000, "c": 7},
        embedding_dim=16,
        compression_ratio=ratio,
        multi_level=multi_level,
        medium_share=0.3,
        share_hashed_tables=share_hashed_tables,
    )
    assert layer.hashed_tables.shape[0] == (
        layer.layout.hashed_rows[0] if share_hashed_tables else sum(layer.layout.hashed_rows)
    )
    held = layer.memory_bytes()
    assert held <= layer.budget_bytes
    assert held >= 0.97 * layer.budget_bytes
    assert held == layer.layout.bytes["total"]
    # Everything but embedding rows (sketch, counters), per hot row: at most 16 bytes.
    tables = {"hot_table", "hashed_tables", "medium_tables"}
    finding = sum(
        v.shape.num_elements() * v.dtype.size
        for v in layer.weights
        if v.name.split("/")[-1].split(":")[0] not in tables
    )
    assert finding == layer.layout.bytes["sketch"] + layer.layout.bytes["bookkeeping"]
    assert finding / layer.layout.hot_rows <= 16


def test_config_round_trip_and_weights_keep_the_sketch(tmp_path):
    layer = CafeEmbedding(
        5000,
        CafeConfig(
            embedding_dim=4,
            compression_ratio=5,
            threshold=2.0,
            importance="frequency",
            multi_level=True,
            medium_share=0.3,
        ),
        combiner="mean",
        name="cafe",
    )
    ids = tf.constant([[1, 2], [1, 1]], tf.int64)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids, training=True))
    tape.gradient(loss, layer.trainable_weights)
    layer.migrate()
    clone = CafeEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.layout == layer.layout

    def wrap(embedding):
        inputs = tf_keras.Input([2], dtype=tf.int64)
        return tf_keras.Model(inputs, embedding(inputs))

    wrap(layer).save_weights(str(tmp_path / "w"))
    wrap(clone).load_weights(str(tmp_path / "w"))
    assert len(layer.weights) == len(clone.weights) == 12
    for a, b in zip(layer.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    np.testing.assert_array_equal(clone(ids).numpy(), layer(ids).numpy())
    assert int(clone.sketch.hot_rows_used()) > 0  # a promotion was restored


class _TinyRanking(tfrs.models.Model):
    def __init__(self, embedding):
        super().__init__()
        self.embedding = embedding
        self.top = tf_keras.Sequential(
            [tf_keras.layers.Dense(8, activation="relu"), tf_keras.layers.Dense(1)]
        )
        self.task = tfrs.tasks.Ranking(
            loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf_keras.metrics.AUC(from_logits=True, name="auc")],
        )

    def call(self, features, training=False):
        embedded = self.embedding(features, training=training)
        return self.top(tf.concat([embedded[k] for k in sorted(embedded)], 1))

    def compute_loss(self, inputs, training=False):
        features, labels = inputs
        return self.task(labels=labels, predictions=self(features, training=training))


def _planted_data(seed=0, n=4096):
    """Ids 0..9 of feature 'u' are frequent and decide the label; the rest are noise."""
    rng = np.random.default_rng(seed)
    hot = rng.random(n) < 0.6
    u = np.where(hot, rng.integers(0, 10, n), rng.integers(1000, 10**9, n)).astype(np.int64)
    v = rng.integers(0, 10**9, n).astype(np.int64)
    label = np.where(hot, (u % 2 == 0), rng.random(n) < 0.3).astype(np.float32)[:, None]
    return {"u": u, "v": v}, label


def _planted_dataset(seed=0, n=4096):
    return tf.data.Dataset.from_tensor_slices(_planted_data(seed, n)).batch(128)


def _planted_model():
    """A seeded, compiled tiny TFRS ranking model over a 200x CAFE layer, and the layer."""
    tf_keras.utils.set_random_seed(0)
    layer = CafeEmbeddingCollection(
        {"u": 100_000, "v": 100_000},
        CafeConfig(embedding_dim=8, compression_ratio=200, threshold=5.0),
        name="cafe",
    )
    model = _TinyRanking(layer)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.05))
    return model, layer


def test_callback_migrates_with_the_models_optimizer_resetting_promoted_rows_slots():
    """CafeMigration hands the layer the model's optimizer: the promoted rows' slots are
    reset (to Adam's 0), every other row's kept."""
    model, layer = _planted_model()
    model.fit(_planted_dataset(n=256), verbose=0)  # importance recorded, nothing promoted yet
    assert int(layer.sketch.hot_rows_used()) == 0
    slots, _ = _hot_table_optimizer_variables(model.optimizer, layer)
    assert len(slots) == 2
    for variable in slots:
        variable.assign(tf.fill(variable.shape, 7.0))
    callback = CafeMigration(every_n_steps=1)
    callback.set_model(model)
    stats = callback.migrate_now()
    entries = layer.sketch.read_state().entries.numpy()
    promoted = sorted(set((entries[entries >= 0] >> layer.sketch_config.tag_bits).tolist()))
    assert stats["cafe_promotions"] == len(promoted) > 0
    assert stats["cafe_hot_occupancy"] == len(promoted) / layer.layout.hot_rows
    for variable in slots:
        value = variable.numpy()
        np.testing.assert_array_equal(value[promoted], 0.0, err_msg=variable.name)
        assert np.all(np.delete(value, promoted, axis=0) == 7.0), variable.name


def test_tfrs_model_fit_converges_and_promotes_planted_hot_ids():
    model, layer = _planted_model()
    history = model.fit(
        _planted_dataset(), epochs=3, verbose=0, callbacks=[CafeMigration(every_n_steps=1)]
    )
    scores = _scores_by_key(layer)
    rows, _ = layer.sketch.query(hashing.field_keys(tf.range(10, dtype=tf.int64), 0))
    state = (
        f"history {history.history}; planted rows {rows.numpy()}; planted scores "
        f"{[round(scores.get(('u', i), 0.0), 2) for i in range(10)]}"
    )
    assert history.history["auc"][-1] > 0.8, state
    assert history.history["cafe_epoch_promotions"][0] >= 10, state
    assert np.all(rows.numpy() >= 0), "planted hot ids were not promoted: " + state
    # Every lookup of a planted id is served by its hot row.
    planted_share = np.mean(_planted_data()[0]["u"] < 10) / 2  # two features
    assert history.history["cafe_hot_lookup_share"][-1] >= planted_share, state


def test_migration_callback_writes_tensorboard_points(tmp_path):
    """Points every `log_every_n_steps` batches, whatever the migration period, and
    once per epoch."""
    model, layer = _planted_model()
    model.fit(
        _planted_dataset(n=128 * 12),
        epochs=1,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=3, log_dir=str(tmp_path), log_every_n_steps=4)],
    )
    points = {}
    for path in tmp_path.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                points.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    assert sorted(points["cafe/cafe_hot_lookup_share"]) == [4, 8, 12]
    assert sorted(points["cafe/cafe_hot_occupancy"]) == [4, 8, 12]
    promotions = int(layer.promotions.numpy())
    assert promotions > 0
    assert points["cafe/epoch_cafe_epoch_promotions"] == {12: promotions}


def _counting_migrations(monkeypatch):
    """A variable that counts CafeEmbeddingCollection.migrate calls as they run (in a
    training step's graph too)."""
    count = tf.Variable(0, dtype=tf.int64, trainable=False)
    migrate = CafeEmbeddingCollection.migrate

    def counted(self, *args, **kwargs):
        count.assign_add(1)
        return migrate(self, *args, **kwargs)

    monkeypatch.setattr(CafeEmbeddingCollection, "migrate", counted)
    return count


@pytest.mark.parametrize("every_n_steps, steps_per_execution", [(1, 1), (3, 1), (3, 2)])
def test_training_step_migrates_every_n_updates_only_in_fits_given_the_callback(
    monkeypatch, every_n_steps, steps_per_execution
):
    """Migrations run in the training step after updates n, 2n, ... (counted by the
    optimizer, across fits and with several steps per execution), only in the fits
    the callback is passed to."""
    migrations = _counting_migrations(monkeypatch)
    model, layer = _planted_model()
    model.compile(optimizer=model.optimizer, steps_per_execution=steps_per_execution)
    callback = CafeMigration(every_n_steps=every_n_steps)
    model.fit(_planted_dataset(n=128 * 10), verbose=0, callbacks=[callback])
    assert int(migrations.numpy()) == 10 // every_n_steps
    model.fit(_planted_dataset(n=128 * 4), verbose=0)  # no callback: no migration
    assert int(migrations.numpy()) == 10 // every_n_steps
    model.fit(_planted_dataset(n=128 * 5), verbose=0, callbacks=[callback])
    assert int(migrations.numpy()) == 10 // every_n_steps + (19 // every_n_steps) - (
        14 // every_n_steps
    )
    assert int(model.optimizer.iterations.numpy()) == 19


def test_migrate_now_migrates_in_a_custom_training_loop():
    """`CafeMigration.migrate_now` promotes outside fit, copies the vector the key was
    reading into its hot row, resets the model optimizer's slots of that row only, and
    reports what it did."""
    layer = CafeEmbeddingCollection(
        {"a": 1000, "b": 200},
        CafeConfig(
            embedding_dim=4,
            compression_ratio=10,
            threshold=3.0,
            importance="frequency",
            fill_free_rows=False,
        ),
        name="cafe",
    )
    inputs = {n: tf_keras.Input([], dtype=tf.int64, name=n) for n in "ab"}
    embedded = layer(inputs)
    model = tf_keras.Model(
        inputs,
        tf_keras.layers.Dense(1)(tf_keras.layers.Concatenate()([embedded["a"], embedded["b"]])),
    )
    optimizer = tf_keras.optimizers.Adam(0.1)
    model.compile(optimizer=optimizer)
    migration = CafeMigration()
    with pytest.raises(RuntimeError, match="set_model"):
        migration.migrate_now()
    migration.set_model(model)
    ids = {"a": tf.constant([5, 5, 7], tf.int64), "b": tf.constant([1, 2, 3], tf.int64)}

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(ids, training=True))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    for _ in range(2):  # a:5 occurs 4 times: score 4 >= k = 3
        train_step()
    slots = [slot for slot, _ in optimizer_slots.slots_for(optimizer, layer.hot_table)]
    assert slots
    for slot in slots:
        slot.assign(tf.fill(slot.shape, 7.0))
    before = layer(ids)["a"].numpy()
    stats = migration.migrate_now()
    assert stats == {
        "cafe_promotions": 1,
        "cafe_demotions": 0,
        "cafe_hot_occupancy": 1 / layer.layout.hot_rows,
    }
    row = int(layer.sketch.query(hashing.field_keys(tf.constant([5], tf.int64), 0))[0][0])
    assert row >= 0
    np.testing.assert_array_equal(layer(ids)["a"].numpy(), before)
    for slot, initial in optimizer_slots.slots_for(optimizer, layer.hot_table):
        value = slot.numpy()
        np.testing.assert_array_equal(value[row], np.full(4, initial, np.float32))
        assert np.all(np.delete(value, row, axis=0) == 7.0)
    assert migration.migrate_now()["cafe_promotions"] == 0


@pytest.mark.parametrize(
    "config",
    [
        CafeConfig(embedding_dim=4, compression_ratio=5, threshold=2.0),
        CafeConfig(
            embedding_dim=8,
            budget_bytes=20_000,
            hot_share=0.5,
            importance="frequency",
            multi_level=True,
            medium_share=0.3,
            decay_rule="batches",
            decay_period=3,
            slots_per_bucket=2,
        ),
    ],
)
def test_collection_config_round_trip(config):
    layer = CafeEmbeddingCollection(
        [
            FeatureConfig("a", 5000, "sum"),
            FeatureConfig("b", 300, "mean"),
            FeatureConfig("c", 70, "sqrtn"),
        ],
        config,
        embeddings_initializer=tf_keras.initializers.RandomNormal(stddev=0.02),
        name="cafe",
    )
    clone = CafeEmbeddingCollection.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.features == layer.features and clone.layout == layer.layout
    ids = {
        "a": tf.constant([[1, 2]], tf.int64),
        "b": tf.constant([[3, 4]], tf.int64),
        "c": tf.ragged.constant([[5, 6, 7]], tf.int64),
    }
    layer(ids)
    clone(ids)
    assert [v.shape for v in clone.weights] == [v.shape for v in layer.weights]
    # Serialised through Keras (as model configs are), too: registered, so no custom_objects.
    revived = tf_keras.layers.deserialize(tf_keras.layers.serialize(layer))
    assert type(revived) is CafeEmbeddingCollection
    assert revived.get_config() == layer.get_config()


def test_migration_callback_reads_the_device_only_at_log_points(monkeypatch):
    """Migrations run every step; values come back to the host only every
    `log_every_n_steps` batches and at epoch boundaries."""
    model, layer = _planted_model()
    callback = CafeMigration(every_n_steps=1, log_every_n_steps=4)
    reads, migrations, batch_logs = [], [], []

    def spy(name, record, static=False):
        original = getattr(CafeMigration, name)

        def wrapper(*args):
            record.append(callback._steps)
            return original(*args)

        monkeypatch.setattr(CafeMigration, name, staticmethod(wrapper) if static else wrapper)

    spy("_counters", reads, static=True)
    for name in ("_occupancy", "_trained_batches"):  # the other device reads
        spy(name, reads)
    spy("_migrate", migrations)  # a migration of its own, outside the training step

    loss_types = []

    class Logs(tf_keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._supports_tf_logs = True  # sees tensors unless another callback needs numpy

        def on_train_batch_end(self, batch, logs=None):
            batch_logs.append(sorted(k for k in logs if k.startswith("cafe_")))
            loss_types.append(type(logs["loss"]))

    model.fit(_planted_dataset(n=128 * 10), epochs=1, verbose=0, callbacks=[callback, Logs()])
    # Keras did not copy the batch logs to the host for CafeMigration either.
    assert all(issubclass(t, tf.Tensor) for t in loss_types), loss_types
    assert migrations == []  # the training step migrates
    assert int(layer.promotions.numpy()) > 0
    assert set(reads) == {0, 4, 8, 10}  # epoch begin, log points, epoch end
    assert [bool(keys) for keys in batch_logs] == [s % 4 == 0 for s in range(1, 11)]
    assert "cafe_promotions" in batch_logs[3] and "cafe_hot_occupancy" in batch_logs[3]
