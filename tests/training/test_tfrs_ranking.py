"""The README's minimal TFRS example: CAFE as `tfrs.experimental.models.Ranking`'s embedding_layer."""

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from cafe_tf.callbacks import CafeMigration
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection


def test_tfrs_ranking_trains_the_sketch_through_its_own_train_step():
    rng = np.random.default_rng(0)
    n = 2048
    user = np.where(rng.random(n) < 0.5, rng.integers(0, 5, n), rng.integers(100, 10**6, n))
    item = rng.integers(0, 10**6, n)
    dense = rng.normal(size=(n, 3)).astype(np.float32)
    label = ((user < 5) & (user % 2 == 0)).astype(np.float32)[:, None]
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"dense_features": dense, "sparse_features": {"user": user, "item": item}}, label)
    ).batch(64)

    embedding = CafeEmbeddingCollection(
        {"user": 1_000_000, "item": 1_000_000},
        CafeConfig(embedding_dim=8, compression_ratio=1000, threshold=10.0),
        name="cafe",
    )
    model = tfrs.experimental.models.Ranking(
        embedding_layer=embedding,
        bottom_stack=tfrs.layers.blocks.MLP([16, 8], final_activation="relu"),
        feature_interaction=tfrs.layers.feature_interaction.DotInteraction(),
        top_stack=tfrs.layers.blocks.MLP([16, 1], final_activation="sigmoid"),
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2))
    history = model.fit(dataset, epochs=2, verbose=0, callbacks=[CafeMigration()])
    # TFRS's Ranking.call passes no `training`: Keras's call context carries it to the layer.
    assert int(embedding.sketch.batches.numpy()) > 0
    assert history.history["cafe_epoch_promotions"][0] >= 5  # the 5 frequent users
    before = embedding.sketch.read_state()
    model.evaluate(dataset, verbose=0)
    model.predict(dataset, verbose=0)
    after = embedding.sketch.read_state()
    for a, b in zip(before, after):  # evaluation and prediction never touch the sketch
        np.testing.assert_array_equal(a.numpy(), b.numpy())
