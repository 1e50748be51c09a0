"""CAFE embedding layers: hot rows from a HotSketch, hashed rows for the rest."""

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf.layers import initializers, optimizer_slots, routing
from cafe_tf.layers import inputs as inputs_lib
from cafe_tf.layers import occurrences as occurrences_lib
from cafe_tf.layers.cafe_config import CafeConfig
from cafe_tf.layers.features import (
    FeatureConfig,
    FeaturesLike,
    as_feature_configs,
    features_to_config,
)
from cafe_tf.layers.inputs import IdsLike
from cafe_tf.layers.keras_base import (
    TfKerasLayer,
    assign_add,
    find_layers,
    scatter_update,
    variable_bytes,
)
from cafe_tf.layers.layout_record import LayerLayoutRecord
from cafe_tf.layers.routing import HASHED_SEED, MEDIUM_SEED
from cafe_tf.sketch import HotSketch, SketchConfig

# Keeps the gradient-importance normalisation finite when every gradient is 0.
NORMALISATION_EPS = 1e-12


def _multi_replica_context() -> tf.distribute.ReplicaContext | None:
    """The replica context when several replicas run in sync, else None."""
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def _all_gather_vectors(
    context: tf.distribute.ReplicaContext, tensors: Sequence[tf.Tensor]
) -> list[tf.Tensor]:
    """All-gathers this replica's equal-length vectors along axis 0, in replica order.

    Lengths may differ between replicas and be 0. TF 2.16's collective
    all_gather pads every replica to the longest length and crashes (segfault in
    RingGatherer) when that length is 0 on every replica, so pad to >= 1 here
    and drop the padding after the gather.
    """
    n = tf.shape(tensors[0])[0]
    lengths = context.all_gather(tf.reshape(n, [1]), axis=0)
    width = tf.maximum(tf.reduce_max(lengths), 1)
    keep = tf.reshape(tf.sequence_mask(lengths, width), [-1])
    return [
        tf.boolean_mask(
            context.all_gather(tf.concat([t, tf.zeros([width - n], t.dtype)], 0), axis=0), keep
        )
        for t in tensors
    ]


def _sparse_read(table: tf.Variable, indices: tf.Tensor) -> tf.Tensor:
    """`tf.gather(table, indices)`; under several replicas the IndexedSlices gradient
    also holds row 0 with a zero gradient, so it is never empty on every replica
    (TF 2.16's all-reduce of IndexedSlices that are empty everywhere segfaults)."""
    if _multi_replica_context() is None:
        return tf.gather(table, indices)
    return tf.gather(table, tf.concat([indices, tf.zeros([1], indices.dtype)], 0))[:-1]


