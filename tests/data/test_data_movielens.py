"""MovieLens-100K as a CTR task, read from the recbole wheel."""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf.data import MovieLens100K, movielens

needs_recbole = pytest.mark.skipif(
    importlib.util.find_spec("recbole") is None, reason="pip install --no-deps recbole==1.2.1"
)


@pytest.fixture(scope="module")
def data():
    return MovieLens100K()


@needs_recbole
def test_counts_vocabularies_and_positive_rate(data):
    assert len(data.train.label) + len(data.test.label) == 100_000
    assert len(data.test.label) == 20_000
    assert data.vocabulary_sizes["user_id"] == 943 and data.vocabulary_sizes["item_id"] == 1682
    assert data.vocabulary_sizes["gender"] == 2 and data.vocabulary_sizes["age_bucket"] == 7
    assert data.vocabulary_sizes["occupation"] == 21
    all_labels = np.concatenate([data.train.label, data.test.label])
    assert all_labels.sum() == 55_375  # ratings 4 and 5
    for split in (data.train, data.test):
        for i, field in enumerate(data.field_names):
            assert 0 <= split.ids[:, i].min()
            assert split.ids[:, i].max() < data.vocabulary_sizes[field]
    assert data.train.ids[:, 0].max() == 942  # every user appears in training


@needs_recbole
def test_split_is_in_time_order(data):
    assert np.all(np.diff(data.train.timestamp) >= 0)
    assert np.all(np.diff(data.test.timestamp) >= 0)
    assert data.train.timestamp[-1] <= data.test.timestamp[0]
    shorter = MovieLens100K(test_fraction=0.1)
    assert len(shorter.test.label) == 10_000
    np.testing.assert_array_equal(shorter.test.timestamp, data.test.timestamp[-10_000:])


@needs_recbole
def test_side_features_follow_the_raw_files(data):
    # user 1 is a 24-year-old male technician from zip 85711 (first line of ml-100k.user)
    user = np.flatnonzero(data.vocabularies["user_id"] == 1)[0]
    rows = data.train.ids[:, 0] == user
    names = {
        f: data.vocabularies[f][data.train.ids[rows, i][0]] for i, f in enumerate(data.field_names)
    }
    assert (names["age_bucket"], names["gender"], names["occupation"], names["zip_prefix"]) == (
        "18-24",
        "M",
        "technician",
        "8",
    )
    np.testing.assert_allclose(data.train.dense[rows, 0], 0.24)
    # movie 1 is Toy Story (1995), first genre Animation
    movie = data.train.ids[:, 1] == np.flatnonzero(data.vocabularies["item_id"] == 1)[0]
    i_year, i_genre = data.field_names.index("release_year"), data.field_names.index("first_genre")
    assert data.vocabularies["release_year"][data.train.ids[movie, i_year][0]] == "1995"
    assert data.vocabularies["first_genre"][data.train.ids[movie, i_genre][0]] == "Animation"


@needs_recbole
def test_batch_format(data):
    dataset = data.train_dataset(batch_size=512)
    assert dataset.element_spec == data.element_spec()
    features, label = next(iter(dataset))
    assert features["dense"].shape == (512, data.num_dense) == (512, 2)
    assert list(features["sparse"]) == data.field_names
    assert all(v.dtype == tf.int64 and v.shape == (512,) for v in features["sparse"].values())
    assert label.dtype == tf.float32 and label.shape == (512, 1)
    np.testing.assert_array_equal(label.numpy()[:, 0], data.train.label[:512])
    np.testing.assert_array_equal(features["sparse"]["item_id"].numpy(), data.train.ids[:512, 1])
    batches = [len(y) for _, y in data.test_dataset(batch_size=4096)]
    assert sum(batches) == 20_000 and batches[0] == 4096


def test_missing_recbole_says_how_to_install(monkeypatch):
    def not_installed(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(movielens.importlib.resources, "files", not_installed)
    with pytest.raises(ImportError, match=r"pip install --no-deps recbole==1\.2\.1"):
        MovieLens100K()


def test_per_user_split_holds_out_each_users_latest_ratings():
    pytest.importorskip("recbole")
    data = MovieLens100K(split="per_user")
    assert len(data.train.label) + len(data.test.label) == 100_000
    assert 0.17 < len(data.test.label) / 100_000 < 0.23
    user = data.field_names.index("user_id")
    train_users = set(data.train.ids[:, user].tolist())
    assert set(data.test.ids[:, user].tolist()) <= train_users
    for u in list(train_users)[:50]:
        train_times = data.train.timestamp[data.train.ids[:, user] == u]
        test_times = data.test.timestamp[data.test.ids[:, user] == u]
        if len(test_times):
            assert train_times.max() <= test_times.min()
    assert np.all(np.diff(data.train.timestamp) >= 0)
