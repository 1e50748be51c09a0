"""Train a CAFE model with MultiWorkerMirroredStrategy: 2 worker processes on localhost.

    python examples/train_multiworker.py            # starts both workers itself

Without TF_CONFIG the script is a launcher: it picks two free 127.0.0.1 ports,
starts two copies of itself as workers (each with its TF_CONFIG), waits for
them with a timeout (killing both if one fails), and prints what they report.
With TF_CONFIG set (as a cluster manager would do on real machines) it is one
worker. Each worker trains on its half of every global batch; the CAFE layer
all-gathers the ids and importance of the whole global batch, so both workers'
sketches stay identical, which the launcher checks from their fingerprints.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GLOBAL_BATCH = 128
NUM_EXAMPLES = 6_000
EPOCHS = 2
NUM_WORKERS = 2
TIMEOUT_S = 300


# ---- worker ---------------------------------------------------------------------------
def worker():
    import numpy as np
    import tensorflow as tf
    import tensorflow_recommenders as tfrs
    import tf_keras

    from cafe_tf.callbacks import CafeMigration
    from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

    rng = np.random.default_rng(0)  # every worker builds the same data, then shards it
    hot = rng.random(NUM_EXAMPLES) < 0.6
    user = np.where(
        hot, rng.integers(0, 20, NUM_EXAMPLES), rng.integers(10**3, 10**9, NUM_EXAMPLES)
    ).astype(np.int64)
    item = rng.integers(0, 10**6, NUM_EXAMPLES).astype(np.int64)
    label = np.where(hot, user % 2 == 0, rng.random(NUM_EXAMPLES) < 0.3)
    data = tf.data.Dataset.from_tensor_slices(
        ({"user": user, "item": item}, label.astype(np.float32)[:, None])
    ).batch(GLOBAL_BATCH)

    class Ranker(tfrs.models.Model):
        def __init__(self):
            super().__init__()
            self.embedding = CafeEmbeddingCollection(
                {"user": 1_000_000, "item": 1_000_000},
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
            return self.top(tf.concat([embedded["user"], embedded["item"]], axis=1))

        def compute_loss(self, inputs, training=False):
            features, labels = inputs
            per_example = self.task(labels=labels, predictions=self(features, training=training))
            count = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, tf.shape(per_example)[0]
            )  # the global batch
            return tf.nn.compute_average_loss(per_example, global_batch_size=count)

    with strategy.scope():
        model = Ranker()
        model.compile(optimizer=tf_keras.optimizers.Adam(0.02))
    steps = int(data.cardinality())
    history = model.fit(
        strategy.experimental_distribute_dataset(data.repeat()),
        epochs=EPOCHS,
        steps_per_epoch=steps,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=1)],
    )
    layer = model.embedding
    fingerprint = hashlib.sha256()
    for v in layer.sketch.state_variables + [layer.hot_table]:
        fingerprint.update(v.numpy().tobytes())
    print(
        json.dumps(
            {
                "worker": task,
                "replicas": strategy.num_replicas_in_sync,
                "epoch_mean_loss": [round(x, 4) for x in history.history["loss"]],
                "promotions": int(layer.promotions.numpy()),
                "lookups": int(layer.lookups.numpy()),
                "ids_in_data": 2 * NUM_EXAMPLES * EPOCHS,
                "sketch_fingerprint": fingerprint.hexdigest()[:16],
            }
        ),
        flush=True,
    )


# ---- launcher ---------------------------------------------------------------------------
def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch():
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(NUM_WORKERS)]}
    print(f"starting {NUM_WORKERS} workers: {cluster['worker']}")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = []
    for index in range(NUM_WORKERS):
        env = dict(
            os.environ,
            PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""),
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    reports = []
    for index, p in enumerate(procs):
        out, err = p.communicate()
        if p.returncode != 0:
            print(f"worker {index} failed (rc={p.returncode}):\n{err[-3000:]}")
            return False
        reports.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(reports[-1]))
    same = len({r["sketch_fingerprint"] for r in reports}) == 1
    print(f"sketch and hot table identical on every worker: {same}")
    print(
        f"every worker's sketch counted all {reports[0]['ids_in_data']} ids: "
        f"{all(r['lookups'] == r['ids_in_data'] for r in reports)}"
    )
    return same


if __name__ == "__main__":
    if "TF_CONFIG" in os.environ:
        worker()
    else:
        raise SystemExit(0 if launch() else 1)
