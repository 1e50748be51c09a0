"""A tiny TFRS ranking model with CAFE embeddings, its data, and state readers.

Shared by the distribution, checkpoint, serving and tf.data tests, and importable
by their child processes (multi-worker, SIGKILL, serving), so it must not depend
on pytest or on tests/conftest.py.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from cafe_tf.layers import (
    CafeConfig,
    CafeEmbedding,
    CafeEmbeddingCollection,
    FeatureConfig,
    find_cafe_layers,
)

# "u": one id per example; "v": a ragged bag of 0..3 ids per example (unequal
# per-replica id counts under a strategy); "c": one string id per example, in a
# second CAFE layer; "x": a dense float feature.
FEATURES = (FeatureConfig("u", 100_000), FeatureConfig("v", 100_000, "mean"))
C_VOCABULARY = 10_000


def cafe_config(**overrides) -> CafeConfig:
    config = dict(
        embedding_dim=8,
        compression_ratio=500,
        threshold=8.0,
        decay_rate=0.9,
        decay_rule="batches",
        decay_period=5,
    )
    config.update(overrides)
    return CafeConfig(**config)


_STRATEGY = None


def mirrored_strategy() -> tf.distribute.MirroredStrategy:
    """This process's MirroredStrategy over the two logical CPUs (conftest splits the CPU).

    One instance per process: in TF 2.16 every MirroredStrategy starts its collective
    keys at the same values, so a second one in the process fails its first dynamically
    shaped all-gather (e.g. of IndexedSlices) with "Shape mismatch in the collective
    instance" (tensorflow/tensorflow#62790; plain Keras Embedding models too). The key
    base is moved out of the way of strategies created elsewhere (other test modules).
    """
    global _STRATEGY
    if _STRATEGY is None:
        previous = tf.distribute.MirroredStrategy._collective_key_base
        tf.distribute.MirroredStrategy._collective_key_base = 70_000
        try:
            _STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        finally:
            tf.distribute.MirroredStrategy._collective_key_base = previous
    return _STRATEGY


def global_average(per_example: tf.Tensor) -> tf.Tensor:
    """Sum of the replica's per-example losses / the *global* batch size.

    The global batch size is all-reduced, so a last partial batch (split
    unevenly over the replicas) is averaged exactly as on one device.
    """
    count = tf.shape(per_example)[0]
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return tf.nn.compute_average_loss(per_example, global_batch_size=count)


class CafeRanker(tfrs.models.Model):
    """CAFE embeddings of "u" and "v" (+ a dense feature "x"), a small MLP, a logit.

    The loss follows the MirroredStrategy recipe of docs/distributed.md: reduction NONE,
    labels shaped (B, 1), averaged over the global batch.
    """

    def __init__(self, config=None, c_config=None, name="ranker", **kwargs):
        super().__init__(name=name, **kwargs)
        self.embedding = CafeEmbeddingCollection(FEATURES, config or cafe_config(), name="cafe")
        self.c_embedding = CafeEmbedding(
            C_VOCABULARY,
            c_config or cafe_config(embedding_dim=4, compression_ratio=50),
            name="cafe_c",
        )
        self.top = tf_keras.Sequential(
            [tf_keras.layers.Dense(8, activation="relu"), tf_keras.layers.Dense(1)], name="top"
        )
        self.task = tfrs.tasks.Ranking(
            loss=tf_keras.losses.BinaryCrossentropy(
                from_logits=True, reduction=tf_keras.losses.Reduction.NONE
            )
        )

    def call(self, features, training=False):
        embedded = self.embedding({"u": features["u"], "v": features["v"]}, training=training)
        c = self.c_embedding(features["c"], training=training)
        return self.top(tf.concat([embedded["u"], embedded["v"], c, features["x"]], axis=1))

    def compute_loss(self, inputs, training=False):
        features, labels = inputs
        return global_average(
            self.task(labels=labels, predictions=self(features, training=training))
        )


def build(model, batch_size=4):
    """Creates every variable (layers, optimizer slots) without changing any value."""
    features, _ = next(iter(dataset(make_arrays(batch_size, seed=99), batch_size)))
    model(features)
    if model.optimizer is not None:
        model.optimizer.build(model.trainable_variables)
    return model


def make_model(config=None, learning_rate=0.05, seed=7, optimizer="adam", c_config=None):
    """A compiled, built CafeRanker whose initial weights depend on `seed` only."""
    tf_keras.utils.set_random_seed(seed)
    model = CafeRanker(config, c_config)
    opt = (
        tf_keras.optimizers.Adam(learning_rate)
        if optimizer == "adam"
        else tf_keras.optimizers.Adagrad(learning_rate)
    )
    model.compile(optimizer=opt)
    return build(model)


def make_arrays(n, seed=0):
    """Planted data: 60% of "u" ids are 0..19 and decide the label; bags of 0..3 "v" ids."""
    rng = np.random.default_rng(seed)
    hot = rng.random(n) < 0.6
    u = np.where(hot, rng.integers(0, 20, n), rng.integers(1000, 10**9, n)).astype(np.int64)
    lengths = rng.integers(0, 4, n)
    v_values = np.where(
        rng.random(lengths.sum()) < 0.5,
        rng.integers(0, 30, lengths.sum()),
        rng.integers(1000, 10**6, lengths.sum()),
    ).astype(np.int64)
    c = np.array([f"c{k}" for k in np.minimum(rng.zipf(1.5, n), 5000)])
    x = rng.normal(size=(n, 1)).astype(np.float32)
    label = np.where(hot, u % 2 == 0, rng.random(n) < 0.3).astype(np.float32)[:, None]
    return {"u": u, "v_values": v_values, "v_lengths": lengths, "c": c, "x": x, "label": label}


def dataset(arrays, batch_size, drop_remainder=False):
    """(features, labels) batches with a ragged "v"; same batches for every consumer."""
    v = tf.RaggedTensor.from_row_lengths(arrays["v_values"], arrays["v_lengths"])
    ds = tf.data.Dataset.from_tensor_slices(
        ({"u": arrays["u"], "v": v, "c": arrays["c"], "x": arrays["x"]}, arrays["label"])
    )
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def eval_features(n=64, seed=5):
    features, _ = next(iter(dataset(make_arrays(n, seed=seed), n)))
    return features


def cafe_state(model) -> dict:
    """name -> numpy value of every CAFE layer variable (sketch, tables, counters)."""
    state = {}
    for layer in find_cafe_layers(model):
        for v in layer.weights:
            state[f"{layer.name}/{v.name}"] = v.numpy()
    return state


def sketch_state(model) -> dict:
    """The sketch and its hot-row mapping only (what every replica must agree on)."""
    return {name: value for name, value in cafe_state(model).items() if "sketch" in name}


def _key(i, variable):
    # Position + last name part: Keras numbers auto-named layers per process ("dense_3").
    return f"{i}:{variable.name.split('/')[-1]}"


# Counts the importance exchange between replicas: 0 on one device by design.
EXCHANGE_COUNTER = "exchanged_pairs"


def is_exchange_counter(name: str) -> bool:
    return name.split("/")[-1].split(":")[0] == EXCHANGE_COUNTER


def weights_state(model) -> dict:
    """key -> value of every model variable (trainable and not) but the exchange counter."""
    return {
        _key(i, v): v.numpy()
        for i, v in enumerate(model.weights)
        if not is_exchange_counter(v.name)
    }


def optimizer_state(model) -> dict:
    """key -> value of every optimizer variable (iterations, slots)."""
    return {_key(i, v): v.numpy() for i, v in enumerate(model.optimizer.variables)}


def replica_values(variable) -> list:
    """Each replica's own copy of a (possibly distributed) variable, as numpy."""
    values = getattr(variable, "values", None)
    if values is None:
        return [variable.numpy()]
    return [v.numpy() for v in values]


