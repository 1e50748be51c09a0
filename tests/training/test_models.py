"""DLRM and DCN: they learn id-dependent labels through any embedding collection."""

import model_utils as mu
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from cafe_tf.callbacks import CafeMigration
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.experiment import EMBEDDINGS, make_embedding
from cafe_tf.layers.baselines import HashEmbeddingCollection
from cafe_tf.layers.offline import count_frequencies
from cafe_tf.models import DCN, DLRM
from cafe_tf.reallocation import AdaEmbedReallocation

VOCABULARY = {"user": 200, "item": 100, "site": 50}
D = 8
BATCH = 128


def _data(num_examples, seed):
    """(features, label) arrays whose labels depend mostly on the ids.

    Every id has a fixed effect (the same for every seed); an example clicks
    with probability sigmoid(sum of its ids' effects + 0.5 * dense[0]).
    """
    truth = np.random.default_rng(7)
    effects = {name: truth.normal(0.0, 1.0, size) for name, size in VOCABULARY.items()}
    rng = np.random.default_rng(seed)
    # Skewed, as real id traffic is: a few ids take most examples.
    sparse = {name: (rng.zipf(1.3, num_examples) - 1) % size for name, size in VOCABULARY.items()}
    dense = rng.normal(size=(num_examples, 3)).astype(np.float32)
    logits = sum(effects[name][ids] for name, ids in sparse.items()) + 0.5 * dense[:, 0]
    labels = (rng.random(num_examples) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return {"dense": dense, "sparse": sparse}, labels[:, None]


def _dataset(num_examples, seed):
    return tf.data.Dataset.from_tensor_slices(_data(num_examples, seed)).batch(BATCH)


def _without_dense(features):
    """`features` with zero dense fields, as logs like Avazu or KDD12 have."""
    return {**features, "dense": features["dense"][:, :0]}


def _embeddings():
    return HashEmbeddingCollection(
        VOCABULARY,
        D,
        compression_ratio=2,
        embeddings_initializer=tf_keras.initializers.RandomUniform(-0.05, 0.05, seed=1),
    )


MODELS = {
    "dlrm": lambda embeddings: DLRM(embeddings, bottom_units=(16,), top_units=(32,)),
    "dcn": lambda embeddings: DCN(embeddings, num_cross_layers=2, deep_units=(32,)),
}


@pytest.mark.parametrize("kind", EMBEDDINGS)
@pytest.mark.parametrize("name", list(MODELS))
def test_fit_learns_id_dependent_labels(name, kind):
    tf_keras.utils.set_random_seed(0)
    embeddings = (
        _embeddings()
        if kind == "hash"
        else make_embedding(kind, VOCABULARY, D, compression_ratio=2, threshold=5.0)
        if kind.startswith("cafe")
        else make_embedding(
            kind, VOCABULARY, D, 2, frequencies=count_frequencies(_dataset(8192, seed=0))
        )
    )
    model = MODELS[name](embeddings)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.005))
    callbacks = (
        [CafeMigration()]
        if kind.startswith("cafe")
        else [AdaEmbedReallocation(every_n_steps=8)]
        if kind == "adaembed"
        else []
    )
    history = model.fit(_dataset(8192, seed=0), epochs=3, verbose=0, callbacks=callbacks)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    if kind.startswith("cafe"):
        assert int(embeddings.promotions.numpy()) > 0
    result = model.evaluate(_dataset(2048, seed=1), return_dict=True, verbose=0)
    assert {"auc", "logloss", "loss"} <= set(result)
    assert result["auc"] > 0.65, result


def _matmul_input_shapes(graph):
    """{op name: input shapes} of every matrix product in `graph` and the functions it calls."""
    found = {}
    for op in graph.get_operations():
        if "MatMul" in op.type or op.type == "Einsum":
            found[op.name] = [x.shape.as_list() for x in op.inputs]
        for attr in ("f", "then_branch", "else_branch", "body", "cond"):
            try:
                name = op.get_attr(attr).name
            except ValueError:
                continue
            found.update(_matmul_input_shapes(graph._get_function(name).graph))
    return found


