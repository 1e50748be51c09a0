"""cafe_tf.keras3 in keras-rs ranking models (DLRM-style with DotInteraction, DCN with
FeatureCross): `model.fit` on a tf.data pipeline, with CafeMigration promoting."""

import keras3_models as km
import numpy as np
import pytest

import cafe_tf.keras3 as cafe


@pytest.mark.parametrize("interaction", km.INTERACTIONS)
def test_fit_a_keras_rs_ranking_model_with_migration(interaction):
    embedding = cafe.CafeEmbeddingCollection(km.VOCABULARY, km.config(), name="cafe")
    model = km.compile_model(km.ranking_model(embedding, interaction))
    history = model.fit(
        km.dataset(0),
        validation_data=km.dataset(1, n=512),
        epochs=3,
        callbacks=[cafe.CafeMigration(every_n_steps=1)],
        verbose=0,
    )
    # The frequent ids of "u" were promoted into hot rows during fit, and are read from them.
    assert int(embedding.promotions.numpy()) >= 10
    assert 0 < int(embedding.sketch.hot_rows_used().numpy()) <= embedding.layout.hot_rows
    assert 0 < int(embedding.hot_lookups.numpy()) < int(embedding.lookups.numpy())
    assert history.history["cafe_hot_occupancy"][-1] > 0
    # It learned the label of the frequent ids.
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert history.history["val_auc"][-1] > 0.7
    assert embedding.memory_bytes() <= embedding.budget_bytes
