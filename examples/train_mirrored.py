"""Train a TFRS ranking model with CAFE embeddings under MirroredStrategy.

Uses every GPU when there are some; on a CPU-only machine it splits the CPU into
two logical devices, so the same code path (two replicas, all-gathered sketch
updates, all-reduced gradients) runs anywhere. Synthetic in-memory data: 20
"hot" user ids decide most labels, the rest is noise; CAFE should promote them.

    python examples/train_mirrored.py

What it shows:
- the loss recipe that trains exactly like one device: per-example loss
  (reduction NONE), labels shaped (B, 1), averaged over the *global* batch
  (all-reduced, so a short last batch is averaged correctly too);
- `model.fit` on `strategy.experimental_distribute_dataset(...)` with
  `steps_per_epoch`, and the `CafeMigration` callback;
- after training, every replica's sketch, hot table and mapping are identical.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

GPUS = tf.config.list_physical_devices("GPU")
if not GPUS:  # must happen before TensorFlow initialises its devices
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )

import tensorflow_recommenders as tfrs  # noqa: E402
import tf_keras  # noqa: E402

from cafe_tf import hashing  # noqa: E402
from cafe_tf.callbacks import CafeMigration  # noqa: E402
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection, FeatureConfig  # noqa: E402

GLOBAL_BATCH = 128
EPOCHS = 2


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    hot = rng.random(n) < 0.6
    user = np.where(hot, rng.integers(0, 20, n), rng.integers(10**3, 10**9, n))
    lengths = rng.integers(0, 4, n)  # a bag of 0..3 tags per example (ragged)
    tags = rng.integers(0, 10**6, lengths.sum())
    label = np.where(hot, user % 2 == 0, rng.random(n) < 0.3).astype(np.float32)[:, None]
    features = {
        "user": user.astype(np.int64),
        "tags": tf.RaggedTensor.from_row_lengths(tags.astype(np.int64), lengths),
    }
    return tf.data.Dataset.from_tensor_slices((features, label)).batch(GLOBAL_BATCH)


def global_average(per_example):
    """Per-replica loss = sum over the replica's examples / global batch size."""
    count = tf.shape(per_example)[0]
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return tf.nn.compute_average_loss(per_example, global_batch_size=count)


class Ranker(tfrs.models.Model):
    def __init__(self):
        super().__init__()
        self.embedding = CafeEmbeddingCollection(
            [FeatureConfig("user", 1_000_000), FeatureConfig("tags", 1_000_000, "mean")],
            CafeConfig(embedding_dim=8, compression_ratio=2000, threshold=10.0),
            name="cafe",
        )
        self.top = tf_keras.Sequential(
            [tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(1)]
        )
        self.task = tfrs.tasks.Ranking(
            loss=tf_keras.losses.BinaryCrossentropy(
                from_logits=True, reduction=tf_keras.losses.Reduction.NONE
            )
        )

    def call(self, features, training=False):
        embedded = self.embedding(features, training=training)
        return self.top(tf.concat([embedded["user"], embedded["tags"]], axis=1))

    def compute_loss(self, inputs, training=False):
        features, labels = inputs
        return global_average(
            self.task(labels=labels, predictions=self(features, training=training))
        )


def main():
    devices = [d.name for d in tf.config.list_logical_devices("GPU" if GPUS else "CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    print(f"MirroredStrategy over {strategy.num_replicas_in_sync} replicas: {devices}")
    train, test = make_data(12_000, seed=0), make_data(4_000, seed=1)
    steps = int(train.cardinality())
    with strategy.scope():
        model = Ranker()
        model.compile(optimizer=tf_keras.optimizers.Adam(0.02))
    history = model.fit(
        strategy.experimental_distribute_dataset(train.repeat()),
        epochs=EPOCHS,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=1)],
    )
    layer = model.embedding
    for epoch in range(EPOCHS):
        print(
            f"epoch {epoch + 1}: mean loss {history.history['loss'][epoch]:.4f}, "
            f"promotions "
            f"{history.history['cafe_epoch_promotions'][epoch]}, hot lookups "
            f"{history.history['cafe_hot_lookup_share'][epoch]:.1%}"
        )

    # The trained model also runs outside strategy.run (e.g. for evaluation or export).
    auc = tf_keras.metrics.AUC(from_logits=True)
    for features, labels in test:
        auc.update_state(labels, model(features))
    print(
        f"test AUC {auc.result().numpy():.3f}; memory {layer.memory_bytes()} bytes "
        f"(budget {layer.budget_bytes})"
    )

    # Each replica holds its own copy of the CAFE state: all identical.
    identical = all(
        all(np.array_equal(copies[0].numpy(), c.numpy()) for c in copies[1:])
        for copies in (getattr(v, "values", (v,)) for v in layer.weights)
    )
    print(f"replicas identical (sketch, mapping, tables): {identical}")
    rows, _ = layer.sketch.query(hashing.field_keys(tf.range(20, dtype=tf.int64), 0))
    print(f"planted hot users with a hot row: {int(np.sum(rows.numpy() >= 0))} / 20")
    return identical


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
