"""OfflineSeparationEmbeddingCollection and count_frequencies."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.data import dataset_from_arrays
from cafe_tf.layers.offline import OfflineSeparationEmbeddingCollection, count_frequencies

VOCABULARY = {"a": 1000, "b": 1000}


def _var(layer, name):
    return {w.name.split("/")[-1].split(":")[0]: w for w in layer.weights}[name].numpy()


def _rows_of(layer, index, ids):
    """Packed rows read by ids of one feature (from the layer's documented mapping)."""
    keys = hashing.field_keys(tf.constant(ids, tf.int64), index).numpy()
    hot = _var(layer, "hot_keys")  # sorted
    rows = []
    for key in keys:
        position = np.searchsorted(hot, key)
        if position < len(hot) and hot[position] == key:
            rows.append(position)
        else:
            rows.append(
                layer.hot_rows
                + sum(layer.hashed_rows[:index])
                + int(hashing.hashed_row(tf.constant([key]), layer.hashed_rows[index], 0)[0])
            )
    return rows


def test_most_frequent_ids_get_exclusive_rows():
    frequencies = {"a": ([5, 6, 7, 8], [100, 3, 50, 1]), "b": ([5, 9], [70, 2])}
    layer = OfflineSeparationEmbeddingCollection(
        VOCABULARY, 4, budget_bytes=3 * 24 + 2 * 16 * 50, frequencies=frequencies, hot_share=0.05
    )
    assert layer.hot_rows == 3  # 5% of the budget holds 3 exclusive rows at 24 bytes each
    assert layer.hot_lookup_share == pytest.approx(220 / 226)
    rows_a, rows_b = _rows_of(layer, 0, [5, 7, 6, 8]), _rows_of(layer, 1, [5, 9])
    assert sorted([rows_a[0], rows_a[1], rows_b[0]]) == [0, 1, 2]  # a:5, a:7, b:5 are hot
    assert min(rows_a[2], rows_a[3], rows_b[1]) >= 3  # the rest are hashed
    table = _var(layer, "embeddings")
    out = layer({"a": tf.constant([5, 7, 6, 8]), "b": tf.constant([5, 9, 5, 9])})
    np.testing.assert_array_equal(out["a"], table[rows_a])
    np.testing.assert_array_equal(out["b"], table[rows_b * 2])


def test_ties_break_by_feature_then_id():
    frequencies = {"a": ([9, 4], [10, 10]), "b": ([1], [10])}
    layer = OfflineSeparationEmbeddingCollection(
        VOCABULARY, 4, budget_bytes=2 * 24 + 2 * 16 * 50, frequencies=frequencies, hot_share=0.03
    )
    assert layer.hot_rows == 2
    assert layer.get_config()["frequencies"] == {"a": {"ids": [4, 9], "counts": [10, 10]}}


def test_refuses_to_build_without_frequencies():
    with pytest.raises(ValueError, match="needs `frequencies`.*count_frequencies"):
        OfflineSeparationEmbeddingCollection(VOCABULARY, 4, compression_ratio=10)


@pytest.mark.parametrize(
    "frequencies,match",
    [
        ({"z": ([1], [1])}, r"unknown features \['z'\]"),
        ({"a": ([1, 2], [1])}, "2 ids but 1 counts"),
        ({"a": ([1], [-1])}, "negative counts"),
    ],
    ids=["unknown_feature", "length_mismatch", "negative"],
)
def test_malformed_frequencies(frequencies, match):
    with pytest.raises(ValueError, match=match):
        OfflineSeparationEmbeddingCollection(
            VOCABULARY, 4, compression_ratio=10, frequencies=frequencies
        )


def test_count_frequencies_is_exact(monkeypatch):
    rng = np.random.default_rng(0)
    ids = rng.zipf(1.5, (3000, 2)) % 1000
    # Merge often, so the incremental merging is exercised too.
    monkeypatch.setattr("cafe_tf.layers.offline._MERGE_EVERY", 700)
    dataset = dataset_from_arrays(
        np.zeros((3000, 1), np.float32), ids, np.zeros(3000, np.float32), ["a", "b"], batch_size=256
    )
    counted = count_frequencies(dataset)
    for column, name in enumerate(["a", "b"]):
        expected_ids, expected_counts = np.unique(ids[:, column], return_counts=True)
        np.testing.assert_array_equal(counted[name][0], expected_ids)
        np.testing.assert_array_equal(counted[name][1], expected_counts)
