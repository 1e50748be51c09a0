"""cafe_tf: CAFE compact, adaptive and fast embeddings for TensorFlow / Keras."""
import os as _os

# TFRS and our layers are Keras 2 (tf_keras): make tf.keras mean tf_keras
# unless the user already chose, before TensorFlow is first imported.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from cafe_tf import _compat  # noqa: E402,F401  (supported TF and Keras, else a clear error)
from cafe_tf import _ops  # noqa: E402,F401  (loads the op library; clear error if it cannot)
from cafe_tf._autograph import skip_tf_keras_conversion as _skip_tf_keras_conversion  # noqa: E402
from cafe_tf.sketch import HotSketch, SketchConfig  # noqa: E402

_skip_tf_keras_conversion()

__version__ = "0.1.0"
