"""MovieLens-100K as a click-through-rate task, read from the `recbole` wheel.

The 100,000 ratings (943 users, 1,682 movies) ship inside `recbole==1.2.1` under
`recbole/dataset_example/ml-100k/`. Their licence forbids redistribution, so cafe_tf reads
them from the installed package and never copies them: `pip install --no-deps recbole==1.2.1`
(it imports nothing on `import recbole`, so no torch is needed).

The task: label = 1 if rating >= `positive_rating` (default 4, 55% of ratings), ratings in
timestamp order, the last `test_fraction` of them as the test set (no shuffling, like the
paper's Criteo protocol). Categorical fields, each id in `[0, vocabulary_size)`:

- `user_id`, `item_id`;
- from the users: `age_bucket` (<18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+, MovieLens-1M's
  buckets), `gender`, `occupation`, `zip_prefix` (first character of the zip code);
- from the movies: `release_year`, `first_genre` (the first of the listed genres).

Dense features (`DENSE_NAMES`): user age / 100 and `log1p` of the movie's age in years when
rated (0 if its release year is unknown).
"""

import importlib.resources
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from cafe_tf.data.batch import CTRData, dataset_from_arrays

FIELD_NAMES = [
    "user_id",
    "item_id",
    "age_bucket",
    "gender",
    "occupation",
    "zip_prefix",
    "release_year",
    "first_genre",
]
DENSE_NAMES = ["user_age", "log1p_movie_age_years"]
AGE_BUCKET_NAMES = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
AGE_BUCKET_STARTS = [18, 25, 35, 45, 50, 56]  # bucket i holds ages in [start_{i-1}, start_i)
_INSTALL_HINT = "pip install --no-deps recbole==1.2.1"


class MovieLensSplit(NamedTuple):
    """One split as numpy arrays, rows in timestamp order.

    Attributes:
        dense: float32 `[n, 2]`, see `DENSE_NAMES`.
        ids: int64 `[n, 8]`, column `i` for `FIELD_NAMES[i]`.
        label: float32 `[n]`, 1 for rating >= the positive threshold.
        timestamp: int64 `[n]`, Unix seconds.
    """

    dense: np.ndarray
    ids: np.ndarray
    label: np.ndarray
    timestamp: np.ndarray


def _read_table(name: str) -> list:
    """Rows (lists of strings) of a recbole atomic file, header dropped."""
    try:
        folder = importlib.resources.files("recbole") / "dataset_example" / "ml-100k"
    except ModuleNotFoundError as err:
        raise ImportError(
            f"MovieLens-100K is read from the recbole wheel: {_INSTALL_HINT}"
        ) from err
    resource = folder / name
    if not resource.is_file():
        raise FileNotFoundError(f"{name} is not in the installed recbole; {_INSTALL_HINT}")
    header, *lines = resource.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line]
    width = len(header.split("\t"))
    bad = [number for number, row in enumerate(rows, start=2) if len(row) != width]
    if bad:
        raise ValueError(f"{name}: lines {bad[:5]} do not have {width} tab-separated columns")
    return rows


def _encode(tokens: np.ndarray) -> tuple:
    """Sorted vocabulary of `tokens` and each token's index in it."""
    vocabulary, ids = np.unique(tokens, return_inverse=True)
    return vocabulary, ids.astype(np.int64)


