"""Tuning CAFE's budget and knobs of Keras 3 models (e.g. keras-rs) with keras-tuner 1.4,
under a hard memory cap.

The same search as `cafe_tf.tuning` (`cafe_tf._tuning`: the space bounded by the cap, the
cap checked on every built model, `cafe_bytes` recorded per trial), with Keras 3's
`cafe_tf.keras3.CafeMigration` added to each trial's `fit`. keras-tuner checks models
against one Keras per process: importing this module binds it to Keras 3, and raises
ImportError if keras-tuner was already imported for tf_keras (by `cafe_tf.tuning`, or
keras-tuner 1.3, which follows `tf.keras`). Tune tf_keras models in another process.

Example:
  >>> import keras, keras_rs
  >>> from cafe_tf.keras3 import CafeEmbeddingCollection
  >>> from cafe_tf.keras3.tuning import tune
  >>> def build_model(config):  # doctest: +SKIP
  ...     ids = {name: keras.Input((), dtype="int64", name=name) for name in vocabulary}
  ...     vectors = CafeEmbeddingCollection(vocabulary, config)(ids)
  ...     x = keras_rs.layers.DotInteraction()(list(vectors.values()))
  ...     model = keras.Model(ids, keras.layers.Dense(1, activation="sigmoid")(x))
  ...     model.compile("adam", "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
  ...     return model
  >>> result = tune(build_model, train, validation, vocabulary_sizes=vocabulary,  # doctest: +SKIP
  ...               cap_bytes=256 * 1024, directory="/tmp/cafe_tuning", max_trials=8)
"""

import keras

from cafe_tf import _keras_tuner

_keras_tuner.bind(keras, __name__)

from cafe_tf._tuning import (
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
from cafe_tf.keras3.callbacks import CafeMigration  # noqa: E402


class CafeHyperModel(CafeHyperModelBase):
    """`CafeHyperModelBase` for Keras 3 models: `build_model` returns a compiled Keras 3
    model; `fit` adds `cafe_tf.keras3.CafeMigration` unless one is given.

    Args: as `cafe_tf._tuning.CafeHyperModelBase`.
    """

    migration = CafeMigration


tune = make_tune(CafeHyperModel)
