"""The embedding collections CAFE is compared against (the CAFE paper's baselines).

Each collection embeds several categorical features at once, with the
interface of the CAFE layer so that models and benchmarks can swap them:

    layer = HashEmbeddingCollection({"user": 1_000_000, "item": 50_000},
                                    embedding_dim=16, compression_ratio=100)
    out = layer({"user": user_ids, "item": item_ids})   # {"user": [B, 16], "item": [B, 16]}

- `FullEmbeddingCollection`: one row per vocabulary entry (the quality ceiling).
- `HashEmbeddingCollection`: the hashing trick, `ceil(n_f / CR)` rows per feature.
- `QREmbeddingCollection`: the quotient-remainder trick of Shi et al. (KDD 2020).

The other baselines have their own modules: `cafe_tf.layers.mde` (mixed
dimensions), `cafe_tf.layers.adaembed` (AdaEmbed) and `cafe_tf.layers.offline`
(offline separation of hot ids). They share `EmbeddingCollectionLogic`.

Ids are never bounded by the vocabulary sizes: any int64 id (or string) is
valid and is hashed into the feature's rows with the hashing of
`cafe_tf.hashing`, keyed by (feature index, id) like CAFE's own tables. Every
table kind lives in ONE packed variable holding the rows of all features one
after another, and each call reads it with one `tf.gather`, so its gradient is
a `tf.IndexedSlices` over exactly the rows read.
"""

import itertools
import math
from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf import hashing
from cafe_tf.layers import features as features_lib
from cafe_tf.layers import initializers
from cafe_tf.layers import inputs as inputs_lib
from cafe_tf.layers.keras_base import TfKerasLayer, variable_bytes

# Table seed of the id -> row hash of every baseline table. It is fixed, not
# configurable: a checkpoint is only valid with the rows it was trained on.
_ROW_SEED = 0

QR_OPERATIONS = ("mult", "add")


class EmbeddingCollectionLogic:
    """Keras-independent base of every baseline collection (a mixin; keras_base): arguments, input handling, pooling, config.

    A subclass creates its variables in `__init__` (after this constructor) and
    says how the ids of each feature become [N, D] vectors (`_lookup`);
    validation of the inputs, flattening of every input kind, the field keys of
    `cafe_tf.hashing`, pooling with the feature's combiner, `memory_bytes()`
    (every variable the layer holds) and the shared config are done here.
    """

    def __init__(
        self,
        features: features_lib.FeaturesLike,
        embedding_dim: int,
        compression_ratio: float | None = None,
        budget_bytes: int | None = None,
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._features = features_lib.as_feature_configs(features)
        if not isinstance(embedding_dim, int) or embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")
        self.embedding_dim = embedding_dim
        # As given (for get_config); subclasses resolve the budget they use.
        self._compression_ratio = compression_ratio
        self._budget_bytes = budget_bytes
        self.embeddings_initializer = self._initializers.get(embeddings_initializer)

    def _lookup(self, keys: Sequence[tf.Tensor], training) -> Sequence[tf.Tensor]:
        """The [N_i, D] vectors of each feature's [N_i] int64 field keys, in feature order."""
        raise NotImplementedError

    @property
    def features(self) -> tuple[features_lib.FeatureConfig, ...]:
        return self._features

    @property
    def _vocabulary_sizes(self) -> tuple[int, ...]:
        return tuple(f.vocabulary_size for f in self._features)

    def _row_bytes(self) -> int:
        return self.embedding_dim * budget_lib.FLOAT_BYTES

    def _too_small(
        self, budget_bytes: int, minimum_bytes: int, what: str
    ) -> budget_lib.BudgetTooSmallError:
        return budget_lib.BudgetTooSmallError(
            f"budget of {budget_bytes:,} bytes is too small for {type(self).__name__} of "
            f"{len(self._features)} features with embedding_dim={self.embedding_dim}: it needs "
            f"at least {minimum_bytes:,} bytes ({what})"
        )

    def memory_bytes(self) -> int:
        """Bytes of the state this layer holds (the sum of its variables' sizes,
        tables and bookkeeping), never more than `budget_bytes`."""
        return variable_bytes(self.weights)

    # No Python control flow here depends on tensor values, so autograph has
    # nothing to convert; skipping it saves seconds on every first trace.
    @tf.autograph.experimental.do_not_convert
    def call(self, inputs, weights=None, training=None):
        """Embeds and pools every feature.

        Args:
          inputs: {feature name: ids} for every feature of the collection (other
            keys are ignored). Ids of one feature are dense `[B]` or `[B, L]`,
            `tf.RaggedTensor` `[B, None]` or `tf.SparseTensor` `[B, L]`, of any
            integer dtype or string (see `cafe_tf.layers.inputs.flatten`).
          weights: optional {feature name: weights}, of the same structure as that
            feature's ids; features left out weigh 1 per id.
          training: whether the layer may update its bookkeeping (only the
            kinds that keep statistics of the ids use it).

        Returns:
          {feature name: float32 [B, embedding_dim]}, each id's vector pooled per
          example with the feature's combiner.

        Raises:
          TypeError, ValueError: inputs that break the contract of
            `cafe_tf.layers.inputs.check_features` (missing features, weights of
            unknown features) or of `flatten` (id dtypes and shapes).
        """
        inputs_lib.check_features(self.name, [f.name for f in self._features], inputs, weights)
        weights = weights or {}

        flats = [
            inputs_lib.flatten(f.name, inputs[f.name], weights.get(f.name)) for f in self._features
        ]
        vectors = self._lookup(
            [hashing.field_keys(flat.ids, i) for i, flat in enumerate(flats)], training
        )
        return {
            f.name: inputs_lib.pool(vectors[i], flats[i], f.combiner)
            for i, f in enumerate(self._features)
        }

    def _output_shapes(self, input_shape):
        return inputs_lib.output_shapes(
            [f.name for f in self._features], input_shape, self.embedding_dim
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "features": features_lib.features_to_config(self._features),
                "embedding_dim": self.embedding_dim,
                "compression_ratio": self._compression_ratio,
                "budget_bytes": self._budget_bytes,
                "embeddings_initializer": self._initializers.serialize(self.embeddings_initializer),
            }
        )
        return config


