"""Offline separation: exclusive rows for the ids known in advance to be the most frequent.

The oracle CAFE approximates online: the exact frequency of every id is counted
over the training data before training (`count_frequencies`), the most frequent
ids of all features get exclusive rows, and every other id shares a hashed
table of its feature. It needs a pass over the data before training and cannot
follow popularity that changes later; CAFE's sketch finds the hot ids on the
fly.
"""

from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf import hashing
from cafe_tf.data.batch import SPARSE_KEY
from cafe_tf.layers import initializers
from cafe_tf.layers.baselines import _ROW_SEED, EmbeddingCollectionLogic
from cafe_tf.layers.keras_base import TfKerasLayer

# Bytes of bookkeeping per exclusive row: its int64 key in the sorted key index.
KEY_BYTES = 8
# Values gathered per field before they are merged into (ids, counts).
_MERGE_EVERY = 1 << 22

Frequencies = Mapping[str, tuple[np.ndarray, np.ndarray]]


def count_frequencies(
    batches: Iterable, field_names=None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Exact id counts per field over a dataset (a pass before training).

    Args:
      batches: a `tf.data.Dataset` or iterable of cafe_tf batches
        (`(features, label)` with `features["sparse"] = {field: ids}`), or of
        `{field: ids}` dicts. Ids are int.
      field_names: the fields to count; default every field of the first batch.

    Returns:
      {field: (ids, counts)}: int64 distinct ids in increasing order and their
      int64 counts.

    Example:
      >>> frequencies = count_frequencies(data.train_dataset(batch_size=65536))  # doctest: +SKIP
    """
    if isinstance(batches, tf.data.Dataset):
        batches = batches.as_numpy_iterator()
    # Per field: (ids, counts) arrays not merged yet, and how many values they hold.
    parts: dict[str, list] = {}
    held: dict[str, int] = {}

    def merge(field):
        ids = np.concatenate([p[0] for p in parts[field]])
        unique, inverse = np.unique(ids, return_inverse=True)
        counts = np.bincount(
            inverse, weights=np.concatenate([p[1] for p in parts[field]]), minlength=len(unique)
        )
        parts[field] = [(unique.astype(np.int64), counts.astype(np.int64))]
        held[field] = len(unique)

    for batch in batches:
        sparse = batch[0] if isinstance(batch, tuple) else batch
        sparse = sparse.get(SPARSE_KEY, sparse)
        for field in sparse if field_names is None else field_names:
            ids = np.asarray(sparse[field], np.int64).reshape(-1)
            parts.setdefault(field, []).append((ids, np.ones(len(ids), np.int64)))
            held[field] = held.get(field, 0) + len(ids)
            if held[field] >= _MERGE_EVERY:
                merge(field)
    for field in parts:
        merge(field)
    return {field: parts[field][0] for field in parts}


def _as_pairs(frequencies, names) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{field: (int64 ids, int64 counts)} from pairs or {"ids", "counts"} dicts."""
    pairs = {}
    for name in names:
        value = frequencies.get(name)
        if value is None:
            continue
        ids, counts = (value["ids"], value["counts"]) if hasattr(value, "keys") else value
        ids = np.asarray(ids, np.int64).reshape(-1)
        counts = np.asarray(counts, np.int64).reshape(-1)
        if ids.shape != counts.shape:
            raise ValueError(f"frequencies of {name!r}: {ids.size} ids but {counts.size} counts")
        if (counts < 0).any():
            raise ValueError(f"frequencies of {name!r} has negative counts")
        pairs[name] = (ids, counts)
    unknown = sorted(set(frequencies) - set(names))
    if unknown:
        raise ValueError(f"frequencies given for unknown features {unknown} (expected {names})")
    return pairs


def _ranked(pairs, names) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(feature index, id, count) of every counted (feature, id), and the order that ranks
    them: count down, then feature index, then id."""
    features_of = np.concatenate(
        [np.full(len(pairs[n][0]), i, np.int64) for i, n in enumerate(names) if n in pairs] or [[]]
    ).astype(np.int64)
    ids = np.concatenate([pairs[n][0] for n in names if n in pairs] or [[]]).astype(np.int64)
    counts = np.concatenate([pairs[n][1] for n in names if n in pairs] or [[]]).astype(np.int64)
    return features_of, ids, counts, np.lexsort((ids, features_of, -counts))


def top_keys(frequencies: Frequencies, field_names, rows: int) -> np.ndarray:
    """Field keys (`hashing.field_keys`) of the `rows` most frequent (feature, id) pairs,
    sorted: the ids that `OfflineSeparationEmbeddingCollection` gives its `rows`
    exclusive rows (ties: lower feature index, then lower id).

    Args:
      frequencies: {feature: (ids, counts)}, as the layer takes.
      field_names: the features, in the layer's order (the keys' feature index).
      rows: how many; fewer when fewer (feature, id) pairs were counted.

    Returns:
      The sorted int64 keys.

    Example:
      >>> keys = top_keys({"a": ([7, 3, 9], [1, 5, 5])}, ["a"], 2)
      >>> sorted(int(key ^ hashing.field_salt(0)) for key in keys)  # the ids
      [3, 9]
    """
    names = list(field_names)
    features_of, ids, _, order = _ranked(_as_pairs(frequencies, names), names)
    chosen = order[:rows]
    return np.sort(hashing.field_keys_numpy(ids[chosen], features_of[chosen]))


class OfflineSeparationEmbeddingCollectionLogic(EmbeddingCollectionLogic):
    """The Keras-independent logic of `OfflineSeparationEmbeddingCollection` (a mixin; keras_base)."""

    def __init__(
        self,
        features,
        embedding_dim,
        compression_ratio=None,
        budget_bytes=None,
        frequencies: Frequencies | None = None,
        hot_share: float = 0.5,
        embeddings_initializer="uniform",
        exclusive_rows: int | None = None,
        **kwargs,
    ):
        super().__init__(
            features,
            embedding_dim,
            compression_ratio,
            budget_bytes,
            embeddings_initializer,
            **kwargs,
        )
        names = [f.name for f in self._features]
        if frequencies is None:
            raise ValueError(
                "OfflineSeparationEmbeddingCollection needs `frequencies`, the id counts of "
                "the training data counted before training: pass "
                "frequencies=cafe_tf.layers.offline.count_frequencies(train_dataset)"
            )
        if not 0 < hot_share < 1:
            raise ValueError(f"hot_share must be in (0, 1), got {hot_share}")
        self.hot_share = float(hot_share)
        if exclusive_rows is not None and (
            isinstance(exclusive_rows, bool)
            or not isinstance(exclusive_rows, (int, np.integer))
            or exclusive_rows < 1
        ):
            raise ValueError(
                f"exclusive_rows must be a positive int or None, got {exclusive_rows!r}"
            )
        self.exclusive_rows = None if exclusive_rows is None else int(exclusive_rows)
        pairs = _as_pairs(frequencies, names)
        sizes = list(self._vocabulary_sizes)
        self.budget_bytes = budget_lib.resolve_budget(
            sizes, embedding_dim, compression_ratio, budget_bytes
        )
        distinct = sum(len(ids) for ids, _ in pairs.values())
        self.hot_rows, self.hashed_rows = self._plan(sizes, distinct)

        # The top `hot_rows` (feature, id) by count, as field keys.
        features_of, ids, counts, order = _ranked(pairs, names)
        chosen = order[: self.hot_rows]
        total = counts.sum()
        # Share of the counted lookups that exclusive rows serve (1 when nothing was counted).
        self.hot_lookup_share = float(counts[chosen].sum() / total) if total else 1.0
        # (feature, ids, counts) of the chosen ids, for get_config (a tuple: Keras
        # would wrap a dict attribute in a tracking wrapper).
        self._hot_frequencies = tuple(
            (n, ids[chosen][features_of[chosen] == i], counts[chosen][features_of[chosen] == i])
            for i, n in enumerate(names)
            if (features_of[chosen] == i).any()
        )
        hot_keys = np.sort(hashing.field_keys_numpy(ids[chosen], features_of[chosen]))

        self._hot_keys = self._new_weight(
            "hot_keys",
            [self.hot_rows],
            self._initializers.Constant(hot_keys),
            tf.int64,
            trainable=False,
        )
        self._table = self._new_weight(
            "embeddings",
            [self.hot_rows + sum(self.hashed_rows), embedding_dim],
            initializers.clone(self.embeddings_initializer),
        )
        # Row of each feature's hashed part inside the packed table.
        self._offsets = tuple(self.hot_rows + sum(self.hashed_rows[:i]) for i in range(len(names)))

    def _plan(self, sizes, distinct) -> tuple[int, tuple[int, ...]]:
        row_bytes = self._row_bytes()
        per_hot_row = row_bytes + KEY_BYTES
        if self.exclusive_rows is not None:
            minimum = self.exclusive_rows * per_hot_row + len(sizes) * row_bytes
            if self.budget_bytes < minimum:
                raise self._too_small(
                    self.budget_bytes,
                    minimum,
                    f"exclusive_rows={self.exclusive_rows:,} exclusive rows and one hashed row "
                    "per feature",
                )
            hot_rows = min(distinct, self.exclusive_rows)
        else:
            minimum = per_hot_row + len(sizes) * row_bytes
            if self.budget_bytes < minimum:
                raise self._too_small(
                    self.budget_bytes, minimum, "one exclusive row and one hashed row per feature"
                )
            hot_rows = min(
                distinct,
                max(1, int(self.budget_bytes * self.hot_share) // per_hot_row),
                (self.budget_bytes - len(sizes) * row_bytes) // per_hot_row,
            )
        hashed_total = (self.budget_bytes - hot_rows * per_hot_row) // row_bytes
        return hot_rows, budget_lib.split_rows(hashed_total, sizes)

    def _lookup(self, keys, training):
        del training  # the rows change only through their gradients
        rows = []
        for i, feature_keys in enumerate(keys):
            hashed = self._offsets[i] + hashing.hashed_row(
                feature_keys, self.hashed_rows[i], _ROW_SEED
            )
            if self.hot_rows:
                position = tf.minimum(
                    tf.searchsorted(self._hot_keys, feature_keys, out_type=tf.int64),
                    self.hot_rows - 1,
                )
                hit = tf.equal(tf.gather(self._hot_keys, position), feature_keys)
                hashed = tf.where(hit, position, hashed)
            rows.append(hashed)
        vectors = tf.gather(self._table, tf.concat(rows, axis=0))
        return tf.split(vectors, [tf.size(k) for k in keys], num=len(keys))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "frequencies": {
                    name: {"ids": ids.tolist(), "counts": counts.tolist()}
                    for name, ids, counts in self._hot_frequencies
                },
                "hot_share": self.hot_share,
                "exclusive_rows": self.exclusive_rows,
            }
        )
        return config


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class OfflineSeparationEmbeddingCollection(OfflineSeparationEmbeddingCollectionLogic, TfKerasLayer):
    """Exclusive rows for the ids most frequent in the training data, hashing for the rest.

    The budget is split as CAFE's: `hot_share` of it pays for the exclusive
    rows (each costs its D floats and its 8-byte key in a sorted key index),
    the rest for hashed rows, split over features in proportion to their
    vocabulary, at least one each. With `exclusive_rows`, exactly that many
    exclusive rows (fewer only when fewer ids were counted) and the rest of the
    budget for hashed rows. The ids with the largest counts over all
    features (ties: lower feature index, then lower id) get the exclusive rows.
    Id x of feature i reads its exclusive row if its field key is in the
    index, else row `hashing.hashed_row(key, rows_i, seed)` of the feature's
    hashed table. All rows live in one packed table read by one gather.

    Args:
      features: {name: vocabulary_size}, or `FeatureConfig`s (or their dicts).
      embedding_dim: D.
      compression_ratio: full table bytes / budget; give this or `budget_bytes`.
      budget_bytes: the bytes the tables and the key index may hold.
      frequencies: {feature: (ids, counts)} (or {feature: {"ids", "counts"}})
        counted over the training data, e.g. by `count_frequencies`. Required.
        Features left out have no frequent ids. `get_config` keeps only the
        counts of the ids given rows, which rebuild the same layer.
      hot_share: share of the budget for exclusive rows, in (0, 1); unused with
        `exclusive_rows`.
      embeddings_initializer: initializer of the rows.
      exclusive_rows: the number of exclusive rows (e.g. another layer's hot
        rows, to compare the two at equal rows), instead of `hot_share`; capped
        by the number of counted (feature, id) pairs. None: from `hot_share`.
      **kwargs: passed to `tf_keras.layers.Layer`.

    Call args, Returns: as `HashEmbeddingCollection`.

    Raises:
      ValueError: no `frequencies` (the message says how to count them),
        malformed ones, a hot_share outside (0, 1), or an `exclusive_rows` that
        is not a positive int.
      BudgetTooSmallError: the budget cannot hold one exclusive row (or
        `exclusive_rows` of them) and one hashed row per feature (the message
        names the minimum).

    Example:

    >>> layer = OfflineSeparationEmbeddingCollection(
    ...     {"a": 1000}, embedding_dim=4, compression_ratio=10,
    ...     frequencies={"a": ([7, 3, 9], [50, 20, 1])})
    >>> layer.hot_rows, layer.hashed_rows, layer.hot_lookup_share
    (3, (95,), 1.0)
    """
