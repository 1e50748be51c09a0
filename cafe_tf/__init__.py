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

These are tf_keras (Keras 2) layers and callbacks: `import cafe_tf` makes `tf.keras`
mean tf_keras (it sets `TF_USE_LEGACY_KERAS=1`, for TFRS). Their Keras 3 versions are
in `cafe_tf.keras3`, and `import cafe_tf.keras3` leaves `TF_USE_LEGACY_KERAS` and
`tf.keras` as they are (docs/keras3.md).

Example:
  >>> import cafe_tf
  >>> layer = cafe_tf.CafeEmbeddingCollection(
  ...     {"user": 1_000_000, "item": 50_000},
  ...     cafe_tf.CafeConfig(embedding_dim=16, compression_ratio=100))
  >>> migration = cafe_tf.CafeMigration(every_n_steps=1)
"""

import sys as _sys


def _imported_for_keras3() -> bool:
    """Whether Python imports this package only as the parent of `cafe_tf.keras3`
    (`import cafe_tf.keras3`, `from cafe_tf.keras3 import ...`), which must leave
    TF_USE_LEGACY_KERAS and tf.keras as they are.

    Python imports a package before its submodule, from the frame of
    `importlib._bootstrap._find_and_load(name)` of the submodule; that frame is
    the only trace of what is being imported.
    """
    frame = _sys._getframe(1)
    while frame is not None:
        if (
            frame.f_code.co_name == "_find_and_load"
            and frame.f_globals.get("__name__") == "importlib._bootstrap"
        ):
            name = frame.f_locals.get("name") or ""
            if name == f"{__name__}.keras3" or name.startswith(f"{__name__}.keras3."):
                return True
        frame = frame.f_back
    return False


from cafe_tf._version import __version__  # noqa: E402,F401

__all__ = [
    "AdaEmbedEmbeddingCollection",
    "AdaEmbedReallocation",
    "CafeConfig",
    "CafeEmbedding",
    "CafeEmbeddingCollection",
    "CafeMigration",
    "FeatureConfig",
    "FullEmbeddingCollection",
    "HashEmbeddingCollection",
    "HotSketch",
    "MDEEmbeddingCollection",
    "OfflineSeparationEmbeddingCollection",
    "QREmbeddingCollection",
    "SketchConfig",
    "count_frequencies",
]

if _imported_for_keras3():

    def __getattr__(name):
        """The tf_keras API, loaded (making tf.keras mean tf_keras) on first use."""
        if name in __all__:
            from cafe_tf import _tf_keras_api

            return getattr(_tf_keras_api, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
else:  # sets TF_USE_LEGACY_KERAS and checks the environment (_tf_keras_api.py)
    from cafe_tf._tf_keras_api import (
        AdaEmbedEmbeddingCollection,
        AdaEmbedReallocation,
        CafeConfig,
        CafeEmbedding,
        CafeEmbeddingCollection,
        CafeMigration,
        FeatureConfig,
        FullEmbeddingCollection,
        HashEmbeddingCollection,
        HotSketch,
        MDEEmbeddingCollection,
        OfflineSeparationEmbeddingCollection,
        QREmbeddingCollection,
        SketchConfig,
        count_frequencies,
    )