def per_replica_cafe_state(model) -> list:
    """[replica] -> {name: value} of every CAFE layer variable, read from each copy."""
    states = None
    for layer in find_cafe_layers(model):
        for v in layer.weights:
            copies = replica_values(v)
            states = states or [{} for _ in copies]
            for state, value in zip(states, copies):
                state[f"{layer.name}/{v.name}"] = value
    return states


def assert_states_equal(a: dict, b: dict, what=""):
    assert sorted(a) == sorted(b), f"{what}: different variables {sorted(a)} vs {sorted(b)}"
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{what}: {name}")


def assert_states_close(a: dict, b: dict, rtol=1e-5, atol=1e-6, what=""):
    """Integer state (sketch slots: fingerprints, hot rows, tags, pending marks; counters)
    exactly, float state (weights, scores) within `rtol` / `atol`: a tolerance on int64
    slot words near 2**62 would let a wrong hot row or tag pass."""
    assert sorted(a) == sorted(b), f"{what}: different variables"
    for name in a:
        value = np.asarray(a[name])
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(
                value, b[name], rtol=rtol, atol=atol, err_msg=f"{what}: {name}"
            )
        else:
            np.testing.assert_array_equal(value, b[name], err_msg=f"{what}: {name}")


class BatchLosses(tf_keras.callbacks.Callback):
    """Records the loss of every training batch."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))
