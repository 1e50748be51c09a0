"""`import cafe_tf` gives the main names, each public layer is Keras-registered, and a
saved model with CAFE layers reloads without `custom_objects`."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import cafe_tf
from cafe_tf import layers, sketch

MAIN_NAMES = {
    "CafeEmbeddingCollection",
    "CafeEmbedding",
    "CafeConfig",
    "FeatureConfig",
    "CafeMigration",
    "FullEmbeddingCollection",
    "HashEmbeddingCollection",
    "QREmbeddingCollection",
    "MDEEmbeddingCollection",
    "AdaEmbedEmbeddingCollection",
    "OfflineSeparationEmbeddingCollection",
    "AdaEmbedReallocation",
}
LAYERS = [
    cafe_tf.CafeEmbeddingCollection,
    cafe_tf.CafeEmbedding,
    cafe_tf.FullEmbeddingCollection,
    cafe_tf.HashEmbeddingCollection,
    cafe_tf.QREmbeddingCollection,
    cafe_tf.MDEEmbeddingCollection,
    cafe_tf.AdaEmbedEmbeddingCollection,
    cafe_tf.OfflineSeparationEmbeddingCollection,
]


@pytest.mark.parametrize(
    "module", [cafe_tf, layers, sketch], ids=["cafe_tf", "cafe_tf.layers", "cafe_tf.sketch"]
)
def test_all_lists_exactly_what_the_module_exports(module):
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"
    public = {n for n, v in vars(module).items() if not n.startswith("_") and isinstance(v, type)}
    missing = public - set(module.__all__)
    assert not missing, f"exported but not in __all__: {missing}"


def test_top_level_has_the_main_names():
    assert MAIN_NAMES <= set(cafe_tf.__all__)
    assert cafe_tf.CafeEmbeddingCollection is layers.CafeEmbeddingCollection
    assert cafe_tf.CafeMigration is cafe_tf.callbacks.CafeMigration


@pytest.mark.parametrize("layer_class", LAYERS, ids=lambda c: c.__name__)
def test_every_public_layer_is_registered(layer_class):
    name = f"cafe_tf>{layer_class.__name__}"
    assert tf_keras.utils.get_registered_name(layer_class) == name
    assert tf_keras.utils.get_registered_object(name) is layer_class


def _functional_model():
    inputs = {
        "user": tf_keras.Input([], dtype=tf.int64, name="user"),
        "item": tf_keras.Input([], dtype=tf.int64, name="item"),
    }
    cafe = cafe_tf.CafeEmbeddingCollection(
        {"user": 10_000, "item": 2_000},
        cafe_tf.CafeConfig(embedding_dim=4, compression_ratio=20, threshold=1.0),
        name="cafe",
    )
    single = cafe_tf.CafeEmbedding(
        500, cafe_tf.CafeConfig(embedding_dim=4, compression_ratio=5), name="single"
    )
    embedded = cafe(inputs)
    merged = tf_keras.layers.Concatenate()(
        [embedded["user"], embedded["item"], single(inputs["item"])]
    )
    return tf_keras.Model(inputs, tf_keras.layers.Dense(1)(merged))


def test_saved_model_reloads_without_custom_objects(tmp_path):
    model = _functional_model()
    features = {"user": tf.constant([1, 2, 3], tf.int64), "item": tf.constant([7, 7, 8], tf.int64)}
    model.compile(optimizer="adam", loss="mse")
    model.fit(
        tf.data.Dataset.from_tensors((features, tf.ones([3, 1]))).repeat(4),
        verbose=0,
        callbacks=[cafe_tf.CafeMigration()],
    )
    path = str(tmp_path / "model")
    model.save(path, save_format="tf")
    loaded = tf_keras.models.load_model(path)  # no custom_objects
    kinds = {type(layer) for layer in loaded.layers}
    assert {cafe_tf.CafeEmbeddingCollection, cafe_tf.CafeEmbedding} <= kinds
    np.testing.assert_allclose(loaded(features).numpy(), model(features).numpy(), rtol=1e-6)
