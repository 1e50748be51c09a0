"""AdaEmbedEmbeddingCollection and its reallocation callback."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cafe_tf.layers.adaembed import AdaEmbedEmbeddingCollection
from cafe_tf.reallocation import AdaEmbedReallocation

VOCABULARY = {"a": 1000, "b": 1000}


def _layer(rows=4, **kwargs):
    # Budget of exactly `rows` rows (4 D + 24 bytes each) and 100 counters.
    layer = AdaEmbedEmbeddingCollection(
        VOCABULARY,
        4,
        budget_bytes=16 + 400 + rows * 40,
        importance_share=400 / (16 + 400 + rows * 40) + 1e-9,
        **kwargs,
    )
    assert (layer.num_rows, layer.num_counters) == (rows, 100)
    return layer


def _look(layer, a, b=(), training=True):
    return layer(
        {"a": tf.constant(a, tf.int64), "b": tf.constant(list(b) or [0] * len(a), tf.int64)},
        training=training,
    )


def _resident(layer):
    return set(layer.resident_keys.numpy()[: int(layer.num_resident.numpy())].tolist())


def _key(feature, value):
    from cafe_tf import hashing

    return int(hashing.field_keys(tf.constant([value], tf.int64), feature)[0])


def test_ids_without_a_row_read_zeros_and_training_only_counts():
    layer = _layer()
    out = _look(layer, [1, 2, 3])
    assert not np.asarray(out["a"]).any()
    _look(layer, [7, 7, 7], training=False)  # inference does not count
    layer.reallocate()
    assert _key(0, 7) not in _resident(layer) and _key(0, 1) in _resident(layer)


def test_reallocation_ranks_by_importance_and_incumbents_win_ties():
    layer = _layer(rows=2)
    # b's id 0 is looked up with every batch: the most important.
    _look(layer, [1, 1, 2])
    layer.reallocate()
    assert _resident(layer) == {_key(1, 0), _key(0, 1)}
    row_of_1 = int(layer.resident_rows.numpy()[list(layer.resident_keys.numpy()).index(_key(0, 1))])
    layer.embeddings.assign(tf.ones([2, 4]))
    _look(layer, [5, 5, 5])  # id 5: 3 lookups, now above id 1 (2 lookups)
    stats = layer.reallocate()
    assert (int(stats["promotions"]), int(stats["demotions"])) == (1, 1)
    assert _resident(layer) == {_key(1, 0), _key(0, 5)}
    out = _look(layer, [5, 1], training=False)
    # The newcomer takes the freed row, starting at its start vector; the evicted id
    # reads zeros.
    start = layer.start_vectors(tf.constant([_key(0, 5)], tf.int64)).numpy()[0]
    np.testing.assert_array_equal(np.asarray(out["a"]), [start, [0.0] * 4])
    np.testing.assert_array_equal(layer.embeddings.numpy()[row_of_1], start)
    _look(layer, [1])  # id 1 ties with id 5 (3 lookups each): the resident keeps its row
    layer.reallocate()
    assert _key(0, 5) in _resident(layer)


def test_decay_lets_new_ids_overtake():
    layer = _layer(rows=2, importance_decay=0.1)
    _look(layer, [1] * 10, b=[2] * 10)
    layer.reallocate()
    _look(layer, [3, 3], b=[4, 4])  # 2 lookups beat 10 decayed to 1
    layer.reallocate()
    assert _resident(layer) == {_key(0, 3), _key(1, 4)}


def test_reassigned_rows_get_fresh_optimizer_slots():
    layer = _layer(rows=2)
    optimizer = tf_keras.optimizers.Adam(0.1)
    _look(layer, [1, 1], b=[2, 2])
    layer.reallocate(optimizer)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(_look(layer, [1], b=[2])["a"] - 1.0)
    optimizer.apply_gradients(zip(tape.gradient(loss, [layer.embeddings]), [layer.embeddings]))
    slots = [v for v in optimizer.variables() if v.shape == layer.embeddings.shape]
    assert slots and all(np.abs(s.numpy()).sum() > 0 for s in slots)
    _look(layer, [9, 9, 9, 9], b=[8, 8, 8, 8])
    layer.reallocate(optimizer)  # both rows change hands
    for slot in slots:
        assert not slot.numpy().any()


def test_callback_reallocates_every_n_steps():
    layer = AdaEmbedEmbeddingCollection(VOCABULARY, 4, compression_ratio=20)
    inputs = {name: tf_keras.Input(shape=(), dtype=tf.int64, name=name) for name in VOCABULARY}
    out = layer(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(1)(out["a"] + out["b"]))
    model.compile(optimizer="adam", loss="mse")
    x = {"a": np.arange(40) % 5, "b": np.arange(40) % 3}
    callback = AdaEmbedReallocation(every_n_steps=2)
    history = model.fit(x, np.ones(40), batch_size=10, epochs=1, verbose=0, callbacks=[callback])
    assert _resident(layer) == ({_key(0, i) for i in range(5)} | {_key(1, i) for i in range(3)})
    assert history.history[f"{layer.name}_resident_share"][0] == 8 / layer.num_rows
    with pytest.raises(ValueError, match="every_n_steps must be > 0"):
        AdaEmbedReallocation(every_n_steps=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"importance_share": 1.0}, "importance_share"),
        ({"importance_decay": 0.0}, "importance_decay"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaEmbedEmbeddingCollection(VOCABULARY, 4, compression_ratio=10, **kwargs)


def test_start_vectors_are_small_distinct_and_fixed_by_the_key():
    """A row starts non-zero (so models whose only inputs are embeddings get gradients),
    within the uniform initializer's range, the same in another layer and run."""
    keys = tf.constant([0, 1, -7, 2**62], tf.int64)
    a = _layer().start_vectors(keys).numpy()
    b = _layer().start_vectors(keys).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 4) and np.all(np.abs(a) <= 0.05) and np.all(a != 0)
    assert len({tuple(row) for row in a}) == 4
