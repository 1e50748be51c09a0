"""Serving export: a SavedModel that serves without cafe_tf, and Keras model.save round trips."""

import model_utils as mu
import numpy as np
import pytest
import serving_child
import tensorflow as tf
import tf_keras

from cafe_tf import hashing
from cafe_tf.callbacks import CafeMigration
from cafe_tf.layers import CafeConfig, CafeEmbedding, CafeEmbeddingCollection
from cafe_tf.serving import (
    ServingExportError,
    cafe_ops_in_saved_model,
    export_for_serving,
    signature_inputs,
)

INPUT_SIGNATURE = {
    "u": tf.TensorSpec([None], tf.int64),
    "v": tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1),
    "c": tf.TensorSpec([None], tf.string),
    "x": tf.TensorSpec([None, 1], tf.float32),
}


@pytest.fixture(scope="module")
def trained_model():
    """A CafeRanker trained until both CAFE layers have hot rows (so lookups use them)."""
    model = mu.make_model()
    model.fit(
        mu.dataset(mu.make_arrays(640, seed=11), 64),
        epochs=1,
        verbose=0,
        callbacks=[CafeMigration(every_n_steps=2)],
    )
    for layer in (model.embedding, model.c_embedding):
        assert int(layer.promotions.numpy()) > 0
    return model


def _sketch_keys(ids):
    """Sketch keys of a layer's first feature (strings are fingerprinted first)."""
    if ids.dtype == tf.string:
        ids = hashing.string_ids(ids)
    return hashing.field_keys(ids, 0)


def _flat_inputs(features):
    v = features["v"]
    return {
        "u": features["u"].numpy(),
        "c": features["c"].numpy().astype(str),
        "x": features["x"].numpy(),
        "v_values": v.values.numpy(),
        "v_row_lengths": v.row_lengths().numpy(),
    }


def test_export_serves_in_a_process_without_cafe_tf(trained_model, tmp_path):
    model = trained_model
    export_dir = str(tmp_path / "export")
    export_for_serving(model, export_dir, INPUT_SIGNATURE)
    assert cafe_ops_in_saved_model(export_dir) == []
    assert model.embedding.pure_tf_lookups is False  # restored after tracing
    features = mu.eval_features(96, seed=21)
    expected = model(features).numpy()
    # The evaluation batch reads hot rows of both layers (else the check is weak).
    for layer, ids in ((model.embedding, features["u"]), (model.c_embedding, features["c"])):
        rows, _ = layer.sketch.query(_sketch_keys(ids))
        assert np.any(rows.numpy() >= 0)
    inputs = serving_child.serve_in_child(export_dir, _flat_inputs(features), expected, tmp_path)
    assert inputs == sorted(["u", "c", "x", "v_values", "v_row_lengths"])


def test_graph_without_pure_lookups_would_hold_the_custom_op(trained_model, tmp_path):
    """The check in export_for_serving can fail: a plain tf.saved_model.save of the
    same inference function carries the fused CafeRoute op, and export refuses such graphs."""
    model = trained_model
    if model.embedding.sketch.backend != "op":
        pytest.skip("op library not loaded: every graph is pure TF")
    module = tf.Module()
    module.variables_ = list(model.variables)
    module.f = tf.function(lambda f: model(f, training=False), input_signature=[INPUT_SIGNATURE])
    tf.saved_model.save(module, str(tmp_path / "plain"))
    assert "CafeRoute" in cafe_ops_in_saved_model(str(tmp_path / "plain"))

    with pytest.raises(ServingExportError, match="CafeRoute"):
        export_for_serving(_NoSubmodules(model), str(tmp_path / "bad"), INPUT_SIGNATURE)


class _NoSubmodules(tf.Module):
    """Wraps a model so that export_for_serving cannot find its CAFE layers."""

    def __init__(self, model):
        super().__init__()
        self._call = model.__call__
        self._vars = list(model.variables)

    @property
    def submodules(self):
        return ()

    @property
    def variables(self):
        return self._vars

    def __call__(self, features, training=False):
        return self._call(features, training=training)


