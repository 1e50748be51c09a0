"""cafe_tf.keras3 under tf.distribute.MirroredStrategy (two logical CPUs, split by
tests/keras3/conftest.py): a keras-rs model trains with migration and every replica's copy of
every variable stays bit-identical."""

import keras3_models as km
import numpy as np
import tensorflow as tf

import cafe_tf.keras3 as cafe

EPOCHS, BATCHES, BATCH = 2, 8, 128


def test_mirrored_fit_keeps_the_replicas_bit_identical():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        embedding = cafe.CafeEmbeddingCollection(km.VOCABULARY, km.config(), name="cafe")
        model = km.compile_model(km.ranking_model(embedding, "dot"))
    history = model.fit(
        km.dataset(0, n=BATCHES * BATCH, batch_size=BATCH),
        epochs=EPOCHS,
        callbacks=[cafe.CafeMigration(every_n_steps=1)],
        verbose=0,
    )
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert int(embedding.promotions.numpy()) >= 10
    # Each replica counted the global batch (all-reduced), and exchanged its pairs.
    assert int(embedding.lookups.numpy()) == EPOCHS * BATCHES * BATCH * len(km.VOCABULARY)
    assert int(embedding.exchanged_pairs.numpy()) > 0
    # Every variable: the layer's tables, sketch and counters, the dense layers', the
    # optimizer's slots.
    variables = model.variables + model.optimizer.variables
    assert {id(w) for w in embedding.weights} <= {id(v) for v in variables}
    for variable in variables:
        copies = strategy.experimental_local_results(variable.value)
        assert len(copies) == 2, variable.path
        np.testing.assert_array_equal(copies[0].numpy(), copies[1].numpy(), err_msg=variable.path)
