"""DLRM and DCN click-through-rate models built from TFRS parts.

Both take any embedding collection (a layer mapping {name: ids} to
{name: [B, D]}: CAFE or a baseline of `cafe_tf.layers.baselines`), train with
`model.fit` and report `auc` and `logloss` from `model.evaluate`.

Batches are `(features, label)` or `(features, label, sample_weight)` with
`features = {"dense": float32 [B, n_dense], "sparse": {name: ids}}` and
`label` float32 [B, 1] of 0/1 clicks. The models output logits [B, 1].
With no dense fields (`n_dense` = 0, as in logs like Avazu or KDD12) the models
use the embeddings alone: no layer multiplies a zero-width input, which some
CPUs' oneDNN kernels cannot do (they abort the process).
Dense features must be finite: a batch holding NaN or inf fails with an
`InvalidArgumentError` that names the value's place, before it changes any state.
"""

import numbers
from collections.abc import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras


def check_finite_dense(dense: tf.Tensor) -> list[tf.Operation]:
    """The op that fails with `InvalidArgumentError` if `dense` holds NaN or inf, as a
    list for `tf.control_dependencies` (empty for a zero-width `dense`: nothing reads it).

    The message gives the first such value and its index `[example, column]` in the
    batch. A NaN input would turn the loss, every gradient and (through CAFE's gradient
    importance) the sketch's scores into NaN without an error: the models refuse it.
    """
    dense = tf.convert_to_tensor(dense)
    if dense.shape.rank == 2 and dense.shape[-1] == 0:
        return []
    finite = tf.math.is_finite(dense)
    # The first bad value and its index (zeros where there is none; then nothing fails).
    index = tf.concat([tf.where(~finite), tf.zeros([1, tf.rank(dense)], tf.int64)], 0)[0]
    value = tf.concat([tf.boolean_mask(dense, ~finite), tf.zeros([1], dense.dtype)], 0)[0]
    message = tf.strings.join(
        [
            "dense features hold NaN or inf: ",
            tf.strings.as_string(value),
            " at [",
            tf.strings.reduce_join(tf.strings.as_string(index), separator=", "),
            "] of the batch (clean or impute the data before training)",
        ]
    )
    return [tf.debugging.Assert(tf.reduce_all(finite), [message], summarize=1)]


def _widths(name: str, units) -> tuple:
    """`units` as a tuple, checked: a zero width would feed a matmul a zero-width input."""
    units = tuple(units)
    if not all(isinstance(u, numbers.Integral) and u > 0 for u in units):
        raise ValueError(f"{name} must be positive ints, got {units}")
    return tuple(int(u) for u in units)