@pytest.mark.parametrize("kind", EMBEDDINGS)
@pytest.mark.parametrize("name", list(MODELS))
def test_no_matrix_product_sees_a_zero_width_input_without_dense_fields(name, kind):
    # Some CPUs' oneDNN kernels abort the process on a zero-width matmul (a [B, 0] input to a
    # dense layer), so the traced training step, forward and backward, must have none. It is
    # traced, never run: the test fails on every CPU, not by aborting on those.
    features, labels = _data(BATCH, seed=0)
    features = _without_dense(features)
    assert features["dense"].shape == (BATCH, 0)
    model = MODELS[name](
        make_embedding(kind, VOCABULARY, D, 2, frequencies=count_frequencies([features["sparse"]]))
    )

    @tf.function
    def train_step(features, labels):
        with tf.GradientTape() as tape:
            loss = model.compute_loss((features, labels), training=True)
        return tape.gradient(loss, model.trainable_variables)

    graph = train_step.get_concrete_function(features, labels).graph
    # The [B, 0] dense features reach no op at all (DCN concatenates the embeddings alone) ...
    (dense,) = [x for x in graph.inputs if x.shape.as_list() == [BATCH, 0]]
    assert not dense.consumers(), [op.name for op in dense.consumers()]
    # ... and no product anywhere has a zero dimension.
    shapes = _matmul_input_shapes(graph)
    assert len(shapes) >= 4, shapes  # the walk sees the model's products, forward and backward
    zero_width = {op: s for op, s in shapes.items() if any(0 in shape for shape in s)}
    assert not zero_width, zero_width
    if name == "dlrm":
        assert not model.bottom_mlp.built  # the dense fields' MLP has nothing to read


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_learns_without_dense_fields(name):
    tf_keras.utils.set_random_seed(0)
    model = MODELS[name](_embeddings())
    model.compile(optimizer=tf_keras.optimizers.Adam(0.005))

    def dataset(num_examples, seed):
        features, labels = _data(num_examples, seed)
        return tf.data.Dataset.from_tensor_slices((_without_dense(features), labels)).batch(BATCH)

    history = model.fit(dataset(4096, seed=0), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(dataset(2048, seed=1), return_dict=True, verbose=0)["auc"] > 0.65
    # The trained model round-trips through its config.
    features = _without_dense(_data(8, seed=2)[0])
    clone = type(model).from_config(model.get_config())
    clone(features)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(features).numpy(), model(features).numpy())


def test_dlrm_without_dense_fields_needs_two_embedded_features():
    model = DLRM(
        HashEmbeddingCollection({"user": 10}, D, compression_ratio=1),
        bottom_units=(4,),
        top_units=(4,),
    )
    with pytest.raises(ValueError, match="at least two embedded features"):
        model({"dense": np.zeros((2, 0), np.float32), "sparse": {"user": np.array([1, 2])}})


@pytest.mark.parametrize(
    "make",
    [
        lambda: DLRM(_embeddings(), bottom_units=(16, 0)),
        lambda: DLRM(_embeddings(), top_units=(0,)),
        lambda: DLRM(_embeddings(), embedding_dim=0),
        lambda: DCN(_embeddings(), deep_units=(8, 0)),
        lambda: DCN(_embeddings(), projection_dim=0),
    ],
    ids=["bottom", "top", "dim", "deep", "rank"],
)
def test_zero_widths_are_rejected(make):
    with pytest.raises(ValueError, match="must be positive ints"):
        make()


def test_dense_features_of_unknown_width_are_rejected():
    model = DLRM(_embeddings(), bottom_units=(4,), top_units=(4,))
    features = _data(8, seed=0)[0]
    call = tf.function(model.__call__).get_concrete_function
    with pytest.raises(ValueError, match=r"n_dense known"):
        call(
            {
                "dense": tf.TensorSpec([None, None], tf.float32),
                "sparse": {k: tf.constant(v) for k, v in features["sparse"].items()},
            }
        )


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_is_mean_per_example_log_loss(name):
    features, labels = _data(8, seed=3)
    model = MODELS[name](_embeddings())
    logits = model(features).numpy()[:, 0]
    per_example = np.logaddexp(0.0, logits) - labels[:, 0] * logits
    np.testing.assert_allclose(
        model.compute_loss((features, labels)), per_example.mean(), rtol=1e-5
    )
    # Sample weights scale each example; the divisor stays the batch size.
    weights = np.linspace(0.0, 2.0, 8).astype(np.float32)
    np.testing.assert_allclose(
        model.compute_loss((features, labels, weights)),
        (weights * per_example).sum() / 8,
        rtol=1e-5,
    )


class _TrainingSpy(HashEmbeddingCollection):
    """Records the `training` argument each trace passes to the embedding layer."""

    def call(self, inputs, weights=None, training=None):
        self.seen.append(training)
        return super().call(inputs, weights, training)


@pytest.mark.parametrize("name", list(MODELS))
def test_training_flag_reaches_embedding_layer(name):
    embeddings = _TrainingSpy(VOCABULARY, D, compression_ratio=2)
    embeddings.seen = []
    model = MODELS[name](embeddings)
    model.compile(optimizer="sgd")
    data = _dataset(BATCH, seed=0)
    model.fit(data, verbose=0)
    assert set(embeddings.seen) == {True}
    embeddings.seen.clear()
    model.evaluate(data, verbose=0)
    model.predict(data.map(lambda features, label: features), verbose=0)
    assert embeddings.seen and set(embeddings.seen) == {False}


