"""cafe_tf: CAFE compact, adaptive and fast embeddings for TensorFlow / Keras.

The top level exports (`__all__`):

- the CAFE layers `CafeEmbeddingCollection` and `CafeEmbedding`, configured by a
  `CafeConfig`, with a `FeatureConfig` per feature;
- `CafeMigration`, the Keras callback that promotes and demotes during `fit`;
- the baselines `FullEmbeddingCollection`, `HashEmbeddingCollection`,
  `QREmbeddingCollection`, `MDEEmbeddingCollection`, `AdaEmbedEmbeddingCollection`
  (with its callback `AdaEmbedReallocation`) and `OfflineSeparationEmbeddingCollection`
  (with `count_frequencies`);
- `HotSketch` and `SketchConfig`, the sketch on its own.

Data readers, models, checkpoints, serving and tuning live in the submodules
`cafe_tf.data`, `cafe_tf.models`, `cafe_tf.checkpoints`, `cafe_tf.serving` and
`cafe_tf.tuning`. `cafe_tf.__version__` is the package's version.

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
from cafe_tf._version import __version__  # noqa: E402,F401
from cafe_tf.callbacks import CafeMigration  # noqa: E402
from cafe_tf.layers import (AdaEmbedEmbeddingCollection, CafeConfig,  # noqa: E402
                            CafeEmbedding, CafeEmbeddingCollection, FeatureConfig,
                            FullEmbeddingCollection, HashEmbeddingCollection,
                            MDEEmbeddingCollection, OfflineSeparationEmbeddingCollection,
                            QREmbeddingCollection, count_frequencies)
from cafe_tf.reallocation import AdaEmbedReallocation  # noqa: E402
from cafe_tf.sketch import HotSketch, SketchConfig  # noqa: E402

_skip_tf_keras_conversion()

__all__ = [
    "AdaEmbedEmbeddingCollection", "AdaEmbedReallocation", "CafeConfig", "CafeEmbedding",
    "CafeEmbeddingCollection", "CafeMigration", "FeatureConfig", "FullEmbeddingCollection",
    "HashEmbeddingCollection", "HotSketch", "MDEEmbeddingCollection",
    "OfflineSeparationEmbeddingCollection", "QREmbeddingCollection", "SketchConfig",
    "count_frequencies",
]
