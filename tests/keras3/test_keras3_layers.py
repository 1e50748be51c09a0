"""cafe_tf.keras3's layers against the tf_keras ones, bit for bit, in one process; and
Keras 3's own checks (run_layer_test, .keras files)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from absl.testing import parameterized
from keras.src import testing
from keras.src.trainers.trainer import model_supports_jit

import cafe_tf.keras3 as k3
from cafe_tf import layers as tk
from cafe_tf.keras3 import CafeConfig

FEATURES = {"user": 500, "item": 100}
FREQUENCIES = {"user": ([1, 2, 3, 4], [90, 50, 20, 5]), "item": ([1, 7], [40, 3])}

# name: (layer class name, constructor arguments). The CAFE kinds' low thresholds make
# migrations promote within a few steps.
KINDS = {
    "cafe": (
        "CafeEmbeddingCollection",
        dict(features=FEATURES, config=CafeConfig(embedding_dim=4, compression_ratio=5)),
    ),
    "cafe_frequency": (
        "CafeEmbeddingCollection",
        dict(
            features=FEATURES,
            config=CafeConfig(
                embedding_dim=4, compression_ratio=5, importance="frequency", threshold=3.0
            ),
        ),
    ),
    "cafe_multi_level": (
        "CafeEmbeddingCollection",
        dict(
            features=FEATURES,
            config=CafeConfig(
                embedding_dim=4, compression_ratio=5, multi_level=True, medium_share=0.3
            ),
        ),
    ),
    "cafe_reference": (
        "CafeEmbeddingCollection",
        dict(
            features=FEATURES,
            config=CafeConfig(embedding_dim=4, compression_ratio=5, backend="reference"),
        ),
    ),
    "cafe_single": (
        "CafeEmbedding",
        dict(vocabulary_size=500, config=CafeConfig(embedding_dim=4, compression_ratio=5)),
    ),
    "hash": (
        "HashEmbeddingCollection",
        dict(features=FEATURES, embedding_dim=4, compression_ratio=5),
    ),
    "full": ("FullEmbeddingCollection", dict(features=FEATURES, embedding_dim=4)),
    "qr": ("QREmbeddingCollection", dict(features=FEATURES, embedding_dim=4, compression_ratio=5)),
    "mde": (
        "MDEEmbeddingCollection",
        dict(features=FEATURES, embedding_dim=4, compression_ratio=5),
    ),
    "adaembed": (
        "AdaEmbedEmbeddingCollection",
        dict(features=FEATURES, embedding_dim=4, compression_ratio=5),
    ),
    "offline": (
        "OfflineSeparationEmbeddingCollection",
        dict(features=FEATURES, embedding_dim=4, compression_ratio=5, frequencies=FREQUENCIES),
    ),
    "offline_rows": (
        "OfflineSeparationEmbeddingCollection",
        dict(
            features=FEATURES,
            embedding_dim=4,
            compression_ratio=5,
            frequencies=FREQUENCIES,
            exclusive_rows=2,
        ),
    ),
}
# Same update rule, same float operations in both Keras. (Their Adams round differently:
# tf_keras updates the moments of sparse gradients in two steps, Keras 3 in one.)
OPTIMIZERS = {
    "sgd": (lambda: tf_keras.optimizers.SGD(0.1), lambda: keras.optimizers.SGD(0.1)),
    "adagrad": (lambda: tf_keras.optimizers.Adagrad(0.1), lambda: keras.optimizers.Adagrad(0.1)),
}


def _batches(kind, steps, seed=0):
    """Skewed ids (so some become hot), multi-id for users; a tensor for the one-feature
    layer."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = {
            "user": tf.constant(rng.zipf(1.5, size=(16, 2)) % 500),
            "item": tf.constant(rng.zipf(1.3, size=16) % 100),
        }
        yield batch["user"] if kind == "cafe_single" else batch


def _loss(outputs):
    outputs = outputs if isinstance(outputs, dict) else {"user": outputs}
    return tf.add_n(
        [
            0.1 * tf.reduce_sum(v * (i + 0.5)) + 0.01 * tf.reduce_sum(v**2)
            for i, v in enumerate(outputs.values())
        ]
    )


def _dense(gradient):
    return tf.convert_to_tensor(gradient).numpy()


