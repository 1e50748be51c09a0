"""Keras 3 versions of cafe_tf's callbacks: CAFE migration and AdaEmbed reallocation."""

import keras

from cafe_tf.callbacks import CafeMigrationLogic
from cafe_tf.reallocation import AdaEmbedReallocationLogic


class CafeMigration(CafeMigrationLogic, keras.callbacks.Callback):
    """Keras 3 version of `cafe_tf.CafeMigration`: runs decay, demotion and promotion of
    every CAFE layer of the model every `every_n_steps` training batches.

    Args: as `cafe_tf.CafeMigration` (`every_n_steps`, `log_dir`, `log_every_n_steps`),
    and the same logs.

    Example:
      >>> model.fit(dataset, epochs=1, callbacks=[CafeMigration(every_n_steps=1)])  # doctest: +SKIP
    """


class AdaEmbedReallocation(AdaEmbedReallocationLogic, keras.callbacks.Callback):
    """Keras 3 version of `cafe_tf.AdaEmbedReallocation`: reallocates the rows of every
    AdaEmbed layer of the model every `every_n_steps` batches.

    Args: as `cafe_tf.AdaEmbedReallocation` (`every_n_steps`), and the same logs.

    Example:
      >>> model.fit(dataset, callbacks=[AdaEmbedReallocation(every_n_steps=20)])  # doctest: +SKIP
    """
