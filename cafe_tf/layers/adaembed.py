"""AdaEmbed (Lai et al., "AdaEmbed: Adaptive Embedding for Large-Scale
Recommendation Models", OSDI 2023): exclusive rows for the most important ids,
reallocated periodically; every other id reads a zero vector.

The layer counts, while training, how often each id is looked up (its
importance) and keeps a buffer of the most important ids without a row.
`reallocate` (run every few steps by `cafe_tf.reallocation.AdaEmbedReallocation`)
ranks the resident ids and that buffer by importance and gives the rows to
the top ones. AdaEmbed's paper keeps one exact score per id (at least full
bytes / D of memory); here the scores live in a table of counters indexed by
hash, sized to a share of the budget, so the layer fits every compression
ratio (ids colliding in it share a score).
"""

import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf import hashing
from cafe_tf.layers import optimizer_slots
from cafe_tf.layers.baselines import EmbeddingCollectionLogic
from cafe_tf.layers.keras_base import TfKerasLayer, scatter_add, scatter_update

# Salt of the start vectors' columns (start_vectors).
_START_SALT = 0x5EED_0ADA

_INT64 = 8
# Seed of the key -> importance counter hash (distinct from the tables' seed 0).
_IMPORTANCE_SEED = 1
# Marks unused entries of the sorted key index: sorts after every key, and an
# entry only counts below `num_resident`, so a real key of this value is safe.
_NO_KEY = tf.int64.max
# Scalars: the resident and candidate counts.
_SCALAR_BYTES = 2 * _INT64


