"""Tuning CAFE's budget and knobs of tf_keras models with keras-tuner, under a hard memory cap.

Which keras-tuner. keras-tuner checks models against one Keras per process, chosen when it
is first imported; 1.4.x picks Keras 3 by itself and rejects tf_keras (so TFRS) models.
Importing this module binds keras-tuner to tf_keras: 1.3.x follows `tensorflow.keras`
(tf_keras under the `TF_USE_LEGACY_KERAS=1` that `import cafe_tf` sets), and 1.4.x is first
imported with `sys.modules["keras"]` pointed at tf_keras for that import only
(`cafe_tf._keras_tuner`). So import this module before `keras_tuner`; if keras-tuner was
already imported for Keras 3, it raises ImportError saying so rather than letting every trial
fail. Keras 3 models are tuned by `cafe_tf.keras3.tuning`, in a process of their own.

The cap and the search are those of `cafe_tf._tuning`, shared with `cafe_tf.keras3.tuning`:
`cap_bytes` bounds the bytes held by the model's CAFE layers, enforced before any training
(the space is bounded so that every configuration fits, and a built model over the cap stops
the search with `CapExceededError`).

Example:
  >>> data = SyntheticCriteo(SyntheticCriteoConfig(rows_per_day=20_000, num_days=3))  # doctest: +SKIP
  >>> def build_model(config):  # doctest: +SKIP
  ...     model = DLRM(CafeEmbeddingCollection(data.vocabulary_sizes, config, name="cafe"),
  ...                  embedding_dim=config.embedding_dim)
  ...     model.compile(optimizer=tf_keras.optimizers.Adam(0.01))
  ...     return model
  >>> result = tune(build_model, data.train_dataset(512), data.test_dataset(4096),  # doctest: +SKIP
  ...               vocabulary_sizes=data.vocabulary_sizes, cap_bytes=256 * 1024,
  ...               directory="/tmp/cafe_tuning", max_trials=8)
  >>> result.best_config.compression_ratio, result.best_metric, result.best_bytes  # doctest: +SKIP
"""

import tf_keras

from cafe_tf import _keras_tuner

_keras_tuner.bind(tf_keras, __name__)

from cafe_tf._tuning import (  # noqa: E402
    BYTES_METRIC,
    DEFAULT_OBJECTIVE,
    TUNERS,
    CafeHyperModelBase,
    CafeSearchSpace,
    CapExceededError,
    TrialResult,
    TuningResult,
    cafe_bytes,
    collect_results,
    config_from_hp,
    make_tune,
)
from cafe_tf.callbacks import CafeMigration  # noqa: E402


class CafeHyperModel(CafeHyperModelBase):
    """`CafeHyperModelBase` for tf_keras models: `build_model` returns a compiled tf_keras
    model (e.g. TFRS); `fit` adds `cafe_tf.CafeMigration` unless one is given."""

    migration = CafeMigration


tune = make_tune(CafeHyperModel)

__all__ = [
    "BYTES_METRIC",
    "DEFAULT_OBJECTIVE",
    "TUNERS",
    "CafeHyperModel",
    "CafeSearchSpace",
    "CapExceededError",
    "TrialResult",
    "TuningResult",
    "cafe_bytes",
    "collect_results",
    "config_from_hp",
    "tune",
]
