"""Quick start: CAFE as the embedding layer of a TFRS ranking model (the README's usage).

    python examples/quickstart_tfrs.py

Trains `tfrs.experimental.models.Ranking` with a `CafeEmbeddingCollection` under 1/100 of
the full tables' bytes on two days of the built-in synthetic click log, then tests it on a
third day. Prints the bytes held, the hot rows the migration filled and the test AUC. About
half a minute on 2 CPU cores.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFRS is Keras 2 (tf_keras); cafe_tf sets it too
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow_recommenders as tfrs
import tf_keras

import cafe_tf
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig


def for_tfrs(features, label):
    """cafe_tf's batches, `{"dense", "sparse"}`, under the keys TFRS's Ranking reads."""
    return {"dense_features": features["dense"], "sparse_features": features["sparse"]}, label


def main():
    tf_keras.utils.set_random_seed(0)  # the model's initial weights
    # A click log shaped like Criteo Kaggle: 13 dense fields, 26 id fields C1..C26 with
    # 33,763 distinct ids in all (Criteo's vocabulary x 0.001); 3 days, the last for testing.
    data = SyntheticCriteo(SyntheticCriteoConfig(rows_per_day=20_000, num_days=3, scale=1e-3))
    train = data.train_dataset(batch_size=256).map(for_tfrs)  # ({"dense_features": [B, 13],
    test = data.test_dataset(batch_size=4096).map(for_tfrs)  #   "sparse_features": {"C1": [B],
    #   ...}}, label [B, 1])
    embedding = cafe_tf.CafeEmbeddingCollection(
        data.vocabulary_sizes,  # {field: distinct ids}: sizes the budget only
        # 1/100 of the full tables' bytes (or budget_bytes=); the hot share, the threshold
        # k that earns a hot row and the sketch are planned from the budget
        cafe_tf.CafeConfig(embedding_dim=16, compression_ratio=100),
        name="cafe",
    )
    print(f"embedding bytes: {embedding.memory_bytes():,} <= budget {embedding.budget_bytes:,}")

    model = tfrs.experimental.models.Ranking(
        embedding_layer=embedding,  # {field: ids} -> {field: [B, 16]}
        bottom_stack=tfrs.layers.blocks.MLP([64, 16], final_activation="relu"),
        feature_interaction=tfrs.layers.feature_interaction.DotInteraction(),
        top_stack=tfrs.layers.blocks.MLP([64, 1], final_activation="sigmoid"),
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
    model.fit(
        train, verbose=2, callbacks=[cafe_tf.CafeMigration(every_n_steps=1)]
    )  # promotes and demotes
    metrics = model.evaluate(test, verbose=0, return_dict=True)

    used = int(embedding.sketch.hot_rows_used())
    share = int(embedding.hot_lookups.numpy()) / int(embedding.lookups.numpy())
    print(
        f"hot rows in use: {used:,} of {embedding.layout.hot_rows:,}; {share:.1%} of the "
        "training lookups served hot"
    )
    print(f"migration promoted ids: {used > 0}")
    print(f"test AUC: {metrics['auc']:.4f}")


if __name__ == "__main__":
    main()
