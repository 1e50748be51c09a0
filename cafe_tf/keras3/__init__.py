"""cafe_tf for Keras 3 (TensorFlow backend): CAFE and its baselines as Keras 3 layers.

The same classes as at cafe_tf's top level, with the same constructor arguments,
attributes and results (bit for bit, on the same ops), as Keras 3 layers and
callbacks: for Keras 3 models, keras-rs and keras-tuner 1.4. `CafeConfig`,
`FeatureConfig`, `HotSketch` and `SketchConfig` are the very same classes.

Importing it leaves `TF_USE_LEGACY_KERAS` and `tf.keras` as they were: a process
can use Keras 3 with `cafe_tf.keras3` and tf_keras (TFRS) with `cafe_tf` side by
side. Import it as `import cafe_tf.keras3` or `from cafe_tf.keras3 import ...`
(`from cafe_tf import keras3` first imports cafe_tf's tf_keras API, which makes
`tf.keras` mean tf_keras). Keras must run on the TensorFlow backend.

Example:
  >>> import keras
  >>> import cafe_tf.keras3 as cafe
  >>> ids = keras.Input(shape=(), dtype="int64")
  >>> vectors = cafe.CafeEmbedding(1_000_000, cafe.CafeConfig(embedding_dim=8,
  ...                                                         compression_ratio=100))(ids)
  >>> model = keras.Model(ids, keras.layers.Dense(1)(vectors))
  >>> model.compile(optimizer="adam", loss="mse")
  >>> model.fit(dataset, callbacks=[cafe.CafeMigration(every_n_steps=1)])  # doctest: +SKIP
"""

from cafe_tf import _compat

_compat.check_keras3_environment()

# The names of cafe_tf's top level.
from cafe_tf import (
    __all__,
    _ops,
)
from cafe_tf.keras3.callbacks import AdaEmbedReallocation, CafeMigration
from cafe_tf.keras3.layers import (
    AdaEmbedEmbeddingCollection,
    CafeEmbedding,
    CafeEmbeddingCollection,
    FullEmbeddingCollection,
    HashEmbeddingCollection,
    MDEEmbeddingCollection,
    OfflineSeparationEmbeddingCollection,
    QREmbeddingCollection,
)
from cafe_tf.layers.cafe_config import CafeConfig
from cafe_tf.layers.features import FeatureConfig
from cafe_tf.layers.offline import count_frequencies
from cafe_tf.sketch import HotSketch, SketchConfig