class AdaEmbedEmbeddingCollectionLogic(EmbeddingCollectionLogic):
    """The Keras-independent logic of `AdaEmbedEmbeddingCollection` (a mixin; keras_base)."""

    def __init__(
        self,
        features,
        embedding_dim,
        compression_ratio=None,
        budget_bytes=None,
        importance_share: float = 0.3,
        importance_decay: float = 1.0,
        **kwargs,
    ):
        kwargs.pop("embeddings_initializer", None)  # rows always start at zero
        super().__init__(
            features, embedding_dim, compression_ratio, budget_bytes, "zeros", **kwargs
        )
        if not 0 < importance_share < 1:
            raise ValueError(f"importance_share must be in (0, 1), got {importance_share}")
        if not 0 < importance_decay <= 1:
            raise ValueError(f"importance_decay must be in (0, 1], got {importance_decay}")
        self.importance_share = float(importance_share)
        self.importance_decay = float(importance_decay)
        sizes = list(self._vocabulary_sizes)
        self.budget_bytes = budget_lib.resolve_budget(
            sizes, embedding_dim, compression_ratio, budget_bytes
        )
        self.num_counters, self.num_rows = self._plan(sum(sizes))

        def weight(name, shape, dtype, value):
            # tf.Variables (keras_base): the reallocation slices and assigns them.
            return self._new_state_variable(
                name, shape, dtype, lambda: tf.fill(shape, tf.constant(value, dtype))
            )

        self.embeddings = self._new_weight("embeddings", [self.num_rows, embedding_dim], "zeros")
        self.resident_keys = weight("resident_keys", [self.num_rows], tf.int64, _NO_KEY)
        self.resident_rows = weight("resident_rows", [self.num_rows], tf.int64, 0)
        self.num_resident = weight("num_resident", [], tf.int64, 0)
        self.importance = weight("importance", [self.num_counters], tf.float32, 0)
        self.candidate_keys = weight("candidate_keys", [self.num_rows], tf.int64, 0)
        self.num_candidates = weight("num_candidates", [], tf.int64, 0)

    def _plan(self, vocabulary_total):
        per_row = self._row_bytes() + 3 * _INT64
        minimum = _SCALAR_BYTES + budget_lib.FLOAT_BYTES + per_row
        if self.budget_bytes < minimum:
            raise self._too_small(self.budget_bytes, minimum, "one importance counter and one row")
        counters = min(
            vocabulary_total,
            max(1, int(self.budget_bytes * self.importance_share) // budget_lib.FLOAT_BYTES),
        )
        rows = (self.budget_bytes - _SCALAR_BYTES - counters * budget_lib.FLOAT_BYTES) // per_row
        return counters, rows

    def _counter(self, keys):
        return hashing.hashed_row(keys, self.num_counters, _IMPORTANCE_SEED)

    def _resident_row(self, keys):
        """(is resident, row) of each key, from the sorted key index."""
        position = tf.minimum(
            tf.searchsorted(self.resident_keys, keys, out_type=tf.int64), self.num_rows - 1
        )
        hit = tf.logical_and(
            tf.equal(tf.gather(self.resident_keys, position), keys), position < self.num_resident
        )
        return hit, tf.gather(self.resident_rows, position)

    def _lookup(self, keys, training):
        flat = tf.concat(keys, axis=0)
        hit, rows = self._resident_row(flat)
        where = tf.where(hit)
        # Only resident rows are read, so the gradient touches nothing else.
        vectors = tf.scatter_nd(
            where,
            tf.gather(self.embeddings, tf.gather_nd(rows, where)),
            tf.stack([tf.size(flat, out_type=tf.int64), tf.constant(self.embedding_dim, tf.int64)]),
        )
        if training:
            self._count(flat, hit)
        return tf.split(vectors, [tf.size(k) for k in keys], num=len(keys))

    def _count(self, keys, hit):
        """Adds the lookups to importance; keeps the top non-resident keys as candidates."""
        scatter_add(self.importance, self._counter(keys), tf.ones_like(keys, tf.float32))
        fresh, _ = tf.unique(tf.boolean_mask(keys, tf.logical_not(hit)))
        pool, _ = tf.unique(tf.concat([self.candidate_keys[: self.num_candidates], fresh], 0))
        best = self._top(pool, self.num_rows)
        self.candidate_keys.assign(_pad(best, self.num_rows, 0))
        self.num_candidates.assign(tf.size(best, out_type=tf.int64))

    def _top(self, keys, count):
        """The `count` most important of `keys` (ties: earlier first)."""
        scores = tf.gather(self.importance, self._counter(keys))
        _, index = tf.math.top_k(scores, k=tf.minimum(count, tf.size(keys)))
        return tf.gather(keys, index)

    def reallocate(self, optimizer=None) -> dict[str, tf.Tensor]:
        """Gives the rows to the most important of the resident and candidate ids.

        Resident ids come first in the ranking, so they keep their rows on ties.
        Evicted ids read zeros again; each newcomer gets a freed (or never used)
        row, set to its start vector with fresh optimizer slots. Then the candidates are
        cleared and the counters multiplied by `importance_decay`.

        Args:
          optimizer: the model's optimizer, whose slots of reassigned rows are
            reset; None when there is none yet.

        Returns:
          {"promotions": ids given a row, "demotions": ids that lost theirs}, int64.
        """
        residents = self.resident_keys[: self.num_resident]
        rows = self.resident_rows[: self.num_resident]
        pool = tf.concat([residents, self.candidate_keys[: self.num_candidates]], 0)
        scores = tf.gather(self.importance, self._counter(pool))
        _, chosen = tf.math.top_k(scores, k=tf.minimum(self.num_rows, tf.size(pool)))
        chosen = tf.cast(chosen, tf.int64)
        kept = tf.boolean_mask(chosen, chosen < self.num_resident)
        newcomers = tf.boolean_mask(chosen, chosen >= self.num_resident)
        kept_rows = tf.gather(rows, kept)
        used = tf.scatter_nd(kept_rows[:, None], tf.ones_like(kept_rows, tf.bool), [self.num_rows])
        new_rows = tf.where(tf.logical_not(used))[: tf.size(newcomers), 0]
        self._reset_rows(new_rows, tf.gather(pool, newcomers), optimizer)

        keys = tf.concat([tf.gather(residents, kept), tf.gather(pool, newcomers)], 0)
        owners = tf.concat([kept_rows, new_rows], 0)
        order = tf.argsort(keys)
        self.resident_keys.assign(_pad(tf.gather(keys, order), self.num_rows, _NO_KEY))
        self.resident_rows.assign(_pad(tf.gather(owners, order), self.num_rows, 0))
        self.num_resident.assign(tf.size(keys, out_type=tf.int64))
        self.num_candidates.assign(0)
        if self.importance_decay != 1:
            self.importance.assign(self.importance * self.importance_decay)
        promotions = tf.size(newcomers, out_type=tf.int64)
        return {
            "promotions": promotions,
            "demotions": tf.size(residents, out_type=tf.int64) - tf.size(kept, out_type=tf.int64),
        }

    def start_vectors(self, keys):
        """The start of the rows given to `keys` (int64 [n]): float32 [n, D], uniform in
        [-0.05, 0.05), a fixed function of each key (splitmix64 of the key XOR a salt
        per column; 24 bits per value)."""
        salts = tf.constant(
            [
                hashing.as_signed64(hashing.mix64_int(_START_SALT + j))
                for j in range(self.embedding_dim)
            ],
            tf.int64,
        )
        bits = hashing.mix64(
            tf.bitwise.bitwise_xor(tf.cast(keys, tf.int64)[:, None], salts[None, :])
        )
        unit = tf.cast(
            tf.bitwise.right_shift(bits, tf.constant(40, tf.uint64)), tf.float32
        ) / float(1 << 24)
        return (unit - 0.5) * 0.1

    def _reset_rows(self, rows, keys, optimizer):
        zeros = tf.zeros([tf.size(rows), self.embedding_dim])
        scatter_update(self.embeddings, rows, self.start_vectors(keys))
        for slot, initial in optimizer_slots.slots_for(optimizer, self.embeddings):
            scatter_update(slot, rows, zeros + initial)
        average = optimizer_slots.moving_average_for(optimizer, self.embeddings)
        if average is not None:
            scatter_update(average, rows, zeros)

    def resident_share(self) -> float:
        """Share of the rows holding an id."""
        return int(self.num_resident.numpy()) / self.num_rows

    def get_config(self):
        config = super().get_config()
        del config["embeddings_initializer"]
        config.update(
            {"importance_share": self.importance_share, "importance_decay": self.importance_decay}
        )
        return config


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class AdaEmbedEmbeddingCollection(AdaEmbedEmbeddingCollectionLogic, TfKerasLayer):
    """Importance-ranked exclusive rows, reallocated periodically; other ids read zeros.

    State (all counted in `memory_bytes()`): `embeddings`, the K rows; the
    sorted keys of the resident ids and the row of each (`resident_keys`,
    `resident_rows`, 16 bytes per row); `importance`, float32 counters that
    every training lookup of a key increments (slot
    `hashing.hashed_row(key, M, 1)`); and `candidate_keys`, up to K ids
    without a row, the most important seen since the last reallocation.
    `importance_share` of the budget pays for the M counters (at most one per
    vocabulary entry), the rest for rows at `4 D + 24` bytes each (row, index
    entry and candidate slot).

    A row given to an id starts at a small vector fixed by the id (uniform in
    [-0.05, 0.05), like a fresh table's rows; the same on every replica and
    in every run), and its optimizer slots start fresh. A start at zero, the
    vector the id read before, would never train in a model whose only inputs
    are embeddings: DLRM's dot interactions and DCN's crosses of all-zero
    vectors have zero gradients.

    Args:
      features: {name: vocabulary_size}, or `FeatureConfig`s (or their dicts).
      embedding_dim: D.
      compression_ratio: full table bytes / budget; give this or `budget_bytes`.
      budget_bytes: the bytes rows, index, counters and candidates may hold.
      importance_share: share of the budget for the importance counters, in (0, 1).
      importance_decay: factor applied to every counter at each reallocation
        (1: counts accumulate for ever; below 1: recent lookups weigh more).
      **kwargs: passed to `tf_keras.layers.Layer`.

    Call args:
      inputs, weights: as `HashEmbeddingCollection`.
      training: when True, the lookups count towards importance and the
        candidate buffer.

    Returns:
      {feature name: float32 [B, D]}.

    Raises:
      BudgetTooSmallError: the budget cannot hold one counter and one row.
      ValueError: importance_share or importance_decay out of range.

    Example:

    >>> layer = AdaEmbedEmbeddingCollection({"a": 1000}, embedding_dim=4, compression_ratio=10)
    >>> layer.num_rows, layer.num_counters
    (27, 120)
    >>> _ = layer({"a": tf.constant([3, 3, 5])}, training=True)
    >>> layer.reallocate()["promotions"].numpy()   # 3 and 5 get rows
    2
    """


def _pad(values, length, fill):
    """`values` padded with `fill` to `length` entries."""
    return tf.concat(
        [
            values,
            tf.fill([length - tf.size(values, out_type=tf.int64)], tf.cast(fill, values.dtype)),
        ],
        0,
    )
