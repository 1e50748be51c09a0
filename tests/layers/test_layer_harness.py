"""tf_keras's own layer test harness (`test_utils.layer_test`) over every embedding layer kind:
weights get/set, the functional and Sequential APIs, `compute_output_shape` and
`compute_output_signature` against real outputs, config round trips and a training step."""

import numpy as np
import pytest
import tensorflow as tf
from tf_keras.src.testing_infra import test_utils

from cafe_tf.layers import (
    AdaEmbedEmbeddingCollection,
    CafeConfig,
    CafeEmbedding,
    CafeEmbeddingCollection,
    FullEmbeddingCollection,
    HashEmbeddingCollection,
    MDEEmbeddingCollection,
    OfflineSeparationEmbeddingCollection,
    QREmbeddingCollection,
)

D = 4
VOCABULARY = 1000
IDS = np.array([[1, 2], [3, 3], [999, 1], [7, 40]], np.int64)
CAFE = {"config": CafeConfig(embedding_dim=D, compression_ratio=10)}
BASELINE = {"embedding_dim": D, "compression_ratio": 10}
# Collection classes and their arguments besides the features.
COLLECTIONS = {
    "cafe": (CafeEmbeddingCollection, CAFE),
    "full": (FullEmbeddingCollection, {"embedding_dim": D}),
    "hash": (HashEmbeddingCollection, BASELINE),
    "qr": (QREmbeddingCollection, BASELINE),
    "mde": (MDEEmbeddingCollection, BASELINE),
    "adaembed": (AdaEmbedEmbeddingCollection, BASELINE),
    "offline": (
        OfflineSeparationEmbeddingCollection,
        {**BASELINE, "frequencies": {"ids": ([3, 1], [10, 5])}},
    ),
}


def _single_feature(collection):
    """`collection` restricted to one feature, "ids": layer_test feeds one tensor and
    expects one back, as `CafeEmbedding` does for `CafeEmbeddingCollection`."""

    class SingleFeature(collection):
        def __init__(self, vocabulary_size, **kwargs):
            kwargs.pop("features", None)
            super().__init__({"ids": vocabulary_size}, **kwargs)

        def call(self, ids, training=None):
            return super().call({"ids": ids}, training=training)["ids"]

        def compute_output_shape(self, input_shape):
            return super().compute_output_shape({"ids": input_shape})["ids"]

        def get_config(self):
            config = super().get_config()
            config["vocabulary_size"] = config.pop("features")[0]["vocabulary_size"]
            return config

    return SingleFeature


# CAFE in its own single-feature form, every collection (CAFE's too) through the adapter.
LAYERS = {
    "cafe_embedding": (CafeEmbedding, CAFE),
    **{kind: (_single_feature(cls), kwargs) for kind, (cls, kwargs) in COLLECTIONS.items()},
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_tf_keras_layer_test_passes(kind):
    layer_cls, kwargs = LAYERS[kind]
    output = test_utils.layer_test(
        layer_cls,
        kwargs={"vocabulary_size": VOCABULARY, **kwargs},
        input_data=IDS,
        expected_output_dtype="float32",
        expected_output_shape=(None, D),
        custom_objects={"SingleFeature": layer_cls},
    )
    assert output.shape == (len(IDS), D)


@pytest.mark.parametrize("kind", sorted(COLLECTIONS))
def test_collection_output_shapes_match_a_call_on_every_input_kind(kind):
    collection, kwargs = COLLECTIONS[kind]
    names = ["ids", "multi", "ragged", "sparse"]  # "ids": the feature of offline's counts
    layer = collection({name: VOCABULARY for name in names}, **kwargs)
    inputs = {
        "ids": tf.constant([1, 2, 3]),
        "multi": tf.constant(IDS[:3]),
        "ragged": tf.ragged.constant([[1], [], [2, 3, 4]], tf.int64),
        "sparse": tf.sparse.from_dense(tf.constant([[0, 5], [6, 0], [7, 8]])),
    }
    input_shapes = {name: value.shape for name, value in inputs.items()}
    input_shapes["sparse"] = tf.TensorShape([None, 2])  # as a Keras sparse input has it
    shapes = layer.compute_output_shape(input_shapes)
    outputs = layer(inputs)
    assert shapes == {"ids": [3, D], "multi": [3, D], "ragged": [3, D], "sparse": [None, D]}
    for name in names:
        assert shapes[name].is_compatible_with(outputs[name].shape)
    with pytest.raises(ValueError, match=r"lack features \['sparse'\]"):
        layer.compute_output_shape({name: input_shapes[name] for name in names[:3]})
    with pytest.raises(ValueError, match="feature 'ids': ids must be"):
        layer.compute_output_shape({**input_shapes, "ids": [3, 2, 1]})
