"""Keras 3 versions of cafe_tf's embedding layers (TensorFlow backend).

Each class combines the Keras-independent logic its tf_keras namesake uses
(`cafe_tf.layers`) with `Keras3Layer`, the Keras 3 pieces: the same
constructor arguments, call, attributes (`sketch`, `layout`, `memory_bytes()`,
...) and results bit for bit, on the same ops and pure-TF reference. Every
layer is registered as Keras-serializable under the package `cafe_tf`, so a
`.keras` file reloads without `custom_objects`.
"""

import keras
import tensorflow as tf

from cafe_tf.layers.adaembed import AdaEmbedEmbeddingCollectionLogic
from cafe_tf.layers.baselines import (
    FullEmbeddingCollectionLogic,
    HashEmbeddingCollectionLogic,
    QREmbeddingCollectionLogic,
)
from cafe_tf.layers.cafe_embedding import CafeEmbeddingCollectionLogic, CafeEmbeddingLogic
from cafe_tf.layers.mde import MDEEmbeddingCollectionLogic
from cafe_tf.layers.offline import OfflineSeparationEmbeddingCollectionLogic

_register = keras.saving.register_keras_serializable(package="cafe_tf")


class Keras3Layer(keras.layers.Layer):
    """Base of cafe_tf's Keras 3 layers: the Keras-specific pieces the shared logic uses
    (`cafe_tf/layers/keras_base.py` lists them)."""

    _initializers = keras.initializers

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # The layers run custom ops and update variables in place: XLA cannot compile them,
        # so `compile(jit_compile="auto")` (Keras 3's default) must not choose XLA.
        self.supports_jit = False

    def _new_weight(self, name, shape, initializer, dtype=tf.float32, trainable=True):
        # Never autocast: the layers gather float32 rows and write them through their
        # handles, also under a mixed-precision policy (the outputs stay float32).
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            dtype=dtype,
            trainable=trainable,
            autocast=False,
        )

    def _new_state_variable(self, name, shape, dtype, initial_value):
        weight = self.add_weight(
            name=name,
            shape=shape,
            dtype=dtype,
            initializer=lambda *_, **__: initial_value(),
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
        )
        # The tf.Variable it wraps: the sketch reads and updates tf.Variables.
        return weight.value


@_register
class CafeEmbeddingCollection(CafeEmbeddingCollectionLogic, Keras3Layer):
    """Keras 3 version of `cafe_tf.CafeEmbeddingCollection`: CAFE embeddings of several
    categorical features under one memory budget.

    Args, Call args, Returns: as `cafe_tf.CafeEmbeddingCollection` (`features`, `config`,
    `embeddings_initializer`, a Keras 3 initializer; call with {name: ids}, optional
    weights and training; returns {name: float32 [B, embedding_dim]}); **kwargs go to
    `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import CafeConfig, CafeEmbeddingCollection
      >>> inputs = {"user": keras.Input((), dtype="int64", name="user"),
      ...           "item": keras.Input((3,), dtype="int64", name="item")}
      >>> layer = CafeEmbeddingCollection({"user": 1_000_000, "item": 50_000},
      ...                                 CafeConfig(embedding_dim=16, compression_ratio=100))
      >>> outputs = layer(inputs)  # a Keras 3 functional model's inputs
      >>> outputs["item"].shape
      (None, 16)
      >>> layer.sketch.config.num_buckets == layer.layout.num_buckets
      True
    """


@_register
class CafeEmbedding(CafeEmbeddingLogic, CafeEmbeddingCollection):
    """Keras 3 version of `cafe_tf.CafeEmbedding`: CAFE embedding of one feature.

    Args, Call args, Returns: as `cafe_tf.CafeEmbedding` (`vocabulary_size`, `config`,
    `combiner`, `embeddings_initializer`; call with ids, optional weights and training;
    returns float32 [B, embedding_dim]); **kwargs go to `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import CafeConfig, CafeEmbedding
      >>> layer = CafeEmbedding(1_000_000, CafeConfig(embedding_dim=8, compression_ratio=1000))
      >>> layer(tf.constant([[1, 2], [3, 3]])).shape
      TensorShape([2, 8])
    """