@pytest.mark.parametrize("name", list(MODELS))
def test_config_round_trip(name):
    model = MODELS[name](_embeddings())
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.embedding_layer, HashEmbeddingCollection)


def test_dlrm_needs_an_embedding_dim():
    class Anonymous(tf_keras.layers.Layer):
        def call(self, inputs):
            return inputs

    with pytest.raises(ValueError, match="embedding_dim"):
        DLRM(Anonymous())
    assert DLRM(Anonymous(), embedding_dim=4).embedding_dim == 4


def test_mirrored_strategy_matches_one_device():
    # The loss recipe (per-example loss / global batch) makes a 2-replica step
    # the same as a one-device step.
    data = _dataset(4 * BATCH, seed=0)

    def trained(strategy):
        with strategy.scope():
            tf_keras.utils.set_random_seed(0)
            model = MODELS["dlrm"](_embeddings())
            model.compile(optimizer=tf_keras.optimizers.SGD(0.5))
        model.fit(data, epochs=1, verbose=0, shuffle=False)
        return model

    one = trained(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = trained(mu.mirrored_strategy())
    assert len(one.weights) == len(two.weights)
    for a, b in zip(one.weights, two.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.name)
    # ... and training did move the (seeded) embeddings.
    assert not np.allclose(one.embedding_layer.weights[0].numpy(), _embeddings().weights[0].numpy())


@pytest.mark.parametrize(
    "name, kind, bad",
    [("dlrm", "cafe", np.nan), ("dcn", "cafe", np.inf), ("dlrm", "hash", -np.inf)],
)
def test_nan_or_inf_dense_feature_fails_and_changes_no_state(name, kind, bad):
    tf_keras.utils.set_random_seed(0)
    embeddings = make_embedding(kind, VOCABULARY, D, compression_ratio=2, threshold=5.0)
    model = MODELS[name](embeddings)
    model.compile(optimizer=tf_keras.optimizers.Adam(0.005))
    model.fit(_dataset(BATCH, seed=0), verbose=0)  # creates every variable, optimizer's too

    def state():
        return [v.numpy().copy() for v in model.variables + model.optimizer.variables]

    before = state()
    features, labels = _data(BATCH, seed=1)
    features["dense"][5, 2] = bad
    data = tf.data.Dataset.from_tensor_slices((features, labels)).batch(BATCH)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=rf"dense features hold NaN or inf: {bad} at \[5, 2\] of the batch",
    ):
        model.fit(data, verbose=0)
    for name_, old, new in zip(
        [v.name for v in model.variables + model.optimizer.variables], before, state()
    ):
        np.testing.assert_array_equal(new, old, err_msg=name_)
    with pytest.raises(tf.errors.InvalidArgumentError, match="dense features hold NaN"):
        model.predict(data.map(lambda f, y: f), verbose=0)


@pytest.mark.parametrize(
    "name, kind, options",
    [(name, "cafe", {}) for name in MODELS]
    + [("dlrm", "cafe_ml", dict(share_hashed_tables=True, medium_share=0.3))],
)
def test_pure_tf_sketch_trains_the_same_bits_as_the_ops(name, kind, options):
    """A model trained with CAFE's pure-TF sketch and lookups (`backend="reference"`, what
    a process without the op library runs) ends with the weights and sketch of the same
    model trained through the op library, with migration every step. On 26 fields, where
    the gradient reaching the embeddings has lost its static width; also with the fields
    sharing their hashed and medium tables."""
    data = SyntheticCriteo(SyntheticCriteoConfig(seed=0, rows_per_day=1024, scale=1e-3))

    def trained(backend):
        tf_keras.backend.clear_session()  # the same layer names in both models
        tf_keras.utils.set_random_seed(0)
        embeddings = make_embedding(
            kind, data.vocabulary_sizes, D, compression_ratio=10, backend=backend, **options
        )
        assert embeddings.layout.shared_hashed_tables == bool(options)
        assert embeddings.multi_level == (kind == "cafe_ml")
        model = MODELS[name](embeddings)
        model.compile(optimizer=tf_keras.optimizers.Adagrad(0.05))
        model.fit(data.day_dataset(0, 256), verbose=0, callbacks=[CafeMigration()])
        assert int(embeddings.promotions.numpy()) > 0
        return {v.name: v.numpy() for v in model.variables}

    ops, reference = trained("op"), trained("reference")
    assert sorted(ops) == sorted(reference)
    for variable, value in ops.items():
        np.testing.assert_array_equal(value, reference[variable], err_msg=variable)
