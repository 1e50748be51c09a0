"""Keras embedding layers: CAFE and the baselines it is compared with.

- `CafeEmbeddingCollection`, `CafeEmbedding`: CAFE under a memory budget, configured
  by a `CafeConfig`;
- `FullEmbeddingCollection`, `HashEmbeddingCollection`, `QREmbeddingCollection`,
  `MDEEmbeddingCollection`, `AdaEmbedEmbeddingCollection`,
  `OfflineSeparationEmbeddingCollection` (with `count_frequencies`): the baselines, with
  the same call interface and budget accounting;
- `FeatureConfig`: one categorical feature (name, vocabulary size, combiner);
- `find_cafe_layers`: the CAFE layers of a model (callbacks, checkpoints and serving use it).

Every layer here is registered as Keras-serializable under the package `cafe_tf`, so
a saved model reloads without `custom_objects`.

Example:
  >>> from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection, HashEmbeddingCollection
  >>> vocabulary = {"user": 1_000_000, "item": 50_000}
  >>> config = CafeConfig(embedding_dim=16, compression_ratio=100)
  >>> cafe = CafeEmbeddingCollection(vocabulary, config)
  >>> hashed = HashEmbeddingCollection(vocabulary, embedding_dim=16, compression_ratio=100)
  >>> cafe.memory_bytes() <= cafe.budget_bytes
  True
"""

from cafe_tf.layers.adaembed import AdaEmbedEmbeddingCollection
from cafe_tf.layers.baselines import (
    FullEmbeddingCollection,
    HashEmbeddingCollection,
    QREmbeddingCollection,
)
from cafe_tf.layers.cafe_config import CafeConfig
from cafe_tf.layers.cafe_embedding import CafeEmbedding, CafeEmbeddingCollection, find_cafe_layers
from cafe_tf.layers.features import FeatureConfig
from cafe_tf.layers.mde import MDEEmbeddingCollection
from cafe_tf.layers.offline import OfflineSeparationEmbeddingCollection, count_frequencies

__all__ = [
    "AdaEmbedEmbeddingCollection",
    "CafeConfig",
    "CafeEmbedding",
    "CafeEmbeddingCollection",
    "FeatureConfig",
    "FullEmbeddingCollection",
    "HashEmbeddingCollection",
    "MDEEmbeddingCollection",
    "OfflineSeparationEmbeddingCollection",
    "QREmbeddingCollection",
    "count_frequencies",
    "find_cafe_layers",
]
