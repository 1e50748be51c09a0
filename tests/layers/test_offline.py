"""OfflineSeparationEmbeddingCollection and count_frequencies."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.budget import BudgetTooSmallError
from cafe_tf.data import dataset_from_arrays
from cafe_tf.experiment import make_embedding
from cafe_tf.layers.offline import (
    OfflineSeparationEmbeddingCollection,
    count_frequencies,
    top_keys,
)

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


def _counted(distinct=60, seed=0):
    """Frequencies of two features, `distinct` ids each, with ties among the counts."""
    rng = np.random.default_rng(seed)
    return {
        name: (rng.permutation(1000)[:distinct], rng.integers(1, 40, distinct))
        for name in VOCABULARY
    }


# D = 4: a hashed row costs 16 bytes, an exclusive row 16 + its 8-byte key.
@pytest.mark.parametrize(
    "exclusive_rows,budget_bytes,expected_rows",
    [
        (1, 24 + 2 * 16, 1),  # the smallest layout: one hashed row per feature
        (7, 7 * 24 + 50 * 16 + 5, 7),  # 5 bytes left over: not a row
        (100, 100 * 24 + 300 * 16, 100),
        (500, 500 * 24 + 40 * 16, 120),  # capped by the 120 counted ids
    ],
    ids=["one", "seven", "hundred", "capped"],
)
def test_exclusive_rows_are_honoured(exclusive_rows, budget_bytes, expected_rows):
    frequencies = _counted()
    layer = OfflineSeparationEmbeddingCollection(
        VOCABULARY,
        4,
        budget_bytes=budget_bytes,
        frequencies=frequencies,
        hot_share=0.9,  # ignored with exclusive_rows
        exclusive_rows=exclusive_rows,
    )
    assert layer.hot_rows == expected_rows
    # The rest of the budget holds hashed rows, split over the features.
    assert sum(layer.hashed_rows) == (budget_bytes - expected_rows * 24) // 16
    assert min(layer.hashed_rows) >= 1
    layer({"a": tf.constant([1]), "b": tf.constant([2])})  # builds the weights
    assert budget_bytes - 16 < layer.memory_bytes() <= budget_bytes
    # The rows go to the most frequent ids.
    np.testing.assert_array_equal(
        _var(layer, "hot_keys"), top_keys(frequencies, list(VOCABULARY), expected_rows)
    )


def test_top_keys_ranks_by_count_then_feature_then_id():
    frequencies = {"a": ([9, 4, 2], [10, 10, 30]), "b": ([1, 3], [10, 40])}
    keys = top_keys(frequencies, ["a", "b"], 4)
    expected = [(1, 3), (0, 2), (0, 4), (0, 9)]  # b:3 40, a:2 30, then the 10s: a:4, a:9, b:1
    np.testing.assert_array_equal(
        keys, np.sort([int(hashing.field_keys(tf.constant(i, tf.int64), f)) for f, i in expected])
    )
    assert len(top_keys(frequencies, ["a", "b"], 10)) == 5  # no more than were counted


@pytest.mark.parametrize("exclusive_rows", [None, 1, 9, 500], ids=["share", "1", "9", "capped"])
def test_config_round_trip(exclusive_rows):
    layer = OfflineSeparationEmbeddingCollection(
        VOCABULARY,
        4,
        budget_bytes=500 * 24 + 100 * 16,
        frequencies=_counted(),
        hot_share=0.3,
        exclusive_rows=exclusive_rows,
    )
    config = layer.get_config()
    assert config["exclusive_rows"] == exclusive_rows
    again = OfflineSeparationEmbeddingCollection.from_config(config)
    assert (again.hot_rows, again.hashed_rows, again.exclusive_rows) == (
        layer.hot_rows,
        layer.hashed_rows,
        exclusive_rows,
    )
    ids = {"a": tf.constant([1]), "b": tf.constant([2])}
    layer(ids), again(ids)
    np.testing.assert_array_equal(_var(again, "hot_keys"), _var(layer, "hot_keys"))


@pytest.mark.parametrize(
    "exclusive_rows,error,match",
    [
        (0, ValueError, "exclusive_rows must be a positive int or None, got 0"),
        (-3, ValueError, "exclusive_rows must be a positive int or None, got -3"),
        (2.5, ValueError, "exclusive_rows must be a positive int or None, got 2.5"),
        (True, ValueError, "exclusive_rows must be a positive int or None, got True"),
        ("4", ValueError, "exclusive_rows must be a positive int or None, got '4'"),
        # 4 rows of 24 bytes + 2 hashed rows of 16 need 128 bytes; the budget has 127.
        (4, BudgetTooSmallError, r"at least 128 bytes \(exclusive_rows=4 exclusive rows"),
    ],
    ids=["zero", "negative", "float", "bool", "string", "too_many"],
)
def test_bad_exclusive_rows(exclusive_rows, error, match):
    with pytest.raises(error, match=match):
        OfflineSeparationEmbeddingCollection(
            VOCABULARY, 4, budget_bytes=127, frequencies=_counted(), exclusive_rows=exclusive_rows
        )


def test_make_embedding_passes_exclusive_rows_to_offline_only():
    frequencies = _counted()
    layer = make_embedding(
        "offline", VOCABULARY, 4, budget_bytes=3000, frequencies=frequencies, exclusive_rows=11
    )
    assert layer.hot_rows == 11
    with pytest.raises(ValueError, match="exclusive_rows applies to kind 'offline' only"):
        make_embedding("cafe", VOCABULARY, 4, budget_bytes=3000, exclusive_rows=11)