class MovieLens100K(CTRData):
    """MovieLens-100K ratings as a CTR dataset in time order (see the module docstring).

    Args:
        test_fraction: share of the latest ratings held out for testing.
        positive_rating: ratings at or above it are positive.
        split: "global" holds out the latest `test_fraction` of all ratings (most
            test users are then new: a cold-start task where id embeddings help
            little); "per_user" holds out the latest `test_fraction` of each
            user's ratings (every test user was seen in training). Both keep
            time order.

    Attributes:
        train, test: the two `MovieLensSplit`s.
        vocabularies: field -> array of the original tokens, id `i` being `vocabularies[f][i]`.

    Raises:
        ImportError: recbole is not installed (the message says how to install it).

    Example:
        >>> data = MovieLens100K()  # doctest: +SKIP
        >>> model.fit(data.train_dataset(batch_size=256))  # doctest: +SKIP
        >>> model.evaluate(data.test_dataset(batch_size=4096))  # doctest: +SKIP
    """

    def __init__(
        self, test_fraction: float = 0.2, positive_rating: float = 4.0, split: str = "global"
    ):
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if split not in ("global", "per_user"):
            raise ValueError(f"split must be 'global' or 'per_user', got {split!r}")
        users, items, ratings = (
            _read_table(f"ml-100k.{kind}") for kind in ("user", "item", "inter")
        )
        user_ids, user_vocabularies, user_age = _user_features(users)
        item_ids, item_vocabularies, release_year = _item_features(items)
        self.vocabularies = {**user_vocabularies, **item_vocabularies}
        super().__init__(
            FIELD_NAMES, {f: len(v) for f, v in self.vocabularies.items()}, len(DENSE_NAMES)
        )

        user, item, rating, timestamp = (np.array(column) for column in zip(*ratings))
        timestamp = timestamp.astype(np.int64)
        order = np.argsort(timestamp, kind="stable")  # ties keep file order
        timestamp = timestamp[order]
        user_row = _lookup(user_vocabularies["user_id"], user[order].astype(np.int64))
        item_row = _lookup(item_vocabularies["item_id"], item[order].astype(np.int64))

        side = {
            **{f: v[user_row] for f, v in user_ids.items()},
            **{f: v[item_row] for f, v in item_ids.items()},
        }
        ids = np.stack([side[f] for f in FIELD_NAMES], axis=1).astype(np.int64)
        rated_year = 1970 + timestamp.astype("datetime64[s]").astype("datetime64[Y]").astype(int)
        release = release_year[item_row]
        movie_age = np.where(release > 0, np.maximum(rated_year - release, 0), 0)
        dense = np.stack([user_age[user_row] / 100.0, np.log1p(movie_age)], axis=1)
        label = rating[order].astype(np.float64) >= positive_rating

        if split == "global":
            is_test = np.arange(len(label)) >= int(round(len(label) * (1.0 - test_fraction)))
        else:
            is_test = _latest_per_user(user_row, test_fraction)
        arrays = (dense.astype(np.float32), ids, label.astype(np.float32), timestamp)
        self.train = MovieLensSplit(*(a[~is_test] for a in arrays))
        self.test = MovieLensSplit(*(a[is_test] for a in arrays))

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        """The training ratings in time order as `(features, label)` batches, not shuffled."""
        return self._dataset(self.train, batch_size)

    def test_dataset(self, batch_size: int) -> tf.data.Dataset:
        """The test ratings (the latest `test_fraction`) as `(features, label)` batches."""
        return self._dataset(self.test, batch_size)

    def _dataset(self, split: MovieLensSplit, batch_size: int) -> tf.data.Dataset:
        return dataset_from_arrays(
            split.dense, split.ids, split.label, self.field_names, batch_size
        )


def _latest_per_user(user_row: np.ndarray, fraction: float) -> np.ndarray:
    """Mask of each user's latest `fraction` of rows (rows are in time order)."""
    by_user = np.argsort(user_row, kind="stable")  # time order kept within a user
    counts = np.bincount(user_row)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(len(user_row), np.int64)
    position[by_user] = np.arange(len(user_row)) - first[user_row[by_user]]
    return position >= np.round(counts[user_row] * (1.0 - fraction))


def _lookup(vocabulary: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each key in the sorted `vocabulary`; raises if one is absent."""
    index = np.minimum(np.searchsorted(vocabulary, keys), len(vocabulary) - 1)
    unknown = vocabulary[index] != keys
    if unknown.any():
        raise ValueError(f"ratings refer to unknown ids, e.g. {keys[unknown][:5].tolist()}")
    return index


def _by_key(rows: list) -> tuple:
    """Sorts side-table rows by their integer key (first column).

    Returns:
        `(keys, columns)`: the sorted int64 keys, and the other columns as string arrays in
        the same order, so row `i` of every array describes `keys[i]`.
    """
    keys, *columns = (np.array(c) for c in zip(*rows))
    keys = keys.astype(np.int64)
    order = np.argsort(keys)
    if len(np.unique(keys)) != len(keys):
        raise ValueError("duplicate keys in a MovieLens side table")
    return keys[order], [c[order] for c in columns]


def _user_features(users: list) -> tuple:
    """Per user, in `user_id` order: {field: ids}, {field: vocabulary}, ages."""
    keys, (age, gender, occupation, zip_code) = _by_key(users)
    age = age.astype(np.int64)
    vocabularies = {"user_id": keys, "age_bucket": np.array(AGE_BUCKET_NAMES)}
    ids = {
        "user_id": np.arange(len(keys)),
        "age_bucket": np.searchsorted(AGE_BUCKET_STARTS, age, side="right"),
    }
    for field, tokens in (
        ("gender", gender),
        ("occupation", occupation),
        ("zip_prefix", np.array([z[:1] for z in zip_code])),
    ):
        vocabularies[field], ids[field] = _encode(tokens)
    return ids, vocabularies, age


def _item_features(items: list) -> tuple:
    """Per movie, in `item_id` order: {field: ids}, {field: vocabulary}, release years.

    A missing release year is the token "unknown" and the year 0.
    """
    keys, (_title, year, genres) = _by_key(items)
    vocabularies, ids = {"item_id": keys}, {"item_id": np.arange(len(keys))}
    first_genre = np.array([g.split(" ")[0] if g else "unknown" for g in genres])
    for field, tokens in (
        ("release_year", np.where(year == "", "unknown", year)),
        ("first_genre", first_genre),
    ):
        vocabularies[field], ids[field] = _encode(tokens)
    release = np.array([int(y) if y.isdigit() else 0 for y in year])
    return ids, vocabularies, release