def _distinct_rows(gradient):
    """`gradient` with each row listed once: the baselines' gathers list a row once per
    id, and the two Keras' optimizers sum such repeats in different orders."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    rows, index = tf.unique(gradient.indices)
    return tf.IndexedSlices(
        tf.math.unsorted_segment_sum(gradient.values, index, tf.size(rows)),
        rows,
        gradient.dense_shape,
    )


def _step(layer, optimizer, batch, kind, step):
    with tf.GradientTape() as tape:
        outputs = layer(batch, training=True)
        loss = _loss(outputs)
    gradients = tape.gradient(loss, layer.trainable_variables)
    optimizer.apply_gradients(zip(map(_distinct_rows, gradients), layer.trainable_variables))
    moved = None
    if kind.startswith("cafe"):
        moved = layer.migrate(optimizer)
    elif kind == "adaembed" and step % 3 == 2:
        moved = layer.reallocate(optimizer)
    return outputs, gradients, moved


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_keras3_layer_equals_tf_keras_layer_bit_for_bit(kind, optimizer):
    name, arguments = KINDS[kind]
    old, new = getattr(tk, name)(**arguments), getattr(k3, name)(**arguments)
    assert isinstance(new, keras.layers.Layer) and not isinstance(new, tf_keras.layers.Layer)
    first = next(_batches(kind, 1, seed=9))
    old(first), new(first)  # builds both; inference writes nothing
    assert len(new.weights) == len(old.weights)
    new.set_weights(old.get_weights())
    assert new.memory_bytes() == old.memory_bytes()
    old_optimizer, new_optimizer = (make() for make in OPTIMIZERS[optimizer])
    promotions = 0
    for step, batch in enumerate(_batches(kind, 12)):
        old_out, old_grads, old_moved = _step(old, old_optimizer, batch, kind, step)
        new_out, new_grads, new_moved = _step(new, new_optimizer, batch, kind, step)
        for a, b in zip(tf.nest.flatten(old_out), tf.nest.flatten(new_out)):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"outputs, step {step}")
        assert len(old_grads) == len(new_grads)
        for a, b in zip(old_grads, new_grads):
            np.testing.assert_array_equal(_dense(a), _dense(b), err_msg=f"gradient, step {step}")
            assert np.all(np.isfinite(_dense(a)))
        if old_moved is not None:
            assert {k: v.numpy() for k, v in old_moved.items()} == {
                k: v.numpy() for k, v in new_moved.items()
            }, f"migration, step {step}"
            promotions += int(old_moved["promotions"])
        # Tables, sketch, counters and every other state variable.
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=f"weights after step {step}")
    if kind.startswith("cafe") or kind == "adaembed":
        assert promotions > 0, "no promotion: the test did not exercise migration"
    if kind.startswith("cafe"):
        assert int(new.sketch.hot_rows_used()) == int(old.sketch.hot_rows_used()) > 0


def _hot_rows(layer):
    entries = layer.sketch.read_state().entries.numpy()
    return {int(e) >> layer.sketch.config.tag_bits for e in entries if e >= 0}


def test_keras3_migration_resets_adam_moments_of_promoted_rows():
    layer = k3.CafeEmbeddingCollection(**KINDS["cafe"][1])
    optimizer = keras.optimizers.Adam(0.01)
    for batch in _batches("cafe", 12):
        with tf.GradientTape() as tape:
            loss = _loss(layer(batch, training=True))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables)
        )
        index = optimizer._get_variable_index(layer.hot_table)
        moments = (optimizer._momentums[index], optimizer._velocities[index])
        for moment in moments:
            moment.assign(tf.ones_like(moment))
        before = _hot_rows(layer)
        layer.migrate(optimizer)
        promoted = sorted(_hot_rows(layer) - before)
        if promoted and before:
            break
    else:
        pytest.fail("no migration promoted beside rows already hot")
    for moment in moments:
        values = moment.numpy()
        assert np.all(values[promoted] == 0)
        assert np.all(np.delete(values, promoted, axis=0) == 1)  # other rows untouched


class Keras3HarnessTest(testing.TestCase):
    """Keras 3's own layer checks: shapes, weights, serialization, symbolic and eager
    calls, a compiled training step and a mixed-precision policy."""

    @parameterized.named_parameters(
        ("gradient", {}, 2),
        ("frequency", {"importance": "frequency"}, 2),
        ("multi_level", {"multi_level": True, "medium_share": 0.3}, 3),
        ("reference", {"backend": "reference"}, 2),
    )
    def test_run_layer_test_cafe_embedding(self, options, trainable):
        self.run_layer_test(
            k3.CafeEmbedding,
            init_kwargs={
                "vocabulary_size": 1000,
                "combiner": "mean",
                "config": CafeConfig(embedding_dim=8, compression_ratio=10, **options),
            },
            input_data=np.array([[1, 2, 3], [4, 4, 7]], np.int64),
            expected_output_shape=(2, 8),
            expected_output_dtype="float32",
            # the sketch's slots, scores, mass and batches; five counters
            expected_num_trainable_weights=trainable,
            expected_num_non_trainable_weights=9,
        )

    @parameterized.named_parameters(
        *[(kind, kind) for kind in sorted(KINDS) if kind != "cafe_single"]
    )
    def test_collection_serializes_traces_and_trains(self, kind):
        # run_layer_test passes dict inputs as keyword arguments, so a layer whose first
        # argument is {feature: ids} gets the same checks here.
        name, arguments = KINDS[kind]
        layer_class = getattr(k3, name)
        self.run_class_serialization_test(layer_class(**arguments))
        inputs = {
            "user": keras.Input((2,), dtype="int64", name="user"),
            "item": keras.Input((), dtype="int64", name="item"),
        }
        layer = layer_class(**arguments)
        outputs = layer(inputs)
        self.assertEqual(
            {k: tuple(v.shape) for k, v in outputs.items()}, {"user": (None, 4), "item": (None, 4)}
        )
        self.assertTrue(layer.built)
        model = keras.Model(inputs, keras.layers.Concatenate()(list(outputs.values())))
        # With a GPU, compile's default jit_compile="auto" asks this, and XLA cannot
        # compile the layers' ops.
        self.assertFalse(model_supports_jit(model))
        model.compile(optimizer="sgd", loss="mse")
        batch = next(_batches(kind, 1))
        if kind == "adaembed":  # rows only for ids seen before a reallocation
            layer(batch, training=True)
            layer.reallocate()
        before = [w.numpy().copy() for w in layer.trainable_weights]
        model.fit(batch, np.ones((16, 8), np.float32), epochs=1, verbose=0)
        self.assertTrue(
            any(np.any(a != w.numpy()) for a, w in zip(before, layer.trainable_weights))
        )


@pytest.mark.parametrize(
    "kind", ["cafe", "cafe_multi_level", "adaembed", "qr", "offline", "offline_rows"]
)
def test_keras_file_reloads_without_custom_objects(kind, tmp_path):
    name, arguments = KINDS[kind]
    inputs = {
        "user": keras.Input((2,), dtype="int64", name="user"),
        "item": keras.Input((), dtype="int64", name="item"),
    }
    layer = getattr(k3, name)(**arguments)
    outputs = layer(inputs)
    model = keras.Model(
        inputs,
        keras.layers.Dense(1)(keras.layers.Concatenate()([outputs["user"], outputs["item"]])),
    )
    model.compile(optimizer="adam", loss="mse")
    callbacks = {
        "cafe": [k3.CafeMigration(every_n_steps=1)],
        "adaembed": [k3.AdaEmbedReallocation(every_n_steps=2)],
    }
    batches = list(_batches(kind, 6))
    data = tf.data.Dataset.from_tensor_slices(
        (
            {k: tf.concat([b[k] for b in batches], 0) for k in batches[0]},
            tf.ones([16 * len(batches), 1]),
        )
    ).batch(16)
    model.fit(data, epochs=1, verbose=0, callbacks=callbacks.get(kind.split("_")[0], []))
    if kind.startswith("cafe"):
        assert int(layer.sketch.hot_rows_used()) > 0 and int(layer.promotions.numpy()) > 0
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_layer = next(m for m in loaded.layers if isinstance(m, getattr(k3, name)))
    probe = next(_batches(kind, 1, seed=5))
    np.testing.assert_array_equal(model.predict(probe, verbose=0), loaded.predict(probe, verbose=0))
    assert len(loaded_layer.weights) == len(layer.weights)
    for a, b in zip(layer.weights, loaded_layer.weights):  # sketch state included
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    assert loaded_layer.get_config() == layer.get_config()
