"""cafe_tf: CAFE compact, adaptive and fast embeddings for TensorFlow / Keras.

The main names are available at the top level:

- layers: `CafeEmbeddingCollection`, `CafeEmbedding` and their `CafeConfig` and
  `FeatureConfig`; the baselines `FullEmbeddingCollection`, `HashEmbeddingCollection`
  and `QREmbeddingCollection`;
- `CafeMigration`, the Keras callback that promotes and demotes during `fit`;
- `HotSketch` and `SketchConfig`, the sketch on its own.

Data readers, models, checkpoints, serving and tuning live in the submodules
`cafe_tf.data`, `cafe_tf.models`, `cafe_tf.checkpoints`, `cafe_tf.serving` and
`cafe_tf.tuning`.

Example:
  >>> import cafe_tf
  >>> layer = cafe_tf.CafeEmbeddingCollection(
  ...     {"user": 1_000_000, "item": 50_000},
  ...     cafe_tf.CafeConfig(embedding_dim=16, compression_ratio=100))
  >>> migration = cafe_tf.CafeMigration(every_n_steps=1)
"""
import os as _os

# TFRS and our layers are Keras 2 (tf_keras): make tf.keras mean tf_keras
# unless the user already chose, before TensorFlow is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from cafe_tf import _compat  # noqa: E402,F401  (supported TF and Keras, else a clear error)
from cafe_tf import _ops  # noqa: E402,F401  (loads the op library; clear error if it cannot)
from cafe_tf._autograph import skip_tf_keras_conversion as _skip_tf_keras_conversion  # noqa: E402
from cafe_tf.callbacks import CafeMigration  # noqa: E402
from cafe_tf.layers import (AdaEmbedEmbeddingCollection, CafeConfig,  # noqa: E402
                            CafeEmbedding, CafeEmbeddingCollection, FeatureConfig,
                            FullEmbeddingCollection, HashEmbeddingCollection,
                            MDEEmbeddingCollection, OfflineSeparationEmbeddingCollection,
                            QREmbeddingCollection, count_frequencies)
from cafe_tf.reallocation import AdaEmbedReallocation  # noqa: E402
from cafe_tf.sketch import HotSketch, SketchConfig  # noqa: E402

_skip_tf_keras_conversion()

__version__ = "0.1.0"

__all__ = [
    "AdaEmbedEmbeddingCollection", "AdaEmbedReallocation", "CafeConfig", "CafeEmbedding",
    "CafeEmbeddingCollection", "CafeMigration", "FeatureConfig", "FullEmbeddingCollection",
    "HashEmbeddingCollection", "HotSketch", "MDEEmbeddingCollection",
    "OfflineSeparationEmbeddingCollection", "QREmbeddingCollection", "SketchConfig",
    "count_frequencies",
]
