"""A keras-rs model with cafe_tf.keras3 layers, exported as a SavedModel that serves with
stock TensorFlow in a process that cannot import cafe_tf."""

import sys
from pathlib import Path

import keras3_models as km
import numpy as np
import tensorflow as tf

import cafe_tf.keras3 as cafe
from cafe_tf import hashing
from cafe_tf.keras3.serving import cafe_ops_in_saved_model, export_for_serving

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for serving_child
import serving_child

SIGNATURE = {
    "numeric": tf.TensorSpec([None, km.DENSE], tf.float32),
    **{name: tf.TensorSpec([None], tf.int64) for name in km.VOCABULARY},
}


def test_export_serves_in_a_process_without_cafe_tf(tmp_path):
    embedding = cafe.CafeEmbeddingCollection(km.VOCABULARY, km.config(), name="cafe")
    model = km.compile_model(km.ranking_model(embedding, "cross"))
    model.fit(km.dataset(0), epochs=1, callbacks=[cafe.CafeMigration(every_n_steps=1)], verbose=0)
    export_dir = str(tmp_path / "export")
    export_for_serving(model, export_dir, SIGNATURE)
    assert cafe_ops_in_saved_model(export_dir) == []
    assert embedding.pure_tf_lookups is False  # restored after tracing
    features, _ = km.arrays(5, 256)
    expected = model.predict(features, verbose=0)
    # The batch reads hot rows (else serving them would go unchecked).
    assert np.any(
        embedding.sketch.query(hashing.field_keys(tf.constant(features["u"]), 0))[0].numpy() >= 0
    )
    inputs = serving_child.serve_in_child(export_dir, features, expected, tmp_path)
    assert inputs == sorted(SIGNATURE)