class CafeEmbeddingCollectionLogic:
    """The Keras-independent logic of `CafeEmbeddingCollection` (a mixin; keras_base)."""

    def __init__(
        self,
        features: FeaturesLike,
        config: CafeConfig | dict[str, Any],
        embeddings_initializer: Any = "uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.features = as_feature_configs(features)
        self.config = config if isinstance(config, CafeConfig) else CafeConfig(**config)
        vocabulary = [f.vocabulary_size for f in self.features]
        resolved = self.config.resolved(vocabulary)
        self.budget_bytes = resolved.budget_bytes
        self.layout = resolved.plan(vocabulary)
        # False also where the planner gives multi-level hashing no medium level.
        self.multi_level = resolved.multi_level
        self.sketch_config = SketchConfig(
            num_buckets=self.layout.num_buckets,
            hot_rows=self.layout.hot_rows,
            slots_per_bucket=self.layout.slots_per_bucket,
            threshold=resolved.threshold,
            decay_rate=resolved.decay_rate,
            demote_threshold=resolved.demote_threshold,
            medium_threshold=(
                resolved.medium_threshold_ratio * resolved.threshold
                if resolved.multi_level
                else None
            ),
            decay_rule=resolved.decay_rule,
            decay_period=resolved.decay_period,
            decay_half_life=resolved.decay_half_life if resolved.decay_rule == "mass" else None,
            swap_margin=resolved.swap_margin,
            replacement=resolved.replacement,
            second_sighting=resolved.second_sighting,
            fill_free_rows=resolved.fill_free_rows,
            yield_threshold=budget_lib.planned_yield_threshold(
                resolved.threshold, resolved.fill_free_rows, resolved.swap_margin is not None
            ),
            num_features=len(self.features),
        )
        self.embeddings_initializer = self._initializers.get(embeddings_initializer)
        # When True, lookups use only stock TF ops (for a SavedModel served
        # without cafe_tf's op library); same results.
        self.pure_tf_lookups = False
        # Row offsets of each feature inside the packed hashed tables.
        self._hashed_offsets = list(self.layout.hashed_offsets)
        self._medium_offsets = list(self.layout.medium_offsets)

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    # ---- state ------------------------------------------------------------------------
    def build(self, input_shape: Any = None) -> None:
        dim = self.config.embedding_dim
        # Hot rows are overwritten at promotion, so their initial value is never read.
        self.hot_table = self._new_weight("hot_table", [self.layout.hot_rows, dim], "zeros")
        self.hashed_tables = self._new_weight(
            "hashed_tables",
            [self.layout.hashed_table_rows, dim],
            initializers.clone(self.embeddings_initializer),
        )
        self.medium_tables = None
        if self.multi_level:
            self.medium_tables = self._new_weight(
                "medium_tables",
                [self.layout.medium_table_rows, dim],
                initializers.clone(self.embeddings_initializer),
            )
        self.sketch = HotSketch(
            self.sketch_config,
            backend=self.config.backend,
            variable_creator=self._new_state_variable,
            name=f"{self.name}_sketch",
        )
        counter = lambda name: self._new_state_variable(  # noqa: E731
            name, [], tf.int64, lambda: tf.zeros([], tf.int64)
        )
        self.promotions = counter("promotions")
        self.demotions = counter("demotions")
        self.hot_lookups = counter("hot_lookups")
        self.lookups = counter("lookups")
        # (key, feature) pairs all-gathered for the importance exchange (0 on one device).
        self.exchanged_pairs = counter("exchanged_pairs")
        self.layout_record = LayerLayoutRecord(self)
        super().build(input_shape)

    def memory_bytes(self) -> int:
        """Bytes of every variable the layer holds (tables, sketch, bookkeeping)."""
        if not self.built:
            return self.layout.bytes["total"]
        return variable_bytes(self.weights)

    # ---- lookup -----------------------------------------------------------------------
    def _hashed_indices(
        self, fingerprints: tf.Tensor, feature_index: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Rows of each key, given by its fingerprint and feature index, in the packed
        hashed (and medium) tables."""
        hashed = routing.packed_rows(
            fingerprints, feature_index, self._hashed_offsets, self.layout.hashed_rows, HASHED_SEED
        )
        medium = (
            routing.packed_rows(
                fingerprints,
                feature_index,
                self._medium_offsets,
                self.layout.medium_rows,
                MEDIUM_SEED,
            )
            if self.multi_level
            else None
        )
        return hashed, medium

    @property
    def _fused(self) -> bool:
        """Whether lookups run the op library's fused ops (else their stock-TF twins)."""
        return self.sketch.backend == "op" and not self.pure_tf_lookups

    def route(self, keys: tf.Tensor, feature_index: tf.Tensor) -> routing.Route:
        """The `routing.Route` of a call's sketch keys [N] and feature indices [N]:
        the fused op, or stock TF ops with `pure_tf_lookups` or without the op library."""
        medium = (self._medium_offsets, self.layout.medium_rows) if self.multi_level else ((), ())
        if self._fused:
            return routing.route_op(
                self.sketch,
                keys,
                feature_index,
                self._hashed_offsets,
                self.layout.hashed_rows,
                *medium,
            )
        return routing.route_reference(
            keys,
            feature_index,
            lambda k: self.sketch.query(k, pure_tf=True),
            self._hashed_offsets,
            self.layout.hashed_rows,
            *medium,
        )

    def _embed(self, route: routing.Route, record_importance: bool = False) -> tf.Tensor:
        """Per-occurrence vectors.

        Each table's distinct rows are read once and expanded by the route's
        indices, so every table's gradient holds distinct rows only. With
        `record_importance`, the backward pass of the hot and hashed rows' expand
        (whose gradient is every occurrence's) also records the occurrences'
        gradient-norm importance."""
        read = tf.concat(
            [
                _sparse_read(self.hot_table, route.read_hot),
                _sparse_read(self.hashed_tables, route.read_hashed),
            ],
            0,
        )
        vectors = occurrences_lib.expand(
            read,
            route.occurrence_index,
            self._fused,
            (lambda sums, occurrences: self._record_importance(route, sums, occurrences))
            if record_importance
            else None,
            route.inverse,
            tf.size(route.keys),
        )
        if self.medium_tables is not None:  # index -1 (not medium) reads the zero row
            medium = tf.concat(
                [
                    tf.zeros([1, self.config.embedding_dim]),
                    _sparse_read(self.medium_tables, route.read_medium),
                ],
                0,
            )
            medium_index = tf.cast(tf.cast(route.medium_index, tf.int64) + 1, tf.int32)
            vectors += occurrences_lib.expand(
                medium, tf.gather(medium_index, route.inverse), self._fused
            )
        return vectors

    def call(
        self,
        inputs: Mapping[str, IdsLike],
        weights: Mapping[str, IdsLike] | None = None,
        training: bool | None = None,
    ) -> dict[str, tf.Tensor]:
        inputs_lib.check_features(self.name, [f.name for f in self.features], inputs, weights)
        weights = weights or {}
        flats = [
            inputs_lib.flatten(f.name, inputs[f.name], weights.get(f.name)) for f in self.features
        ]
        keys, feature_index = routing.field_keys([flat.ids for flat in flats], self._fused)
        route = self.route(keys, feature_index)
        by_gradient = self.config.importance == "gradient"
        vectors = self._embed(route, record_importance=bool(training) and by_gradient)
        if training and not by_gradient:
            id_weights = tf.concat(
                [
                    tf.ones_like(flat.ids, tf.float32)
                    if flat.weights is None
                    else tf.cast(flat.weights, tf.float32)
                    for flat in flats
                ],
                0,
            )
            vectors = self._frequency_tap(vectors, route, id_weights)
        per_feature = tf.split(vectors, [tf.size(flat.ids) for flat in flats], 0)
        return {
            f.name: inputs_lib.pool(v, flat, f.combiner)
            for f, v, flat in zip(self.features, per_feature, flats)
        }

    def _output_shapes(self, input_shape):
        return inputs_lib.output_shapes(
            [f.name for f in self.features], input_shape, self.embedding_dim
        )

    # ---- importance -------------------------------------------------------------------
    def _frequency_tap(
        self, vectors: tf.Tensor, route: routing.Route, id_weights: tf.Tensor
    ) -> tf.Tensor:
        """Identity whose backward pass inserts the occurrences' frequency importance
        (|id weight|) into the sketch and counts the call's lookups."""

        @tf.custom_gradient
        def tap(x):
            def backward(dy):
                # Not a control dependency of dy: the rest of the backward pass need not
                # wait for the sketch. tf.function runs every stateful op it traced.
                self._record_importance(
                    route,
                    *occurrences_lib.pair_importance(
                        id_weights[:, None],
                        route.inverse,
                        tf.size(route.keys),
                        norm=False,
                        fused=self._fused,
                    ),
                )
                return tf.identity(dy)

            return tf.identity(x), backward

        return tap(vectors)

    def _record_importance(
        self, route: routing.Route, sums: tf.Tensor, occurrences: tf.Tensor
    ) -> tf.Operation | None:
        """Inserts this call's importance, given summed per distinct (key, feature) pair
        (float64 `sums`, with the pairs' float64 `occurrences`).

        Importance is per occurrence (gradient norm, or |weight|). Each replica
        sums it per distinct pair and normalises the sums with the global
        per-feature totals and counts (an all-reduce), in float64, then rounds
        each pair's value to float32 once; only the pairs cross replicas
        (all-gathered in replica order, so every replica inserts the same batch).
        One device thus inserts round32(S) per pair where N replicas insert the
        float32 sum of round32(S_r) over replicas: equal up to N float32 ulps
        (exactly equal for integer frequency sums below 2^24).
        """
        norm = self.config.importance == "gradient"
        context = _multi_replica_context()
        self._count_lookups(route, occurrences, context)
        if norm:
            stats = tf.math.unsorted_segment_sum(
                tf.stack([sums, occurrences], 1), route.feature_index, len(self.features)
            )
            if context is not None:
                stats = context.all_reduce(tf.distribute.ReduceOp.SUM, stats)
            totals, feature_occurrences = stats[:, 0], stats[:, 1]
            sums = (
                sums
                * tf.gather(feature_occurrences, route.feature_index)
                / (tf.gather(totals, route.feature_index) + NORMALISATION_EPS)
            )
        # The sketch's second sighting counts a key seen twice in one batch as sighted,
        # but it sees each pair once: a pair that occurs more than once here travels
        # with its feature index as -1 - index, and is inserted a second time with importance
        # 0 (same sum, and the sketch sees the repeat).
        # Feature indices in int64 from here: TF runs int32 arithmetic on the host, which
        # on a GPU would copy them there and back (docs/gpu.md).
        repeated = occurrences > 1
        feature_index = tf.cast(route.feature_index, tf.int64)
        exchange = [
            route.keys,
            tf.where(repeated, -1 - feature_index, feature_index),
            tf.cast(sums, tf.float32),
        ]
        if context is not None:
            exchange = _all_gather_vectors(context, exchange)
            assign_add(self.exchanged_pairs, tf.size(exchange[0], tf.int64))
        keys, marked_index, importance = exchange
        repeated = marked_index < 0
        feature_index = tf.where(repeated, -1 - marked_index, marked_index)
        again = tf.where(repeated)[:, 0]  # one data-dependent size (a readback on a GPU)
        keys = tf.concat([keys, tf.gather(keys, again)], 0)
        feature_index = tf.concat([feature_index, tf.gather(feature_index, again)], 0)
        importance = tf.concat([importance, tf.zeros_like(tf.gather(importance, again))], 0)
        return self.sketch.insert(keys, importance, feature_index)

    def _count_lookups(
        self,
        route: routing.Route,
        occurrences: tf.Tensor,
        context: tf.distribute.ReplicaContext | None,
    ) -> None:
        """Adds the call's lookups, and those that read a hot row, to the layer's counters,
        from the per-pair occurrence counts the importance pass makes anyway."""
        # Hot rows come first in the rows read (`_embed`). Counts in float64 are exact
        # below 2**53; int32 arithmetic would run on the host of a GPU (docs/gpu.md).
        hot = tf.cast(route.first_index, tf.int64) < tf.size(route.read_hot, tf.int64)
        counts = tf.stack(
            [
                tf.reduce_sum(tf.where(hot, occurrences, tf.zeros_like(occurrences))),
                tf.reduce_sum(occurrences),
            ]
        )
        if context is not None:  # count the global batch, identically on every replica
            counts = context.all_reduce(tf.distribute.ReduceOp.SUM, counts)
        counts = tf.cast(counts, tf.int64)
        assign_add(self.hot_lookups, counts[0])
        assign_add(self.lookups, counts[1])

    # ---- migration --------------------------------------------------------------------
    def migrate(self, optimizer: Any = None, force_decay: bool = False) -> dict[str, tf.Tensor]:
        """Decay (when due), demote and promote; copy promoted features' vectors.

        A promoted feature's new hot row starts as the vector it reads at its
        score now: its hashed row, plus its medium row with multi-level hashing
        (a score >= k is above the medium threshold; a feature that went from
        cold to hot within one batch read its hashed row alone). The
        optimizer's slots for that row are reset, and its moving average
        (`use_ema=True`) set to the new vector. Demoted features go back to their hashed
        rows (their hot vector is discarded, as in the paper). Runs on each
        replica's own copies, identically, so call it in a replica context
        under a strategy (the `CafeMigration` callback does).

        Args:
          optimizer: the model's optimizer (tf_keras or Keras 3), whose hot-table
            slots are reset.
          force_decay: decay now even if the decay rule does not say so.

        Returns:
          {"promotions", "demotions": int32 counts of this call, "decayed": bool,
           "hot_rows_used": int32 rows in use}.
        """
        result = self.sketch.migrate(force_decay)
        # A key's hashed rows are a function of its fingerprint and feature index, which
        # is all the sketch keeps of it.
        hashed, medium = self._hashed_indices(
            result.promoted_fingerprints, result.promoted_feature_index
        )
        vectors = tf.gather(self.hashed_tables, hashed)
        if self.medium_tables is not None:
            vectors += tf.gather(self.medium_tables, medium)
        rows = result.promoted_rows
        updates = [scatter_update(self.hot_table, rows, vectors)]
        for slot, initial in optimizer_slots.slots_for(optimizer, self.hot_table):
            updates.append(scatter_update(slot, rows, tf.fill(tf.shape(vectors), initial)))
        average = optimizer_slots.moving_average_for(optimizer, self.hot_table)
        if average is not None:
            updates.append(scatter_update(average, rows, vectors))
        promoted = tf.size(rows)
        demoted = tf.size(result.demoted_rows)
        updates += [assign_add(self.promotions, promoted), assign_add(self.demotions, demoted)]
        with tf.control_dependencies(updates):
            used = self.sketch.hot_rows_used()
            return {
                "promotions": tf.identity(promoted),
                "demotions": tf.identity(demoted),
                "decayed": tf.identity(result.decayed),
                "hot_rows_used": used,
            }

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "features": features_to_config(self.features),
                "config": self.config.to_dict(),
                "embeddings_initializer": self._initializers.serialize(self.embeddings_initializer),
            }
        )
        return config


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class CafeEmbeddingCollection(CafeEmbeddingCollectionLogic, TfKerasLayer):
    """Embeddings of several categorical features under one memory budget (CAFE).

    All features share one HotSketch and one hot table: a feature whose
    importance score reaches the threshold gets an exclusive hot row; every
    other feature reads a row of its feature's hashed table (plus a second
    row at the "medium" level with multi-level hashing). Scores are updated
    from inside the layer during training (gradient norms or frequencies),
    and `migrate` (run by the `CafeMigration` callback) promotes and demotes.
    Lookups are unique: a call routes, reads and updates each distinct
    (id, feature) pair and each table row once (docs/scaling.md).

    Args:
      features: {name: vocabulary_size}, or a sequence of `FeatureConfig`.
        Vocabulary sizes size the budget; ids are unbounded int64 (or strings).
      config: a `CafeConfig` (or its dict).
      embeddings_initializer: initializer of the hashed tables.
      **kwargs: passed to `tf_keras.layers.Layer`.

    Call args:
      inputs: {name: ids} for every feature (other keys are ignored), with ids
        dense [B] or [B, L], `tf.RaggedTensor` [B, None] or `tf.SparseTensor`
        [B, L]; any integer dtype or string.
      weights: optional {name: weights} shaped like the ids, for some of the
        features; pooled with the feature's combiner.
      training: the sketch learns importance only when True.

    Returns:
      {name: float32 [B, embedding_dim]}.

    Raises:
      TypeError, ValueError: inputs that break the contract of
        `cafe_tf.layers.inputs.check_features` (missing features, weights of
        unknown features) or of `flatten` (id dtypes and shapes), as every
        collection of cafe_tf does.

    Example:
      >>> layer = CafeEmbeddingCollection({"user": 1_000_000, "item": 50_000},
      ...                                 CafeConfig(embedding_dim=16, compression_ratio=100))
      >>> out = layer({"user": tf.constant([3, 7]), "item": tf.constant([11, 11])})
      >>> out["user"].shape
      TensorShape([2, 16])
      >>> layer.memory_bytes() <= layer.budget_bytes
      True
    """


