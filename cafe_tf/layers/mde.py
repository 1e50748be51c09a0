"""Mixed-dimension embeddings (Ginart et al., "Mixed Dimension Embeddings with
Application to Memory-Efficient Recommendation Systems", ISIT 2021).

Each feature f gets a table of width `d_f = D (n_min / n_f)^alpha` (rounded, at
least 1, at most D), where n_f is its vocabulary and n_min the smallest one:
a field of few values is read often per value and keeps the full width, a
field of millions of values gets narrow rows. A learned `[d_f, D]` projection
brings every narrow vector back to D, so the model sees D-wide embeddings.

When the tables of one row per value plus the projections exceed the budget,
rows are hashed as in `HashEmbeddingCollection`: each feature keeps one row
plus a share of the remaining floats in proportion to `n_f d_f`, so every field
is compressed by the same factor. Mixed dimensions alone cannot go below one
float per value (about full bytes / D); hashing is what lets MDE reach the
ratios of the CAFE paper's comparison.
"""

import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf.layers import initializers
from cafe_tf.layers.baselines import EmbeddingCollectionLogic, vocabulary_row
from cafe_tf.layers.keras_base import TfKerasLayer

# Temperature of the MDE authors' reference code (DLRM's --md-temperature).
DEFAULT_ALPHA = 0.3


def mde_dims(vocabulary_sizes, embedding_dim: int, alpha: float) -> tuple[int, ...]:
    """Per-feature widths `round(D (n_min / n_f)^alpha)`, clipped to [1, D]."""
    smallest = min(vocabulary_sizes)
    return tuple(
        max(1, min(embedding_dim, round(embedding_dim * (smallest / n) ** alpha)))
        for n in vocabulary_sizes
    )


class MDEEmbeddingCollectionLogic(EmbeddingCollectionLogic):
    """The Keras-independent logic of `MDEEmbeddingCollection` (a mixin; keras_base)."""

    def __init__(
        self,
        features,
        embedding_dim,
        compression_ratio=None,
        budget_bytes=None,
        embeddings_initializer="uniform",
        alpha: float = DEFAULT_ALPHA,
        projection_initializer="glorot_uniform",
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
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.projection_initializer = self._initializers.get(projection_initializer)
        sizes = list(self._vocabulary_sizes)
        self.budget_bytes = budget_lib.resolve_budget(
            sizes, embedding_dim, compression_ratio, budget_bytes
        )
        self.dims = mde_dims(sizes, embedding_dim, self.alpha)
        self.table_rows = self._plan_rows(sizes)
        self._embeddings, self._projections = [], []
        for i, (rows, dim) in enumerate(zip(self.table_rows, self.dims)):
            self._embeddings.append(
                self._new_weight(
                    f"embeddings_{i}", [rows, dim], initializers.clone(self.embeddings_initializer)
                )
            )
            self._projections.append(
                None
                if dim == embedding_dim
                else self._new_weight(
                    f"projection_{i}",
                    [dim, embedding_dim],
                    initializers.clone(self.projection_initializer),
                )
            )

    def _plan_rows(self, sizes) -> tuple[int, ...]:
        """Rows per feature: the whole vocabulary if it fits, else hashed (module docstring)."""
        floats = self.budget_bytes // budget_lib.FLOAT_BYTES
        projections = sum(d * self.embedding_dim for d in self.dims if d < self.embedding_dim)
        minimum = projections + sum(self.dims)
        if floats < minimum:
            raise self._too_small(
                self.budget_bytes,
                minimum * budget_lib.FLOAT_BYTES,
                f"projections and one row per feature of widths {self.dims}",
            )
        if projections + sum(n * d for n, d in zip(sizes, self.dims)) <= floats:
            return tuple(sizes)
        spare = floats - minimum
        weight = sum(n * d for n, d in zip(sizes, self.dims))
        return tuple(min(n, 1 + spare * n // weight) for n in sizes)

    def _lookup(self, keys, training):
        del training  # the tables change only through their gradients
        vectors = []
        for i, (feature_keys, table, projection) in enumerate(
            zip(keys, self._embeddings, self._projections)
        ):
            narrow = tf.gather(table, vocabulary_row(feature_keys, i, self.table_rows[i]))
            vectors.append(narrow if projection is None else tf.matmul(narrow, projection))
        return vectors

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "projection_initializer": self._initializers.serialize(self.projection_initializer),
            }
        )
        return config


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class MDEEmbeddingCollection(MDEEmbeddingCollectionLogic, TfKerasLayer):
    """Mixed-dimension embeddings with projections to D, hashed to fit a budget.

    Feature f (index i) has a table `embeddings_i` of `rows_f` rows of width
    `d_f` and, where `d_f < D`, a projection `projection_i` of shape
    `[d_f, D]`; id x reads `table[row] @ projection` with row
    `baselines.vocabulary_row(key, i, rows_f)` (its own row when the table
    holds the whole vocabulary and x is in `[0, n_f)`, else by hash). The
    budget pays for tables and projections.

    Args:
      features: {name: vocabulary_size}, or `FeatureConfig`s (or their dicts).
      embedding_dim: D, the width of every output embedding.
      compression_ratio: full table bytes / budget; give this or `budget_bytes`.
      budget_bytes: the bytes tables and projections may hold.
      embeddings_initializer: initializer of the tables.
      alpha: the popularity temperature (0: every width D; larger: narrower rows
        for large fields). Default 0.3, as in the MDE authors' code.
      projection_initializer: initializer of the projections.
      **kwargs: passed to `tf_keras.layers.Layer`.

    Call args, Returns: as `HashEmbeddingCollection`.

    Raises:
      BudgetTooSmallError: the budget cannot hold the projections and one row
        per feature (the message names the minimum).
      ValueError: alpha < 0, or not exactly one of `compression_ratio`/`budget_bytes`.

    Example:

    >>> layer = MDEEmbeddingCollection({"a": 10, "b": 100_000}, embedding_dim=16,
    ...                                compression_ratio=10)
    >>> layer.dims, layer.table_rows
    ((16, 1), (10, 100000))
    """
