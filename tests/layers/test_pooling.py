"""`inputs.pool`: features with one id per example and no weights pool to their vectors
as they are, with no segment sum; the others as before."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf.layers import inputs

rng = np.random.default_rng(5)
VECTORS = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))


def _pool_and_gradient(ids, combiner, weights=None):
    """pool's output and the gradient of sum(output * upstream) with respect to the vectors,
    in a tf.function, and the op types of its graph."""
    upstream = tf.constant(rng.normal(size=(3, 4)).astype(np.float32))

    @tf.function
    def run():
        with tf.GradientTape() as tape:
            tape.watch(VECTORS)
            flat = inputs.flatten("a", ids, weights)
            pooled = inputs.pool(VECTORS, flat, combiner)
            loss = tf.reduce_sum(pooled * upstream)
        return pooled, tape.gradient(loss, VECTORS)

    pooled, gradient = run()
    ops = {op.type for op in run.get_concrete_function().graph.get_operations()}
    return pooled.numpy(), gradient.numpy(), upstream.numpy(), ops


@pytest.mark.parametrize("combiner", inputs.COMBINERS)
@pytest.mark.parametrize(
    "ids",
    [tf.constant([4, 7, 4], tf.int64), tf.constant([[4], [7], [4]], tf.int32)],
    ids=["[B]", "[B, 1]"],
)
def test_one_id_per_example_pools_to_its_vector(ids, combiner):
    pooled, gradient, upstream, ops = _pool_and_gradient(ids, combiner)
    np.testing.assert_array_equal(pooled, VECTORS.numpy())
    np.testing.assert_array_equal(gradient, upstream)
    assert "UnsortedSegmentSum" not in ops


@pytest.mark.parametrize("combiner", inputs.COMBINERS)
@pytest.mark.parametrize(
    "ids, weights",
    [
        (tf.constant([4, 7, 4], tf.int64), tf.constant([0.5, 2.0, 1.5])),
        (tf.ragged.constant([[4], [7], [4]], tf.int64), None),
        (tf.constant([[4, 7, 4]], tf.int64), None),
    ],
    ids=["weighted [B]", "ragged", "[1, 3]"],
)
def test_other_features_are_summed_per_example(ids, weights, combiner):
    pooled, gradient, upstream, ops = _pool_and_gradient(ids, combiner, weights)
    examples = inputs.flatten("a", ids).examples.numpy()
    w = np.ones(3, np.float32) if weights is None else weights.numpy()
    expected = np.zeros((int(examples.max()) + 1, 4), np.float32)
    np.add.at(expected, examples, VECTORS.numpy() * w[:, None])
    scale = {"sum": None, "mean": w, "sqrtn": w**2}[combiner]
    if scale is not None:
        total = np.bincount(examples, scale)
        expected /= (np.sqrt(total) if combiner == "sqrtn" else total)[:, None]
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)
    assert "UnsortedSegmentSum" in ops
