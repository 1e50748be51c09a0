"""A keras-rs model with cafe_tf.keras3 layers, exported as a SavedModel that serves with
stock TensorFlow in a process that cannot import cafe_tf."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

import cafe_tf.keras3 as cafe
import keras3_models as km
from cafe_tf import hashing
from cafe_tf.keras3.serving import cafe_ops_in_saved_model, export_for_serving

ROOT = Path(__file__).resolve().parents[2]
SIGNATURE = {"numeric": tf.TensorSpec([None, km.DENSE], tf.float32),
             **{name: tf.TensorSpec([None], tf.int64) for name in km.VOCABULARY}}


def test_export_serves_in_a_process_without_cafe_tf(tmp_path):
    embedding = cafe.CafeEmbeddingCollection(km.VOCABULARY, km.config(), name="cafe")
    model = km.compile_model(km.ranking_model(embedding, "cross"))
    model.fit(km.dataset(0), epochs=1, callbacks=[cafe.CafeMigration(every_n_steps=1)],
              verbose=0)
    export_dir = str(tmp_path / "export")
    export_for_serving(model, export_dir, SIGNATURE)
    assert cafe_ops_in_saved_model(export_dir) == []
    assert embedding.pure_tf_lookups is False  # restored after tracing
    features, _ = km.arrays(5, 256)
    expected = model.predict(features, verbose=0)
    # The batch reads hot rows (else serving them would go unchecked).
    assert np.any(embedding.sketch.query(
        hashing.field_keys(tf.constant(features["u"]), 0))[0].numpy() >= 0)
    np.savez(tmp_path / "inputs.npz", **features)
    run = subprocess.run(
        [sys.executable, "-I", str(ROOT / "tests" / "serving_child.py"), str(ROOT), export_dir,
         str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["cafe_modules"] == []
    assert report["signature_inputs"] == sorted(SIGNATURE)
    served = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(served["signature"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(served["serve"], expected, rtol=1e-6, atol=1e-6)