class PackedEmbeddingCollectionLogic(EmbeddingCollectionLogic):
    """Base of the hashed baselines: budget planning, packed tables and their lookup.

    A subclass says how many rows each table kind has per feature (`_plan`),
    which row of each table an id reads (`_rows`) and how the rows read for one
    id make its vector (`_combine`). Everything else is shared.
    """

    def __init__(
        self,
        features: features_lib.FeaturesLike,
        embedding_dim: int,
        compression_ratio: float | None = None,
        budget_bytes: int | None = None,
        embeddings_initializer="uniform",
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
        self.budget_bytes, table_rows = self._plan(
            list(self._vocabulary_sizes), compression_ratio, budget_bytes
        )
        self._table_rows = {kind: tuple(rows) for kind, rows in table_rows.items()}
        # Shapes do not depend on the inputs, so the tables are created here:
        # memory_bytes(), checkpoints and optimizers see them before any call.
        self._tables = {}
        self._offsets = {}
        for kind, rows in self._table_rows.items():
            self._tables[kind] = self._new_weight(
                kind, [sum(rows), embedding_dim], initializers.clone(self.embeddings_initializer)
            )
            # Row offset of each feature inside the packed table.
            self._offsets[kind] = tuple(itertools.accumulate(rows[:-1], initial=0))

    # -- subclass hooks -----------------------------------------------------

    def _plan(
        self,
        vocabulary_sizes: Sequence[int],
        compression_ratio: float | None,
        budget_bytes: int | None,
    ) -> tuple[int, dict[str, Sequence[int]]]:
        """Returns (budget in bytes, {table kind: rows per feature}) fitting the budget.

        Raises `BudgetTooSmallError` (via `_too_small`) when the budget cannot hold the minimum.
        """
        raise NotImplementedError

    def _rows(self, feature_index: int, keys: tf.Tensor) -> dict[str, tf.Tensor]:
        """{table kind: int64 row inside the feature's part of that table} per key."""
        raise NotImplementedError

    def _combine(self, vectors: dict[str, tf.Tensor]) -> tf.Tensor:
        """The [N, D] embeddings from the [N, D] rows read from each table kind."""
        (only,) = vectors.values()
        return only

    # -- shared machinery ---------------------------------------------------

    @property
    def table_rows(self) -> dict[str, tuple[int, ...]]:
        """{table kind: rows of each feature}, in feature order."""
        return dict(self._table_rows)

    def _lookup(self, keys, training):
        del training  # these tables change only through their gradients
        rows = [self._rows(i, feature_keys) for i, feature_keys in enumerate(keys)]
        sizes = tf.stack([tf.size(feature_keys) for feature_keys in keys])
        # One gather per packed table for all features: one IndexedSlices
        # gradient per table, touching only the rows read.
        read = {}
        for kind, table in self._tables.items():
            packed_rows = tf.concat(
                [
                    feature_rows[kind] + offset
                    for feature_rows, offset in zip(rows, self._offsets[kind])
                ],
                axis=0,
            )
            read[kind] = tf.split(tf.gather(table, packed_rows), sizes, num=len(keys))
        return [self._combine({kind: read[kind][i] for kind in read}) for i in range(len(keys))]


class HashEmbeddingCollectionLogic(PackedEmbeddingCollectionLogic):
    """The Keras-independent logic of `HashEmbeddingCollection` (a mixin; keras_base)."""

    def _plan(self, vocabulary_sizes, compression_ratio, budget_bytes):
        budget = budget_lib.resolve_budget(
            vocabulary_sizes, self.embedding_dim, compression_ratio, budget_bytes
        )
        if compression_ratio is not None:
            rows = tuple(math.ceil(size / compression_ratio) for size in vocabulary_sizes)
            return sum(rows) * self._row_bytes(), {"embeddings": rows}
        minimum = [1] * len(vocabulary_sizes)
        if budget < sum(minimum) * self._row_bytes():
            raise self._too_small(budget, sum(minimum) * self._row_bytes(), "one row per feature")
        total_rows = budget // self._row_bytes()
        return budget, {
            "embeddings": budget_lib.split_rows(
                total_rows, vocabulary_sizes, minimum, vocabulary_sizes
            )
        }

    def _rows(self, feature_index, keys):
        return {
            "embeddings": hashing.hashed_row(
                keys, self._table_rows["embeddings"][feature_index], _ROW_SEED
            )
        }


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class HashEmbeddingCollection(HashEmbeddingCollectionLogic, TfKerasLayer):
    """The hashing trick: each feature's ids share a small table by hash.

    Feature f (index i) gets `rows_f` rows and id x reads row
    `hashing.hashed_row(hashing.field_keys(x, i), rows_f, seed)`. With a
    compression ratio CR, `rows_f = ceil(n_f / CR)` as in the paper, and the
    budget is those rows (it exceeds `full bytes / CR` by less than one row per
    feature). With `budget_bytes`, each feature gets one row plus a share of
    the remaining rows in proportion to its vocabulary (never more rows than
    its vocabulary), within the budget.

    Args:
      features: {name: vocabulary_size}, or `FeatureConfig`s (or their dicts).
        Vocabulary sizes size the tables; ids are not bounded by them.
      embedding_dim: D, the width of every embedding.
      compression_ratio: full table bytes / budget; give this or `budget_bytes`.
      budget_bytes: the bytes the tables may hold; give this or `compression_ratio`.
      embeddings_initializer: initializer of the table(s).
      **kwargs: passed to `tf_keras.layers.Layer`.

    Call args:
      inputs: {feature name: ids}; see `call`.
      weights: optional {feature name: per-id weights}, same structure as the ids.
      training: accepted for interface parity with the CAFE layer; unused.

    Returns:
      {feature name: float32 [B, D]}.

    Raises:
      ValueError: a budget smaller than one row per feature (the message names
        the minimum), or not exactly one of `compression_ratio`/`budget_bytes`.

    Example:

    >>> layer = HashEmbeddingCollection({"a": 100, "b": 10}, embedding_dim=4,
    ...                                 compression_ratio=10)
    >>> layer.table_rows
    {'embeddings': (10, 1)}
    >>> out = layer({"a": tf.constant([3, 7]), "b": tf.constant([[1, 2], [5, 5]])})
    >>> out["b"].shape
    TensorShape([2, 4])
    """


class FullEmbeddingCollectionLogic(HashEmbeddingCollectionLogic):
    """The Keras-independent logic of `FullEmbeddingCollection` (a mixin; keras_base)."""

    def _plan(self, vocabulary_sizes, compression_ratio, budget_bytes):
        full = budget_lib.full_table_bytes(vocabulary_sizes, self.embedding_dim)
        budget = full
        if compression_ratio is not None or budget_bytes is not None:
            budget = budget_lib.resolve_budget(
                vocabulary_sizes, self.embedding_dim, compression_ratio, budget_bytes
            )
        if budget < full:
            raise self._too_small(budget, full, "one row per vocabulary entry")
        return budget, {"embeddings": tuple(vocabulary_sizes)}

    def _rows(self, feature_index, keys):
        return {
            "embeddings": vocabulary_row(
                keys, feature_index, self._table_rows["embeddings"][feature_index]
            )
        }


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class FullEmbeddingCollection(FullEmbeddingCollectionLogic, HashEmbeddingCollection):
    """One row per vocabulary entry: `n_f` rows for feature f (the quality ceiling).

    An id x in `[0, n_f)` reads row x of its feature (no collision: the true
    quality ceiling for label-encoded ids). Any other id (negative, larger,
    or a fingerprinted string) reads row
    `hashing.hashed_row(hashing.field_keys(x, i), n_f, seed)`, so arbitrary
    int64 ids still work, colliding only by hash.

    Args:
      features: {name: vocabulary_size}, or `FeatureConfig`s (or their dicts).
      embedding_dim: D, the width of every embedding.
      compression_ratio: optional, for interface parity; must be 1.
      budget_bytes: optional, for interface parity; must hold the full tables.
        By default the budget is the full table size.
      embeddings_initializer: initializer of the table.
      **kwargs: passed to `tf_keras.layers.Layer`.

    Call args, Returns: as `HashEmbeddingCollection`.

    Raises:
      ValueError: a budget below the full table size (the message names it).

    Example:

    >>> layer = FullEmbeddingCollection({"a": 100, "b": 10}, embedding_dim=4)
    >>> layer.memory_bytes()
    1760
    """


def vocabulary_row(keys: tf.Tensor, feature_index: int, num_rows: int) -> tf.Tensor:
    """Row of each field key in a table of `num_rows` rows for one feature.

    An id in `[0, num_rows)` reads its own row (no collision for label-encoded
    ids when the table holds the whole vocabulary); any other id reads
    `hashing.hashed_row(key, num_rows, seed)`.
    """
    ids = tf.bitwise.bitwise_xor(keys, hashing.field_salt(feature_index))
    in_range = tf.logical_and(ids >= 0, ids < num_rows)
    return tf.where(in_range, ids, hashing.hashed_row(keys, num_rows, _ROW_SEED))


def _qr_minimum_rows(size: int) -> int:
    """Fewest rows a QR split of `size` ids needs: m + ceil(n / m) at m = isqrt(n)
    (= ceil(2 sqrt(n)))."""
    m = math.isqrt(size)
    return m + -(-size // m)


def _smallest_remainder_rows(size: int, share: int) -> int:
    """Smallest m with m + ceil(size / m) <= share (requires share >= the minimum).

    m + ceil(n / m) is non-increasing on [1, isqrt(n)], hence the bisection;
    the smallest such m leaves the largest quotient table.
    """
    low, high = 1, math.isqrt(size)
    while low < high:
        middle = (low + high) // 2
        if middle + -(-size // middle) <= share:
            high = middle
        else:
            low = middle + 1
    return low


class QREmbeddingCollectionLogic(PackedEmbeddingCollectionLogic):
    """The Keras-independent logic of `QREmbeddingCollection` (a mixin; keras_base)."""

    def __init__(
        self,
        features,
        embedding_dim,
        compression_ratio=None,
        budget_bytes=None,
        embeddings_initializer="uniform",
        operation="mult",
        **kwargs,
    ):
        if operation not in QR_OPERATIONS:
            raise ValueError(f"operation must be one of {QR_OPERATIONS}, got {operation!r}")
        self.operation = operation
        super().__init__(
            features,
            embedding_dim,
            compression_ratio,
            budget_bytes,
            embeddings_initializer,
            **kwargs,
        )

    def _plan(self, vocabulary_sizes, compression_ratio, budget_bytes):
        budget = budget_lib.resolve_budget(
            vocabulary_sizes, self.embedding_dim, compression_ratio, budget_bytes
        )
        minimum = [_qr_minimum_rows(size) for size in vocabulary_sizes]
        if budget < sum(minimum) * self._row_bytes():
            raise self._too_small(
                budget,
                sum(minimum) * self._row_bytes(),
                "ceil(2 sqrt(n)) rows per feature of n ids",
            )
        shares = budget_lib.split_rows(
            budget // self._row_bytes(),
            vocabulary_sizes,
            minimum,
            [size + 1 for size in vocabulary_sizes],
        )
        remainder = tuple(
            _smallest_remainder_rows(size, share) for size, share in zip(vocabulary_sizes, shares)
        )
        quotient = tuple(share - m for share, m in zip(shares, remainder))
        return budget, {"quotient": quotient, "remainder": remainder}

    def _rows(self, feature_index, keys):
        m = self._table_rows["remainder"][feature_index]
        q = self._table_rows["quotient"][feature_index]
        hashed = hashing.hashed_row(keys, m * q, _ROW_SEED)
        return {"quotient": hashed // m, "remainder": hashed % m}

    def _combine(self, vectors):
        if self.operation == "mult":
            return vectors["quotient"] * vectors["remainder"]
        return vectors["quotient"] + vectors["remainder"]

    def get_config(self):
        config = super().get_config()
        config["operation"] = self.operation
        return config


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class QREmbeddingCollection(QREmbeddingCollectionLogic, TfKerasLayer):
    """The quotient-remainder trick (Shi et al., KDD 2020).

    Feature f (index i) has a remainder table of m_f rows and a quotient table
    of q_f rows. Id x is first hashed into `[0, m_f q_f)`,
    `h = hashing.hashed_row(hashing.field_keys(x, i), m_f * q_f, seed)`, so the
    trick applies to arbitrary int64 ids; it then reads quotient row `h // m_f`
    and remainder row `h % m_f`, combined by elementwise product ("mult") or
    sum ("add"). Every h gets a distinct (quotient, remainder) pair.

    The budget is split over features: each gets its minimum of
    `ceil(2 sqrt(n_f))` rows plus a share of the rest in proportion to its
    vocabulary. Within its share S_f, a feature takes the smallest m_f with
    `m_f + ceil(n_f / m_f) <= S_f` (m_f is then about the compression ratio,
    the "collisions" parameter of Shi et al.'s DLRM code) and gives the rest
    to the quotient table, `q_f = S_f - m_f >= ceil(n_f / m_f)`: the whole share
    is used, and the hash range `m_f q_f` covers the vocabulary. A share of
    `n_f + 1` rows or more gives m_f = 1: a full table (times a learned scale).

    With "mult", each vector is a product of two initial draws: consider an
    initializer wider than the default `uniform` (+-0.05).

    Args:
      features: {name: vocabulary_size}, or `FeatureConfig`s (or their dicts).
      embedding_dim: D, the width of every embedding.
      compression_ratio: full table bytes / budget; give this or `budget_bytes`.
      budget_bytes: the bytes the tables may hold; give this or `compression_ratio`.
      embeddings_initializer: initializer of both tables.
      operation: "mult" (default) or "add", how the two rows combine. (Named as
        in the reference code; `FeatureConfig.combiner` is the pooling.)
      **kwargs: passed to `tf_keras.layers.Layer`.

    Call args, Returns: as `HashEmbeddingCollection`.

    Raises:
      ValueError: a budget below the sum of the features' minimum rows (the
        message names it), an unknown operation, or not exactly one of
        `compression_ratio`/`budget_bytes`.

    Example:

    >>> layer = QREmbeddingCollection({"a": 10_000}, embedding_dim=4, compression_ratio=20)
    >>> layer.table_rows   # the 500 rows of the budget; 21 * 479 >= 10000 hashed values
    {'quotient': (479,), 'remainder': (21,)}
    """