def test_signature_inputs_flatten_ragged_and_sparse():
    flat = signature_inputs(
        {
            "a": tf.TensorSpec([None], tf.int64),
            "b": tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1),
            "s": tf.SparseTensorSpec([None, 3], tf.int32),
        }
    )
    assert {k: (v.shape.as_list(), v.dtype) for k, v in flat.items()} == {
        "a": ([None], tf.int64),
        "b_values": ([None], tf.string),
        "b_row_lengths": ([None], tf.int64),
        "s_indices": ([None, 2], tf.int64),
        "s_values": ([None], tf.int32),
        "s_dense_shape": ([2], tf.int64),
    }
    with pytest.raises(ValueError, match="defined twice"):
        signature_inputs(
            {
                "b": tf.RaggedTensorSpec([None, None], tf.int64, ragged_rank=1),
                "b_values": tf.TensorSpec([None], tf.int64),
            }
        )


def test_export_single_tensor_model_with_sparse_input(tmp_path):
    layer = CafeEmbedding(
        5000,
        CafeConfig(
            embedding_dim=4,
            compression_ratio=5,
            threshold=2.0,
            importance="frequency",
            fill_free_rows=False,
        ),
        combiner="mean",
    )
    ids = tf.SparseTensor(
        [[0, 0], [0, 1], [1, 0], [2, 2]], tf.constant([1, 2, 1, 1], tf.int64), [3, 3]
    )
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids, training=True))
    tape.gradient(loss, layer.trainable_weights)
    layer.migrate()
    assert int(layer.promotions.numpy()) == 1
    export_for_serving(
        layer,
        str(tmp_path / "e"),
        tf.SparseTensorSpec([None, 3], tf.int64),
        output_name="embedding",
    )
    loaded = tf.saved_model.load(str(tmp_path / "e"))
    out = loaded.signatures["serving_default"](
        input_indices=ids.indices, input_values=ids.values, input_dense_shape=ids.dense_shape
    )
    np.testing.assert_array_equal(out["embedding"].numpy(), layer(ids).numpy())
    np.testing.assert_array_equal(loaded.serve(ids)["embedding"].numpy(), layer(ids).numpy())
    assert int(layer.sketch.hot_rows_used()) > 0  # a hot row was read


def test_keras_model_save_round_trip(trained_model, tmp_path):
    """Full Keras SavedModel round trip with cafe_tf imported: same predictions, the
    CAFE layers come back as CAFE layers with their sketch, and their sketch still learns."""
    model = trained_model
    path = str(tmp_path / "keras_model")
    model.save(path, save_format="tf")
    if model.embedding.sketch.backend == "op":  # the Keras SavedModel needs cafe_tf's ops
        assert "CafeRoute" in cafe_ops_in_saved_model(path)
    # The CAFE layers are registered with Keras: no custom_objects needed.
    loaded = tf_keras.models.load_model(path)
    features = mu.eval_features(64, seed=3)
    np.testing.assert_allclose(
        loaded(features).numpy(), model(features).numpy(), rtol=1e-6, atol=1e-6
    )
    cafe = [m for m in loaded.submodules if isinstance(m, CafeEmbeddingCollection)]
    assert sorted(layer.name for layer in cafe) == ["cafe", "cafe_c"]
    by_name = {layer.name: layer for layer in cafe}
    for original in (model.embedding, model.c_embedding):
        restored = by_name[original.name]
        assert restored.get_config() == original.get_config()
        for a, b in zip(original.weights, restored.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
    restored = by_name["cafe_c"]
    before = int(restored.lookups.numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(restored(tf.constant(["c1", "c1", "c2"]), training=True))
    tape.gradient(loss, restored.trainable_weights)
    assert int(restored.lookups.numpy()) == before + 3
    assert int(restored.sketch.batches.numpy()) == int(model.c_embedding.sketch.batches.numpy()) + 1


def test_export_refuses_an_unbuilt_model(tmp_path):
    layer = CafeEmbedding(100, CafeConfig(embedding_dim=4, compression_ratio=2))
    with pytest.raises(ValueError, match="build the model"):
        export_for_serving(layer, str(tmp_path / "e"), tf.TensorSpec([None], tf.int64))