class _CTRModel(tfrs.models.Model):
    """Shared embedding lookup, task and loss of the CTR models.

    The loss is a per-example binary cross-entropy averaged with
    `tf.nn.compute_average_loss`: the recipe that trains under
    MirroredStrategy exactly as on one device (docs/distributed.md); a task
    loss that reduces by itself is rejected there or averages per replica.
    """

    def __init__(
        self,
        embedding_layer: tf_keras.layers.Layer,
        global_batch_size: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.embedding_layer = embedding_layer
        self.global_batch_size = global_batch_size
        self.task = tfrs.tasks.Ranking(
            loss=tf_keras.losses.BinaryCrossentropy(
                from_logits=True, reduction=tf_keras.losses.Reduction.NONE
            ),
            metrics=[
                tf_keras.metrics.AUC(name="auc", from_logits=True),
                tf_keras.metrics.BinaryCrossentropy(name="logloss", from_logits=True),
            ],
        )

    def _logits(self, dense: tf.Tensor | None, embeddings: Sequence[tf.Tensor]) -> tf.Tensor:
        """[B, 1] logits from dense features [B, n_dense] (None when n_dense is 0) and
        [B, D] embeddings."""
        raise NotImplementedError

    def call(self, features, training=None):
        dense = tf.convert_to_tensor(features["dense"])
        if dense.shape.rank != 2 or dense.shape[-1] is None:
            raise ValueError(
                f'features["dense"] must be [B, n_dense] with n_dense known, '
                f"got shape {dense.shape}"
            )
        # Everything else of the step waits for the check: a batch with NaN or inf stops
        # training before it changes any state (sketch, counters, weights, optimizer).
        with tf.control_dependencies(check_finite_dense(dense)):
            # `training` goes to the embedding layer explicitly: CAFE updates its
            # sketch only when training.
            embeddings = self.embedding_layer(features["sparse"], training=training)
            # Sorted by name: the layout seen by the layers after does not depend
            # on the order of a dict.
            return self._logits(
                tf.identity(dense) if dense.shape[-1] else None,
                [embeddings[name] for name in sorted(embeddings)],
            )

    def train_step(self, inputs):
        # `call` checks too, but the optimizer's step counter does not wait for it: a
        # failing batch would still count as a step.
        with tf.control_dependencies(check_finite_dense(inputs[0]["dense"])):
            return super().train_step(inputs)

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        features, labels, *sample_weight = inputs
        per_example = self.task(
            labels=labels,
            predictions=self(features, training=training),
            sample_weight=sample_weight[0] if sample_weight else None,
        )
        count = self.global_batch_size
        if count is None:
            # The global batch at hand, summed over replicas: right for a short last
            # batch split unevenly too (each replica's own size times replicas is not).
            count = tf.shape(per_example)[0]
            context = tf.distribute.get_replica_context()
            if context is not None and context.num_replicas_in_sync > 1:
                count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
        return tf.nn.compute_average_loss(per_example, global_batch_size=count)

    def get_config(self):
        return {
            "name": self.name,
            "embedding_layer": tf_keras.layers.serialize(self.embedding_layer),
            "global_batch_size": self.global_batch_size,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["embedding_layer"] = tf_keras.layers.deserialize(
            config["embedding_layer"], custom_objects=custom_objects
        )
        return cls(**config)


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class DLRM(_CTRModel):
    """DLRM (Naumov et al. 2019): dot interactions of embeddings and dense features.

    The bottom MLP maps the dense features to one D-wide vector; the pairwise
    dot products of it and the embeddings (`tfrs.layers.feature_interaction.
    DotInteraction`), next to the bottom output, feed the top MLP, which ends
    in one logit. Without dense fields (`n_dense` = 0) there is no bottom MLP:
    the pairwise dot products of the embeddings alone feed the top MLP, which
    needs at least two embedded features.

    Args:
      embedding_layer: embedding collection, {name: ids} -> {name: [B, D]}.
      embedding_dim: D; by default `embedding_layer.embedding_dim`.
      bottom_units: hidden widths of the bottom MLP (a final layer of D units
        with ReLU is appended), as DLRM's Criteo setting "13-512-256-64-D".
      top_units: hidden widths of the top MLP (a final 1-unit logit layer is
        appended).
      global_batch_size: divisor of the summed per-example loss; None (default)
        is the batch at hand times the replicas in sync. Give it under a
        distribution strategy whose last batch is short.
      **kwargs: passed to `tf_keras.Model` (e.g. `name`).

    Call args:
      features: {"dense": float32 [B, n_dense], "sparse": {name: ids}}.
      training: passed to the embedding layer.

    Returns:
      Logits, float32 [B, 1].

    Raises:
      ValueError: a width not a positive int; at call, dense features of unknown
        width, or no dense features and fewer than two embedded features.

    Example:

    ```python
    embeddings = HashEmbeddingCollection({"user": 1000, "item": 100},
                                         embedding_dim=8, compression_ratio=10)
    model = DLRM(embeddings, bottom_units=(32,), top_units=(32,))
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01))
    model.fit(train_dataset, epochs=2)  # batches of (features, label)
    model.evaluate(test_dataset, return_dict=True)  # {"auc": ..., "logloss": ..., ...}
    ```
    """

    def __init__(
        self,
        embedding_layer: tf_keras.layers.Layer,
        embedding_dim: int | None = None,
        bottom_units: Sequence[int] = (512, 256, 64),
        top_units: Sequence[int] = (512, 256),
        global_batch_size: int | None = None,
        **kwargs,
    ):
        super().__init__(embedding_layer, global_batch_size, **kwargs)
        if embedding_dim is None:
            embedding_dim = getattr(embedding_layer, "embedding_dim", None)
            if embedding_dim is None:
                raise ValueError(
                    "give embedding_dim: the embedding layer has no `embedding_dim` attribute"
                )
        self.embedding_dim = _widths("embedding_dim", [embedding_dim])[0]
        self.bottom_units = _widths("bottom_units", bottom_units)
        self.top_units = _widths("top_units", top_units)
        self.bottom_mlp = tfrs.layers.blocks.MLP(
            list(self.bottom_units) + [embedding_dim], final_activation="relu"
        )
        self.interaction = tfrs.layers.feature_interaction.DotInteraction()
        self.top_mlp = tfrs.layers.blocks.MLP(list(self.top_units) + [1])

    def _logits(self, dense, embeddings):
        if dense is None:
            if len(embeddings) < 2:
                raise ValueError(
                    "DLRM without dense features needs at least two embedded "
                    f"features to interact, got {len(embeddings)}"
                )
            return self.top_mlp(self.interaction(embeddings))
        bottom = self.bottom_mlp(dense)
        interactions = self.interaction([bottom] + embeddings)
        return self.top_mlp(tf.concat([bottom, interactions], axis=1))

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_dim": self.embedding_dim,
            "bottom_units": self.bottom_units,
            "top_units": self.top_units,
        }


@tf_keras.utils.register_keras_serializable(package="cafe_tf")
class DCN(_CTRModel):
    """DCN-v2 (Wang et al. 2021), stacked: cross layers, then a deep MLP.

    x0 = concat(dense features, embeddings) (the embeddings alone without dense
    fields); x_{l+1} = x0 * (W x_l + b) + x_l by `tfrs.layers.dcn.Cross`; the deep
    MLP on the last x ends in one logit.

    Args:
      embedding_layer: embedding collection, {name: ids} -> {name: [B, D]}.
      num_cross_layers: how many cross layers.
      projection_dim: rank of the low-rank cross kernels; None for full rank.
      deep_units: hidden widths of the deep MLP (a final 1-unit logit layer is
        appended; empty gives a linear logit on the crossed features).
      global_batch_size: see `DLRM`.
      **kwargs: passed to `tf_keras.Model` (e.g. `name`).

    Call args, Returns, Example: as `DLRM`. Raises: as `DLRM`, but one embedded feature
    without dense features is enough.
    """

    def __init__(
        self,
        embedding_layer: tf_keras.layers.Layer,
        num_cross_layers: int = 3,
        projection_dim: int | None = None,
        deep_units: Sequence[int] = (512, 256),
        global_batch_size: int | None = None,
        **kwargs,
    ):
        super().__init__(embedding_layer, global_batch_size, **kwargs)
        self.num_cross_layers = num_cross_layers
        self.projection_dim = (
            None if projection_dim is None else _widths("projection_dim", [projection_dim])[0]
        )
        self.deep_units = _widths("deep_units", deep_units)
        self.cross_layers = [
            tfrs.layers.dcn.Cross(projection_dim=projection_dim) for _ in range(num_cross_layers)
        ]
        self.deep_mlp = tfrs.layers.blocks.MLP(list(self.deep_units) + [1])

    def _logits(self, dense, embeddings):
        x0 = tf.concat(([] if dense is None else [dense]) + embeddings, axis=1)
        x = x0
        for cross in self.cross_layers:
            x = cross(x0, x)
        return self.deep_mlp(x)

    def get_config(self):
        return {
            **super().get_config(),
            "num_cross_layers": self.num_cross_layers,
            "projection_dim": self.projection_dim,
            "deep_units": self.deep_units,
        }
