"""MDEEmbeddingCollection: widths from popularity, projections, hashing to fit the budget."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf import budget as budget_lib
from cafe_tf import hashing
from cafe_tf.layers import baselines
from cafe_tf.layers.mde import MDEEmbeddingCollection, mde_dims

VOCABULARY = {"a": 10, "b": 1000, "c": 100_000}


@pytest.mark.parametrize(
    "alpha,expected", [(0.0, (16, 16, 16)), (0.3, (16, 4, 1)), (0.1, (16, 10, 6))]
)
def test_dims_follow_the_popularity_law(alpha, expected):
    # d_f = round(16 (10 / n_f)^alpha), clipped to [1, 16].
    assert mde_dims([10, 1000, 100_000], 16, alpha) == expected


def test_whole_vocabulary_when_it_fits_else_hashed_rows():
    fits = MDEEmbeddingCollection(VOCABULARY, 16, compression_ratio=10)
    assert fits.table_rows == (10, 1000, 100_000)
    hashed = MDEEmbeddingCollection(VOCABULARY, 16, compression_ratio=100)
    rows, dims = hashed.table_rows, hashed.dims
    assert all(r < n for r, n in zip(rows, VOCABULARY.values()))
    # Every feature compressed by about the same factor (one row of rounding).
    factors = [n / r for n, r in zip(VOCABULARY.values(), rows)]
    assert max(factors[1:]) / min(factors[1:]) < 1.1
    projections = sum(d * 16 for d in dims if d < 16)
    assert (sum(r * d for r, d in zip(rows, dims)) + projections) * 4 <= hashed.budget_bytes


def test_no_projection_at_full_width():
    layer = MDEEmbeddingCollection(VOCABULARY, 16, compression_ratio=2, alpha=0.0)
    assert [w.name.split("/")[-1].split(":")[0] for w in layer.weights] == [
        "embeddings_0",
        "embeddings_1",
        "embeddings_2",
    ]


@pytest.mark.parametrize("ratio", [10, 1000], ids=["whole", "hashed"])
def test_lookup_is_row_times_projection(ratio):
    layer = MDEEmbeddingCollection(VOCABULARY, 16, compression_ratio=ratio)
    ids = [0, 7, 9, 2**40, -5]
    out = layer({name: tf.constant(ids, tf.int64) for name in VOCABULARY})
    for i, name in enumerate(VOCABULARY):
        table = layer.weights[
            [w.name.split("/")[-1].split(":")[0] for w in layer.weights].index(f"embeddings_{i}")
        ].numpy()
        keys = hashing.field_keys(tf.constant(ids, tf.int64), i)
        rows = baselines.vocabulary_row(keys, i, layer.table_rows[i]).numpy()
        expected = table[rows]
        if layer.dims[i] < 16:
            projection = [w for w in layer.weights if f"projection_{i}" in w.name][0].numpy()
            expected = expected @ projection
        np.testing.assert_allclose(out[name], expected, rtol=1e-6)
        if ratio == 10:  # ids inside the vocabulary read their own row
            assert list(rows[:3]) == [0, 7, 9]


def test_rejects_negative_alpha():
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        MDEEmbeddingCollection(VOCABULARY, 16, compression_ratio=10, alpha=-1)


def test_too_small_names_the_minimum():
    # 3 projections... at alpha 0.3: widths (16, 4, 1): projections 4*16 + 16, rows 21 floats.
    minimum = (4 * 16 + 1 * 16 + 16 + 4 + 1) * 4
    MDEEmbeddingCollection(VOCABULARY, 16, budget_bytes=minimum)
    with pytest.raises(budget_lib.BudgetTooSmallError, match=f"at least {minimum:,} bytes"):
        MDEEmbeddingCollection(VOCABULARY, 16, budget_bytes=minimum - 1)
