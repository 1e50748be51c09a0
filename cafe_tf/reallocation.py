"""The Keras callback that runs AdaEmbed's periodic row reallocation during `model.fit`."""

import tensorflow as tf
import tf_keras

from cafe_tf.layers.adaembed import AdaEmbedEmbeddingCollectionLogic
from cafe_tf.layers.keras_base import find_layers


def find_adaembed_layers(model) -> list[AdaEmbedEmbeddingCollectionLogic]:
    """Every AdaEmbed layer inside `model` (tf_keras or Keras 3), nested models and layers
    included."""
    return find_layers(model, AdaEmbedEmbeddingCollectionLogic)


class AdaEmbedReallocationLogic:
    """The Keras-independent logic of `AdaEmbedReallocation` (a mixin; layers/keras_base.py)."""

    def __init__(self, every_n_steps: int = 20):
        super().__init__()
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be > 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._layers: list[AdaEmbedEmbeddingCollectionLogic] = []

    def set_model(self, model):
        super().set_model(model)
        self._layers = find_adaembed_layers(model)
        self._function = None

    def reallocate_now(self) -> dict[str, int]:
        """Reallocates every AdaEmbed layer now; returns promotions and demotions per layer."""
        if not self._layers:
            return {}
        if self._function is None:
            layers, optimizer = self._layers, getattr(self.model, "optimizer", None)
            self._function = tf.function(lambda: [layer.reallocate(optimizer) for layer in layers])
        stats = {}
        for layer, result in zip(self._layers, self._function()):
            stats[f"{layer.name}_promotions"] = int(result["promotions"])
            stats[f"{layer.name}_demotions"] = int(result["demotions"])
        return stats

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every_n_steps == 0:
            stats = self.reallocate_now()
            if logs is not None:
                logs.update(stats)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for layer in self._layers:
                logs[f"{layer.name}_resident_share"] = layer.resident_share()


class AdaEmbedReallocation(AdaEmbedReallocationLogic, tf_keras.callbacks.Callback):
    """Calls `reallocate` of every AdaEmbed layer of the model every `every_n_steps` batches.

    Batches are counted by `model.optimizer.iterations` (checkpoints hold it).
    It adds `<layer>_promotions`, `<layer>_demotions` (of the last
    reallocation) to the batch logs and `<layer>_resident_share` (share of the
    rows holding an id) to the epoch logs. One replica: the layer's counters
    are updated in its call, which a distribution strategy would run per replica.

    Args:
      every_n_steps: batches between reallocations.

    Example:
      >>> model.fit(dataset, callbacks=[AdaEmbedReallocation(every_n_steps=20)])  # doctest: +SKIP
    """
