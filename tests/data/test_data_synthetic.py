"""The synthetic Criteo-like generator: format, reproducibility, statistics, drift, signal."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.data.criteo import CATEGORICAL_FIELDS, KAGGLE_CARDINALITIES
from cafe_tf.data.shapes import get_shape

SMALL = SyntheticCriteoConfig(seed=3, rows_per_day=20_000, chunk_size=8192)
BIG_FIELD = CATEGORICAL_FIELDS.index("C3")  # 10131 ids at scale 1e-3


@pytest.fixture(scope="module")
def small():
    return SyntheticCriteo(SMALL)


def day_arrays(data, day):
    chunks = list(data.chunks(day))
    return tuple(
        np.concatenate([getattr(c, name) for c in chunks])
        for name in ("dense", "ids", "label", "probability")
    )


def rows_of(dataset, batches):
    """The first `batches` batches of a dataset, concatenated into (dense, ids, label)."""
    dense, ids, label = [], [], []
    for features, y in dataset.take(batches):
        dense.append(features["dense"].numpy())
        ids.append(np.stack([features["sparse"][f].numpy() for f in CATEGORICAL_FIELDS], 1))
        label.append(y.numpy())
    return np.concatenate(dense), np.concatenate(ids), np.concatenate(label)


def test_batch_format(small):
    dataset = small.train_dataset(batch_size=256)
    assert dataset.element_spec == small.element_spec()
    features, label = next(iter(dataset))
    assert set(features) == {"dense", "sparse"}
    assert features["dense"].dtype == tf.float32 and features["dense"].shape == (256, 13)
    assert list(features["sparse"]) == small.field_names == CATEGORICAL_FIELDS
    for field, ids in features["sparse"].items():
        assert ids.dtype == tf.int64 and ids.shape == (256,)
        assert 0 <= ids.numpy().min() and ids.numpy().max() < small.vocabulary_sizes[field]
    assert label.dtype == tf.float32 and label.shape == (256, 1)
    assert set(np.unique(label.numpy())) <= {0.0, 1.0}
    assert small.num_dense == 13
    assert np.all(features["dense"].numpy() >= 0)  # log1p of counts


def test_vocabulary_sizes_scale_kaggle_cardinalities():
    sizes = SyntheticCriteo(SMALL).vocabulary_sizes
    assert sizes == SMALL.cardinalities()
    assert sizes["C3"] == round(KAGGLE_CARDINALITIES["C3"] * 1e-3) == 10131
    assert sizes["C9"] == 3 and sizes["C6"] == 24  # small fields keep their real size
    assert sizes["C1"] == 100  # 1460 * 1e-3 would collapse to 1: floored at min_cardinality
    full = SyntheticCriteoConfig(scale=1.0).cardinalities()
    assert full == KAGGLE_CARDINALITIES


def test_same_seed_same_batches_other_seed_other_batches(small):
    first = rows_of(small.train_dataset(1000), 3)
    again = rows_of(SyntheticCriteo(SMALL).train_dataset(1000), 3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # batching does not change the stream
    regrouped = rows_of(small.train_dataset(3000), 1)
    for a, b in zip(first, regrouped):
        np.testing.assert_array_equal(a, b)
    other = rows_of(SyntheticCriteo(dataclasses.replace(SMALL, seed=4)).train_dataset(1000), 3)
    assert not np.array_equal(first[1], other[1])


def test_train_and_test_days_and_steps(small):
    def count(dataset):
        return int(
            dataset.reduce(
                tf.constant(0, tf.int64),
                lambda n, batch: n + tf.shape(batch[1], out_type=tf.int64)[0],
            )
        )

    assert count(small.train_dataset(4096)) == 6 * SMALL.rows_per_day
    assert count(small.test_dataset(4096)) == SMALL.rows_per_day
    np.testing.assert_array_equal(
        rows_of(small.test_dataset(500), 1)[1], rows_of(small.day_dataset(6, 500), 1)[1]
    )
    assert small.steps(4096) == -(-6 * SMALL.rows_per_day // 4096)
    with pytest.raises(ValueError, match="day"):
        small.day_dataset(7, 10)


def test_positive_rate_near_target(small):
    for day in (0, 6):
        _, _, label, probability = day_arrays(small, day)
        assert 0.2 < label.mean() < 0.3
        assert abs(label.mean() - probability.mean()) < 0.02  # labels are drawn from it


def test_ids_are_zipf_skewed_and_not_the_rank():
    data = SyntheticCriteo(dataclasses.replace(SMALL, rows_per_day=200_000, chunk_size=32768))
    ids = day_arrays(data, 0)[1][:, BIG_FIELD]
    counts = np.bincount(ids, minlength=data.vocabulary_sizes["C3"])
    by_rank = np.sort(counts)[::-1]
    assert by_rank[: len(by_rank) // 100].sum() > 0.5 * len(ids)  # top 1% of ids: most traffic
    ranks = np.arange(10, 300)
    slope = np.polyfit(np.log(ranks + 1), np.log(by_rank[ranks]), 1)[0]
    assert abs(slope + SMALL.zipf_exponent) < 0.15, slope
    # popular ids are spread over the id space, not 0, 1, 2, ...
    top = np.argsort(counts)[::-1][:20]
    assert top.max() > 1000


def test_drift_changes_popular_ids_only_when_enabled():
    def top_overlap(drift):
        data = SyntheticCriteo(dataclasses.replace(SMALL, rows_per_day=50_000, drift=drift))
        top = [
            set(np.argsort(np.bincount(day_arrays(data, day)[1][:, BIG_FIELD]))[-100:])
            for day in (0, 5)
        ]
        return len(top[0] & top[1]) / 100

    assert top_overlap(0.1) < 0.75
    assert top_overlap(0.0) >= 0.85  # only sampling noise at the rank-100 boundary

    data = SyntheticCriteo(dataclasses.replace(SMALL, drift=0.0))
    np.testing.assert_array_equal(data.rank_to_id(0), data.rank_to_id(6))
    drifting = SyntheticCriteo(SMALL)
    table = drifting.rank_to_id(5)
    assert not np.array_equal(drifting.rank_to_id(0), table)
    start, size = 0, 0
    for field in CATEGORICAL_FIELDS:  # each field's table stays a permutation of its ids
        start, size = start + size, drifting.vocabulary_sizes[field]
        np.testing.assert_array_equal(np.sort(table[start : start + size]), np.arange(size))


@pytest.mark.parametrize("seed", [3, 4])
def test_ids_carry_the_signal_and_hashing_them_hurts(seed):
    data = SyntheticCriteo(dataclasses.replace(SMALL, seed=seed, rows_per_day=60_000))
    dense_train, ids_train, label_train, _ = day_arrays(data, 0)
    dense_test, ids_test, label_test, oracle = day_arrays(data, 1)
    sizes = np.array([data.vocabulary_sizes[f] for f in CATEGORICAL_FIELDS])

    def id_click_rate_auc(buckets):
        """AUC of summed per-id log-odds learned on day 0 (a naive-Bayes CTR model)."""
        score, base = np.zeros(len(label_test)), label_train.mean()
        for field, n in enumerate(buckets):
            train, test = ids_train[:, field] % n, ids_test[:, field] % n
            clicks = np.bincount(train, weights=label_train, minlength=n)
            rate = (clicks + 20 * base) / (np.bincount(train, minlength=n) + 20)
            score += np.log(rate / (1 - rate))[test]
        return roc_auc_score(label_test, score)

    full = id_click_rate_auc(sizes)
    hashed = id_click_rate_auc(np.where(sizes > 1000, sizes // 100, sizes))  # 100x on big fields
    dense_only = roc_auc_score(
        label_test,
        LogisticRegression().fit(dense_train, label_train).predict_proba(dense_test)[:, 1],
    )
    oracle_auc = roc_auc_score(label_test, oracle)
    assert oracle_auc > full + 0.02
    assert full > hashed + 0.01
    assert full > dense_only + 0.1


def test_oracle_probability_matches_the_generator(small):
    features, _ = next(iter(small.day_dataset(2, 300)))
    expected = next(small.chunks(2)).probability[:300]
    np.testing.assert_allclose(small.oracle_probability(features, day=2), expected, rtol=1e-6)


def test_config_validation():
    with pytest.raises(ValueError, match="seed"):
        SyntheticCriteoConfig(seed=-1)
    with pytest.raises(ValueError, match="num_days"):
        SyntheticCriteoConfig(num_days=1)
    with pytest.raises(ValueError, match="drift"):
        SyntheticCriteoConfig(drift=1.5)


@pytest.mark.parametrize(
    "shape,fields,dense,total",
    [
        ("criteo_kaggle", 26, 13, 33_762_577),
        ("avazu", 22, 0, 9_449_445),
        ("kdd12", 11, 0, 54_700_000),
    ],
)
def test_shapes_have_the_published_fields_and_totals(shape, fields, dense, total):
    config = SyntheticCriteoConfig(shape=shape, scale=1.0, min_cardinality=1)
    assert len(config.cardinalities()) == fields
    assert sum(config.cardinalities().values()) == total
    scaled = SyntheticCriteoConfig(shape=shape, scale=1e-3).cardinalities()
    assert all(
        n == max(min(100, big), round(big * 1e-3))
        for n, big in zip(scaled.values(), config.cardinalities().values())
    )
    assert get_shape(shape).num_dense == dense


@pytest.mark.parametrize("shape", ["avazu", "kdd12"])
def test_other_shapes_keep_the_click_model(shape):
    data = SyntheticCriteo(dataclasses.replace(SMALL, shape=shape))
    assert data.field_names == list(get_shape(shape).categorical_fields)
    features, label = next(iter(data.day_dataset(0, 512)))
    assert features["dense"].shape == (512, 0)
    assert sorted(features["sparse"]) == sorted(data.field_names)
    dense, ids, labels, probability = day_arrays(data, 0)
    sizes = np.array([data.vocabulary_sizes[f] for f in data.field_names])
    assert (ids >= 0).all() and (ids < sizes).all()
    assert abs(labels.mean() - SMALL.positive_rate) < 0.03
    # Skewed: the largest field's top 1% of ids take most lookups.
    big = int(np.argmax(sizes))
    by_rank = np.sort(np.bincount(ids[:, big], minlength=sizes[big]))[::-1]
    assert by_rank[: len(by_rank) // 100].sum() > 0.4 * len(ids)
    # The ground truth carries signal through the ids alone.
    assert roc_auc_score(labels, probability) > 0.7
    # Drift moves ids between days.
    assert not np.array_equal(data.rank_to_id(0), data.rank_to_id(3))


def test_unknown_shape():
    with pytest.raises(ValueError, match="unknown data shape 'movielens'"):
        SyntheticCriteoConfig(shape="movielens")
