"""Every embedding collection of cafe_tf, CAFE and the baselines, takes its inputs under one
contract (`cafe_tf.layers.inputs.check_features`): the same bad input gets the same error
type and message from every kind."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf.layers import (
    AdaEmbedEmbeddingCollection,
    CafeConfig,
    CafeEmbeddingCollection,
    FullEmbeddingCollection,
    HashEmbeddingCollection,
    MDEEmbeddingCollection,
    OfflineSeparationEmbeddingCollection,
    QREmbeddingCollection,
)

FEATURES = {"user": 1000, "item": 200}
MAKERS = {
    "cafe": lambda: CafeEmbeddingCollection(
        FEATURES, CafeConfig(embedding_dim=4, compression_ratio=4)
    ),
    "full": lambda: FullEmbeddingCollection(FEATURES, 4),
    "hash": lambda: HashEmbeddingCollection(FEATURES, 4, compression_ratio=4),
    "qr": lambda: QREmbeddingCollection(FEATURES, 4, compression_ratio=4),
    "mde": lambda: MDEEmbeddingCollection(FEATURES, 4, compression_ratio=4),
    "adaembed": lambda: AdaEmbedEmbeddingCollection(FEATURES, 4, compression_ratio=4),
    "offline": lambda: OfflineSeparationEmbeddingCollection(
        FEATURES, 4, compression_ratio=4, frequencies={"user": ([1, 5], [9, 2]), "item": ([3], [4])}
    ),
}
IDS = {"user": tf.constant([1, 2], tf.int64), "item": tf.constant([3, 3], tf.int64)}

# (inputs, weights, error type, message with the layer's name as {name}).
BAD_INPUTS = {
    "missing feature": (
        {"user": IDS["user"]},
        None,
        ValueError,
        "{name}: inputs lack the features ['item'] (features: ['user', 'item'], inputs: ['user'])",
    ),
    "weights of an unknown feature": (
        IDS,
        {"usr": tf.constant([1.0, 2.0])},
        ValueError,
        "{name}: weights given for unknown features ['usr'] (features: ['user', 'item'])",
    ),
    "inputs not a dict": (
        IDS["user"],
        None,
        TypeError,
        "{name}: inputs must be a dict of feature name to tensor, got EagerTensor (features: "
        "['user', 'item'])",
    ),
    "weights not a dict": (
        IDS,
        IDS["user"],
        TypeError,
        "{name}: weights must be a dict of feature name to tensor, got EagerTensor (features: "
        "['user', 'item'])",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("kind", list(MAKERS))
def test_the_same_bad_input_gets_the_same_error_from_every_layer(kind, case):
    layer = MAKERS[kind]()
    inputs, weights, error, message = BAD_INPUTS[case]
    with pytest.raises(error) as raised:
        layer(inputs, weights=weights)
    assert type(raised.value) is error
    # Keras may wrap the message in the call's context; the message itself is whole.
    assert message.format(name=layer.name) in str(raised.value)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_other_inputs_are_ignored_and_features_left_out_of_weights_weigh_one(kind):
    layer = MAKERS[kind]()
    plain = layer(IDS)
    extra = layer({**IDS, "dense": tf.zeros([2, 3])}, weights={"user": tf.ones([2])})
    assert sorted(extra) == ["item", "user"]
    for name in FEATURES:
        np.testing.assert_array_equal(extra[name], plain[name])