class CafeEmbeddingLogic(CafeEmbeddingCollectionLogic):
    """The Keras-independent logic of `CafeEmbedding` (a mixin; keras_base)."""

    FEATURE = "ids"

    def __init__(
        self,
        vocabulary_size: int,
        config: CafeConfig | dict[str, Any],
        combiner: str = "sum",
        embeddings_initializer: Any = "uniform",
        **kwargs,
    ):
        kwargs.pop("features", None)
        super().__init__(
            [FeatureConfig(self.FEATURE, vocabulary_size, combiner)],
            config,
            embeddings_initializer,
            **kwargs,
        )

    def call(
        self, inputs: IdsLike, weights: IdsLike | None = None, training: bool | None = None
    ) -> tf.Tensor:
        weights = None if weights is None else {self.FEATURE: weights}
        return super().call({self.FEATURE: inputs}, weights, training)[self.FEATURE]

    def _output_shapes(self, input_shape):
        return super()._output_shapes({self.FEATURE: input_shape})[self.FEATURE]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        feature = config.pop("features")[0]
        config.update(vocabulary_size=feature["vocabulary_size"], combiner=feature["combiner"])
        return config


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class CafeEmbedding(CafeEmbeddingLogic, CafeEmbeddingCollection):
    """CAFE embedding of a single categorical feature.

    Args:
      vocabulary_size: distinct ids expected (sizes the budget; ids are unbounded).
      config: a `CafeConfig` (or its dict).
      combiner: "sum", "mean" or "sqrtn" for multi-id inputs.
      embeddings_initializer: initializer of the hashed table.

    Call args:
      inputs: ids, dense [B] or [B, L], ragged or sparse [B, L]; int or string.
      weights: optional weights shaped like the ids.
      training: the sketch learns importance only when True.

    Returns:
      float32 [B, embedding_dim].

    Example:
      >>> layer = CafeEmbedding(1_000_000, CafeConfig(embedding_dim=8, compression_ratio=1000))
      >>> layer(tf.constant([[1, 2], [3, 3]])).shape
      TensorShape([2, 8])
    """


def find_cafe_layers(root: Any) -> list[CafeEmbeddingCollectionLogic]:
    """Every CAFE layer reachable from `root`, `root` included, each once (tf_keras or
    Keras 3): the one function callbacks, checkpoints, serving and tuning use.

    Args:
      root: a model or layer (nested models and layers included), or any trackable
        holding tf_keras layers, such as a `tf.train.Checkpoint`.

    Example:
      >>> layer = CafeEmbedding(1000, CafeConfig(embedding_dim=4, compression_ratio=10))
      >>> model = tf_keras.Sequential([layer])
      >>> find_cafe_layers(model) == [layer]
      True
    """
    return find_layers(root, CafeEmbeddingCollectionLogic)
