"""keras-rs ranking models over cafe_tf.keras3 embeddings, and their tf.data pipelines
(shared by the Keras 3 tests)."""

import keras
import keras_rs
import numpy as np
import tensorflow as tf

import cafe_tf.keras3 as cafe

VOCABULARY = {"u": 20_000, "v": 5_000}
DIM = 8
DENSE = 2
INTERACTIONS = ("dot", "cross")


def config(**overrides) -> cafe.CafeConfig:
    """Frequency importance and a low threshold: the frequent ids of "u" get promoted within
    a few batches."""
    return cafe.CafeConfig(
        **{
            "embedding_dim": DIM,
            "compression_ratio": 50,
            "importance": "frequency",
            "threshold": 2.0,
            **overrides,
        }
    )


def arrays(seed: int, n: int):
    """Ids 0..9 of "u" are frequent and decide the label; everything else is noise."""
    rng = np.random.default_rng(seed)
    hot = rng.random(n) < 0.6
    u = np.where(hot, rng.integers(0, 10, n), rng.integers(10, VOCABULARY["u"], n))
    v = rng.integers(0, VOCABULARY["v"], n)
    label = np.where(hot, u % 2 == 0, rng.random(n) < 0.3).astype(np.float32)
    features = {"numeric": rng.normal(size=(n, DENSE)).astype(np.float32), "u": u, "v": v}
    return features, label[:, None]


def dataset(seed: int, n: int = 1024, batch_size: int = 128) -> tf.data.Dataset:
    return (
        tf.data.Dataset.from_tensor_slices(arrays(seed, n))
        .batch(batch_size, drop_remainder=True)
        .prefetch(2)
    )


def ranking_model(embedding, interaction: str = "dot") -> keras.Model:
    """A functional keras-rs ranking model over `embedding`'s features: DLRM-style
    (`keras_rs.layers.DotInteraction` of the bottom MLP and the embeddings) or DCN (two
    `keras_rs.layers.FeatureCross` layers over their concatenation), then a top MLP."""
    inputs = {
        "numeric": keras.Input((DENSE,), name="numeric"),
        **{name: keras.Input((), dtype="int64", name=name) for name in VOCABULARY},
    }
    vectors = embedding({name: inputs[name] for name in VOCABULARY})
    bottom = keras.layers.Dense(DIM, activation="relu")(inputs["numeric"])
    towers = [bottom] + [vectors[name] for name in VOCABULARY]
    if interaction == "dot":
        x = keras.layers.Concatenate()([bottom, keras_rs.layers.DotInteraction()(towers)])
    elif interaction == "cross":
        x0 = keras.layers.Concatenate()(towers)
        x = keras_rs.layers.FeatureCross()(x0, keras_rs.layers.FeatureCross()(x0))
    else:
        raise ValueError(f"interaction must be one of {INTERACTIONS}, got {interaction!r}")
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def compile_model(model: keras.Model, learning_rate: float = 0.05) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model