@_register
class HashEmbeddingCollection(HashEmbeddingCollectionLogic, Keras3Layer):
    """Keras 3 version of `cafe_tf.HashEmbeddingCollection`: the hashing trick.

    Args, Call args, Returns: as `cafe_tf.HashEmbeddingCollection` (`features`,
    `embedding_dim`, `compression_ratio` or `budget_bytes`, `embeddings_initializer`);
    **kwargs go to `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import HashEmbeddingCollection
      >>> layer = HashEmbeddingCollection({"a": 100, "b": 10}, embedding_dim=4,
      ...                                 compression_ratio=10)
      >>> layer({"a": tf.constant([3, 7]), "b": tf.constant([1, 2])})["a"].shape
      TensorShape([2, 4])
    """


@_register
class FullEmbeddingCollection(FullEmbeddingCollectionLogic, HashEmbeddingCollection):
    """Keras 3 version of `cafe_tf.FullEmbeddingCollection`: one row per vocabulary entry.

    Args, Call args, Returns: as `cafe_tf.FullEmbeddingCollection`; **kwargs go to
    `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import FullEmbeddingCollection
      >>> FullEmbeddingCollection({"a": 100, "b": 10}, embedding_dim=4).memory_bytes()
      1760
    """


@_register
class QREmbeddingCollection(QREmbeddingCollectionLogic, Keras3Layer):
    """Keras 3 version of `cafe_tf.QREmbeddingCollection`: the quotient-remainder trick.

    Args, Call args, Returns: as `cafe_tf.QREmbeddingCollection` (with `operation`);
    **kwargs go to `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import QREmbeddingCollection
      >>> QREmbeddingCollection({"a": 10_000}, embedding_dim=4, compression_ratio=20).table_rows
      {'quotient': (479,), 'remainder': (21,)}
    """


@_register
class MDEEmbeddingCollection(MDEEmbeddingCollectionLogic, Keras3Layer):
    """Keras 3 version of `cafe_tf.MDEEmbeddingCollection`: mixed-dimension embeddings.

    Args, Call args, Returns: as `cafe_tf.MDEEmbeddingCollection` (with `alpha`,
    `projection_initializer`); **kwargs go to `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import MDEEmbeddingCollection
      >>> MDEEmbeddingCollection({"a": 10, "b": 100_000}, embedding_dim=16,
      ...                        compression_ratio=10).dims
      (16, 1)
    """


@_register
class AdaEmbedEmbeddingCollection(AdaEmbedEmbeddingCollectionLogic, Keras3Layer):
    """Keras 3 version of `cafe_tf.AdaEmbedEmbeddingCollection`: importance-ranked rows,
    reallocated by `cafe_tf.keras3.AdaEmbedReallocation`.

    Args, Call args, Returns: as `cafe_tf.AdaEmbedEmbeddingCollection` (with
    `importance_share`, `importance_decay`); **kwargs go to `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import AdaEmbedEmbeddingCollection
      >>> layer = AdaEmbedEmbeddingCollection({"a": 1000}, embedding_dim=4, compression_ratio=10)
      >>> _ = layer({"a": tf.constant([3, 3, 5])}, training=True)
      >>> int(layer.reallocate()["promotions"])  # 3 and 5 get rows
      2
    """


@_register
class OfflineSeparationEmbeddingCollection(OfflineSeparationEmbeddingCollectionLogic, Keras3Layer):
    """Keras 3 version of `cafe_tf.OfflineSeparationEmbeddingCollection`: exclusive rows
    for the ids most frequent in the training data (`cafe_tf.keras3.count_frequencies`).

    Args, Call args, Returns: as `cafe_tf.OfflineSeparationEmbeddingCollection` (with
    `frequencies`, `hot_share`, `exclusive_rows`); **kwargs go to `keras.layers.Layer`.

    Example:
      >>> from cafe_tf.keras3 import OfflineSeparationEmbeddingCollection
      >>> layer = OfflineSeparationEmbeddingCollection(
      ...     {"a": 1000}, embedding_dim=4, compression_ratio=10,
      ...     frequencies={"a": ([7, 3, 9], [50, 20, 1])})
      >>> layer.hot_rows, layer.hashed_rows
      (3, (95,))
    """
