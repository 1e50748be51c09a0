"""cafe_tf's top-level tf_keras API; importing it makes tf.keras mean tf_keras.

`import cafe_tf` imports this module, unless Python imports cafe_tf only as the
parent of `cafe_tf.keras3`: then its names load on first use (cafe_tf/__init__.py).
"""

import os

# TFRS and our tf_keras layers are Keras 2: make tf.keras mean tf_keras unless the
# user already chose, before tf.keras is first used.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from cafe_tf import _compat

_compat.check_tf_keras_environment()

from cafe_tf import _ops  # noqa: E402,F401  (loads the op library; clear error if it cannot)
from cafe_tf._autograph import skip_tf_keras_conversion  # noqa: E402
from cafe_tf.callbacks import CafeMigration  # noqa: E402
from cafe_tf.layers import (
    AdaEmbedEmbeddingCollection,
    CafeConfig,
    CafeEmbedding,
    CafeEmbeddingCollection,
    FeatureConfig,
    FullEmbeddingCollection,
    HashEmbeddingCollection,
    MDEEmbeddingCollection,
    OfflineSeparationEmbeddingCollection,
    QREmbeddingCollection,
    count_frequencies,
)
from cafe_tf.reallocation import AdaEmbedReallocation  # noqa: E402
from cafe_tf.sketch import HotSketch, SketchConfig  # noqa: E402

skip_tf_keras_conversion()
