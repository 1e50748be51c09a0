"""Checkpoint a CAFE model while training, resume after a crash, refuse a wrong checkpoint.

    python examples/checkpoint_resume.py

1. Trains 60 steps with a checkpoint every 10 (`PeriodicCheckpoint` + a
   `tf.train.CheckpointManager`); the run "crashes" after step 34 (a real crash
   is tested in tests/training/test_checkpoint.py, with SIGKILL).
2. A fresh process would rebuild the model and call `restore_latest`: it gets
   step 30 back (weights, sketch, hot table, mapping, optimizer slots, step
   counter) and trains on from batch 30 (`dataset.skip(30)`).
3. The result is bit-identical to 60 uninterrupted steps.
4. Restoring into a model with another CAFE configuration is refused, with
   the mismatches named.
"""

import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from cafe_tf.callbacks import CafeMigration
from cafe_tf.checkpoints import (
    CheckpointMismatchError,
    PeriodicCheckpoint,
    make_checkpoint,
    restore_latest,
)
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection

TOTAL_STEPS, EVERY, CRASH_AFTER = 60, 10, 34


def make_data():
    rng = np.random.default_rng(0)
    n = 64 * TOTAL_STEPS
    hot = rng.random(n) < 0.6
    user = np.where(hot, rng.integers(0, 20, n), rng.integers(10**3, 10**9, n)).astype(np.int64)
    item = rng.integers(0, 10**6, n).astype(np.int64)
    label = np.where(hot, user % 2 == 0, rng.random(n) < 0.3).astype(np.float32)[:, None]
    return tf.data.Dataset.from_tensor_slices(({"user": user, "item": item}, label)).batch(64)


class Ranker(tfrs.models.Model):
    def __init__(self, compression_ratio=2000):
        super().__init__()
        self.embedding = CafeEmbeddingCollection(
            {"user": 1_000_000, "item": 1_000_000},
            CafeConfig(embedding_dim=8, compression_ratio=compression_ratio, threshold=10.0),
            name="cafe",
        )
        self.top = tf_keras.layers.Dense(1)
        self.task = tfrs.tasks.Ranking(loss=tf_keras.losses.BinaryCrossentropy(from_logits=True))

    def call(self, features, training=False):
        embedded = self.embedding(features, training=training)
        return self.top(tf.concat([embedded["user"], embedded["item"]], axis=1))

    def compute_loss(self, inputs, training=False):
        features, labels = inputs
        return self.task(labels=labels, predictions=self(features, training=training))


def new_model(seed, **kwargs):
    """Builds every variable (layers and optimizer slots) so restores apply at once."""
    tf_keras.utils.set_random_seed(seed)
    model = Ranker(**kwargs)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.02))
    model(next(iter(make_data()))[0])
    model.optimizer.build(model.trainable_variables)
    return model


class Crash(tf_keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == CRASH_AFTER:
            raise KeyboardInterrupt("simulated crash")


def train(model, manager, crash=False):
    start = restore_latest(manager)  # 0 when the directory holds no checkpoint
    callbacks = [CafeMigration(every_n_steps=3), PeriodicCheckpoint(manager, EVERY)]
    try:
        model.fit(
            make_data().skip(start),
            epochs=1,
            steps_per_epoch=TOTAL_STEPS - start,
            verbose=0,
            callbacks=callbacks + ([Crash()] if crash else []),
        )
    except KeyboardInterrupt:
        print(
            f"  crashed after step {CRASH_AFTER}; newest checkpoint: "
            f"{os.path.basename(manager.latest_checkpoint)}"
        )
    return start


def main():
    directory = tempfile.mkdtemp(prefix="cafe_ckpt_")
    print("1. training with a checkpoint every", EVERY, "steps")
    first = new_model(seed=1)
    train(
        first,
        tf.train.CheckpointManager(make_checkpoint(first), directory, max_to_keep=2),
        crash=True,
    )

    print("2. a fresh model resumes from the newest checkpoint")
    resumed = new_model(seed=2)  # other initial values: everything comes from the checkpoint
    manager = tf.train.CheckpointManager(make_checkpoint(resumed), directory, max_to_keep=2)
    start = train(resumed, manager)
    print(
        f"  resumed at step {start}, trained to step {int(resumed.optimizer.iterations)}; "
        f"promotions {int(resumed.embedding.promotions.numpy())}"
    )

    print("3. compare with uninterrupted training")
    reference = new_model(seed=1)
    reference.fit(
        make_data(),
        epochs=1,
        steps_per_epoch=TOTAL_STEPS,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=3)],
    )
    pairs = list(
        zip(
            reference.weights + reference.optimizer.variables,
            resumed.weights + resumed.optimizer.variables,
        )
    )
    identical = all(np.array_equal(a.numpy(), b.numpy()) for a, b in pairs)
    print(
        f"  {len(pairs)} variables (weights, sketch, mapping, optimizer slots) identical: "
        f"{identical}"
    )

    print("4. a checkpoint of another configuration is refused")
    other = new_model(seed=3, compression_ratio=500)
    try:
        restore_latest(tf.train.CheckpointManager(make_checkpoint(other), directory, 2))
        print("  not refused?!")
        return False
    except CheckpointMismatchError as error:
        print("  " + str(error).replace("\n", "\n  "))
    return identical


if __name__ == "__main__":
    raise SystemExit(0 if main() else 1)
