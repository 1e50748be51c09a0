"""What every baseline added for the paper's comparison shares: budget accounting,
too-small budgets, determinism, training, and serialisation (config, Keras
serialize/deserialize, SavedModel reload without custom_objects)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf.experiment import EMBEDDINGS, make_embedding
from cafe_tf.layers.adaembed import AdaEmbedEmbeddingCollection
from cafe_tf.layers.mde import MDEEmbeddingCollection
from cafe_tf.layers.offline import OfflineSeparationEmbeddingCollection
from cafe_tf.reallocation import AdaEmbedReallocation

D = 8
VOCABULARY = {"small": 20, "medium": 500, "large": 5000}
# Counts of a Zipf-like sample of each feature's ids (what count_frequencies returns).
_ids = np.arange(200)
FREQUENCIES = {
    name: (_ids[: min(200, n)], (1000 // (1 + _ids[: min(200, n)])).astype(np.int64))
    for name, n in VOCABULARY.items()
}


def _kwargs(cls):
    return {"frequencies": FREQUENCIES} if cls is OfflineSeparationEmbeddingCollection else {}


CLASSES = [
    pytest.param(MDEEmbeddingCollection, id="mde"),
    pytest.param(AdaEmbedEmbeddingCollection, id="adaembed"),
    pytest.param(OfflineSeparationEmbeddingCollection, id="offline"),
]


def _batch(seed, size=64):
    rng = np.random.default_rng(seed)
    return {
        name: tf.constant(np.minimum(rng.zipf(1.3, size) - 1, n - 1), tf.int64)
        for name, n in VOCABULARY.items()
    }


@pytest.mark.parametrize("ratio", [2, 10, 100], ids=lambda r: f"{r}x")
@pytest.mark.parametrize("cls", CLASSES)
def test_memory_within_budget(cls, ratio):
    layer = cls(VOCABULARY, D, compression_ratio=ratio, **_kwargs(cls))
    budget = budget_lib.full_table_bytes(list(VOCABULARY.values()), D) // ratio
    assert layer.budget_bytes == budget
    # memory_bytes counts every variable: tables, projections, indexes, counters.
    held = sum(v.shape.num_elements() * v.dtype.size for v in layer.weights)
    assert layer.memory_bytes() == held <= budget
    # The budget is used, not left idle (one row's worth of rounding at most),
    # except by MDE, whose tables of one row per value may need less.
    if cls is not MDEEmbeddingCollection:
        assert held > budget - 2 * (D * 4 + 24)


@pytest.mark.parametrize("cls", CLASSES)
def test_too_small_budget_raises_budget_too_small(cls):
    with pytest.raises(budget_lib.BudgetTooSmallError, match="too small for .* needs at least"):
        cls(VOCABULARY, D, budget_bytes=40, **_kwargs(cls))


@pytest.mark.parametrize("kind", ["mde", "adaembed", "offline"])
def test_make_embedding_kinds(kind):
    layer = make_embedding(kind, VOCABULARY, D, 10, frequencies=FREQUENCIES)
    assert layer.name == kind and layer.memory_bytes() <= layer.budget_bytes
    with pytest.raises(budget_lib.BudgetTooSmallError):
        make_embedding(kind, VOCABULARY, D, 10**6, frequencies=FREQUENCIES)


def _train(cls, seed, steps=30):
    """A DLRM-free learnable task: the label is a fixed function of the ids."""
    tf_keras.utils.set_random_seed(seed)
    layer = cls(VOCABULARY, D, compression_ratio=4, **_kwargs(cls))
    inputs = {name: tf_keras.Input(shape=(), dtype=tf.int64, name=name) for name in VOCABULARY}
    out = layer(inputs)
    logit = tf_keras.layers.Dense(1)(tf_keras.layers.Concatenate()([out[n] for n in sorted(out)]))
    model = tf_keras.Model(inputs, logit)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(0.05),
        loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
    )
    batches = [_batch(i, 256) for i in range(steps)]
    labels = [tf.cast(b["medium"] % 2 == 0, tf.float32)[:, None] for b in batches]
    dataset = tf.data.Dataset.from_tensor_slices(
        ({n: tf.stack([b[n] for b in batches]) for n in VOCABULARY}, tf.stack(labels))
    )
    callbacks = (
        [AdaEmbedReallocation(every_n_steps=5)] if cls is AdaEmbedEmbeddingCollection else []
    )
    history = model.fit(dataset, epochs=3, verbose=0, callbacks=callbacks)
    return layer, history.history["loss"]


@pytest.mark.parametrize("cls", CLASSES)
def test_training_learns_and_is_deterministic(cls):
    layer, losses = _train(cls, seed=3)
    assert losses[-1] < 0.8 * losses[0]
    again, losses_again = _train(cls, seed=3)
    assert losses_again == losses
    for a, b in zip(layer.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("cls", CLASSES)
def test_config_round_trip(cls):
    layer = cls(VOCABULARY, D, compression_ratio=10, name="emb", **_kwargs(cls))
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config and clone.memory_bytes() == layer.memory_bytes()
    clone = tf_keras.layers.deserialize(tf_keras.layers.serialize(layer))
    assert type(clone) is cls and clone.get_config() == config


@pytest.mark.parametrize("cls", CLASSES)
def test_saved_model_reload_without_custom_objects(cls, tmp_path):
    layer, _ = _train(cls, seed=0, steps=4)
    inputs = {name: tf_keras.Input(shape=(), dtype=tf.int64, name=name) for name in VOCABULARY}
    model = tf_keras.Model(inputs, layer(inputs))
    model.save(str(tmp_path / "model"), save_format="tf")
    loaded = tf_keras.models.load_model(str(tmp_path / "model"))
    assert type(loaded.layers[-1]) is cls
    batch = _batch(99)
    expected, actual = model(batch), loaded(batch)
    for name in VOCABULARY:
        np.testing.assert_array_equal(actual[name], expected[name])
    assert np.abs(np.asarray(expected["small"])).sum() > 0  # trained rows, not all zeros


INTEGER_DTYPES = [tf.int8, tf.int16, tf.int32, tf.uint8, tf.uint16, tf.uint32, tf.uint64]


@pytest.mark.parametrize("kind", EMBEDDINGS)
def test_every_integer_id_dtype_means_the_int64_of_its_value(kind):
    """CAFE and every baseline take ids of any integer dtype, mixed across features, as
    the int64 ids of the same values; uint64 ids >= 2**63 as the int64 of the same bits."""
    layer = make_embedding(kind, VOCABULARY, D, 10, frequencies=FREQUENCIES)
    small = np.array([0, 1, 7, 100, 127])  # fits every dtype
    as_int64 = layer({name: tf.constant(small, tf.int64) for name in VOCABULARY})
    for dtype in INTEGER_DTYPES:
        # One feature of this dtype, the others int64 and int32: mixed in one call.
        out = layer(
            {
                "small": tf.constant(small, dtype),
                "medium": tf.constant(small, tf.int32),
                "large": tf.constant(small, tf.int64),
            }
        )
        for name in VOCABULARY:
            np.testing.assert_array_equal(out[name], as_int64[name], err_msg=f"{dtype.name}")
    high = np.array([2**64 - 1, 2**63, 2**63 - 1, 5], np.uint64)
    unsigned = layer({name: tf.constant(high) for name in VOCABULARY})["large"].numpy()
    same_bits = layer({name: tf.constant(high.view(np.int64)) for name in VOCABULARY})["large"]
    np.testing.assert_array_equal(unsigned, same_bits)
    if kind != "adaembed":  # AdaEmbed embeds ids it never trained on as zeros
        assert len({row.tobytes() for row in unsigned}) == len(high)  # distinct ids stay apart


@pytest.mark.parametrize("kind", EMBEDDINGS)
@pytest.mark.parametrize("dtype", [tf.float32, tf.bool])
def test_non_integer_ids_are_refused_naming_feature_and_dtype(kind, dtype):
    layer = make_embedding(kind, VOCABULARY, D, 10, frequencies=FREQUENCIES)
    inputs = {name: tf.constant([1, 0], tf.int64) for name in VOCABULARY}
    inputs["medium"] = tf.cast(inputs["medium"], dtype)
    with pytest.raises(
        TypeError, match=f"feature 'medium': ids must be integers .*, got {dtype.name}"
    ):
        layer(inputs)
