"""Export a trained CAFE model as a SavedModel that serves with stock TensorFlow only.

    python examples/export_serving.py [export_dir]

Trains a small TFRS model (a string feature, an int feature and a ragged bag of
ids), exports it with `cafe_tf.serving.export_for_serving`, then loads the
SavedModel in a separate Python process that cannot import cafe_tf (as TF
Serving or any TF runtime would) and compares its predictions with the Keras
model's. Ragged features become two signature inputs: `<name>_values` and
`<name>_row_lengths`.
"""

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from cafe_tf.callbacks import CafeMigration
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection, FeatureConfig
from cafe_tf.serving import export_for_serving

SIGNATURE = {
    "user": tf.TensorSpec([None], tf.int64),
    "city": tf.TensorSpec([None], tf.string),
    "history": tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1),
}

# Runs in a fresh interpreter whose imports of cafe_tf fail.
SERVER = r"""
import json, sys
class NoCafe:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "cafe_tf":
            raise ImportError("no cafe_tf here")
sys.meta_path.insert(0, NoCafe())
import numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
serve = served.signatures["serving_default"]
inputs = dict(np.load(sys.argv[2]))
out = serve(**{k: tf.constant(v) for k, v in inputs.items()})["predictions"].numpy()
print(json.dumps({"inputs": sorted(serve.structured_input_signature[1]),
                  "predictions": out[:, 0].tolist(),
                  "cafe_tf_imported": any(m.startswith("cafe_tf") for m in sys.modules)}))
"""


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    hot = rng.random(n) < 0.6
    user = np.where(hot, rng.integers(0, 20, n), rng.integers(10**3, 10**9, n)).astype(np.int64)
    city = np.array([f"city-{k}" for k in np.minimum(rng.zipf(1.6, n), 500)])
    lengths = rng.integers(0, 4, n)
    history = rng.integers(0, 10**5, lengths.sum()).astype(np.int64)
    label = np.where(hot, user % 2 == 0, rng.random(n) < 0.3).astype(np.float32)[:, None]
    features = {
        "user": user,
        "city": city,
        "history": tf.RaggedTensor.from_row_lengths(history, lengths),
    }
    return tf.data.Dataset.from_tensor_slices((features, label)).batch(128)


class Ranker(tfrs.models.Model):
    def __init__(self):
        super().__init__()
        self.embedding = CafeEmbeddingCollection(
            [
                FeatureConfig("user", 1_000_000),
                FeatureConfig("city", 10_000),
                FeatureConfig("history", 100_000, "mean"),
            ],
            CafeConfig(embedding_dim=8, compression_ratio=500, threshold=10.0),
            name="cafe",
        )
        self.top = tf_keras.Sequential(
            [tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(1)]
        )
        self.task = tfrs.tasks.Ranking(loss=tf_keras.losses.BinaryCrossentropy(from_logits=True))

    def call(self, features, training=False):
        embedded = self.embedding(features, training=training)
        return self.top(tf.concat([embedded[k] for k in sorted(embedded)], axis=1))

    def compute_loss(self, inputs, training=False):
        features, labels = inputs
        return self.task(labels=labels, predictions=self(features, training=training))


def main(export_dir):
    model = Ranker()
    model.compile(optimizer=tf_keras.optimizers.Adam(0.02))
    model.fit(
        make_data(8_000, seed=0), epochs=2, verbose=0, callbacks=[CafeMigration(every_n_steps=1)]
    )
    print(f"trained; hot rows in use: {int(model.embedding.sketch.hot_rows_used())}")

    export_for_serving(model, export_dir, SIGNATURE)
    print(f"exported to {export_dir} (checked: no cafe_tf op in the graph)")

    features, _ = next(iter(make_data(8, seed=1)))
    expected = model(features).numpy()[:, 0]
    inputs_path = os.path.join(export_dir, "example_inputs.npz")
    np.savez(
        inputs_path,
        user=features["user"].numpy(),
        city=features["city"].numpy().astype(str),
        history_values=features["history"].values.numpy(),
        history_row_lengths=features["history"].row_lengths().numpy(),
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", SERVER, export_dir, inputs_path],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )
    if run.returncode != 0:
        print(run.stderr[-3000:])
        return False
    served = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        f"serving process: cafe_tf imported = {served['cafe_tf_imported']}; "
        f"signature inputs = {served['inputs']}"
    )
    print("keras  :", [round(float(x), 4) for x in expected])
    print("served :", [round(float(x), 4) for x in served["predictions"]])
    same = np.allclose(served["predictions"], expected, rtol=1e-6, atol=1e-6)
    print(f"same predictions: {same}")
    return same and not served["cafe_tf_imported"]


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="cafe_serving_")
    raise SystemExit(0 if main(target) else 1)
