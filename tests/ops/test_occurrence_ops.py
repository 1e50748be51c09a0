"""The op library's per-occurrence reductions (CafeSegmentRowSums, CafePairImportance,
CafeExpandGradient) equal their pure-TF definitions (cafe_tf/layers/occurrences.py) bit
for bit."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf.layers import occurrences
from cafe_tf.sketch import HotSketch, SketchConfig

pytestmark = pytest.mark.skipif(
    HotSketch(SketchConfig(num_buckets=1, hot_rows=1, threshold=1.0)).backend != "op",
    reason="op library not loaded",
)


def _rows(rng, n, d):
    """Rows whose magnitudes span many binades, so the order of every sum shows."""
    scale = 10.0 ** rng.uniform(-6, 6, (n, 1))
    return (rng.standard_normal((n, d)) * scale).astype(np.float32)


def _segments(rng, n, num_segments, skew):
    """n ids below num_segments: uniform (skew None), Zipf (skew > 1), or "runs" of
    consecutive equal ids (1 to 40 long), which the ops sum in registers."""
    if num_segments == 0:
        return np.zeros(0, np.int32)
    if skew == "runs":
        ids = np.repeat(rng.integers(0, num_segments, n), rng.integers(1, 41, n))[:n]
    else:
        ids = rng.zipf(skew, n) - 1 if skew else rng.integers(0, num_segments, n)
    return np.minimum(ids, num_segments - 1).astype(np.int32)


CASES = [  # (n, d, num_segments, skew); d: SSE column blocks of 16, 12, 4 and none
    (0, 16, 0, None),
    (0, 4, 5, None),
    (1, 1, 1, None),
    (7, 3, 7, None),
    (1000, 16, 1, None),
    (5000, 16, 300, 1.2),
    (20000, 8, 4000, 1.05),
    (3000, 1, 3000, None),
    (257, 5, 40, 2.0),
    (4000, 16, 50, "runs"),
    (3000, 20, 9, "runs"),
    (2000, 64, 300, 1.3),
    (1500, 12, 1, "runs"),
    (999, 3, 20, "runs"),
]


@pytest.mark.parametrize("n, d, num_segments, skew", CASES)
def test_segment_row_sums_equal_the_reference(n, d, num_segments, skew):
    rng = np.random.default_rng(n + d)
    rows = _rows(rng, n, d)
    ids = _segments(rng, n, num_segments, skew)
    got = occurrences.segment_row_sums(rows, ids, num_segments, fused=True)
    expected = occurrences.segment_row_sums(rows, ids, num_segments, fused=False)
    assert got.shape == (num_segments, d)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    sequential = np.zeros((num_segments, d), np.float32)
    np.add.at(sequential, ids, rows)  # occurrence order, one float32 add at a time
    np.testing.assert_array_equal(got.numpy(), sequential)


@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("n, d, num_pairs, skew", CASES)
def test_pair_importance_equals_the_reference(n, d, num_pairs, skew, norm):
    rng = np.random.default_rng(10 * n + d)
    rows = _rows(rng, n, d if norm else 1)
    pairs = _segments(rng, n, num_pairs, skew)
    got = occurrences.pair_importance(rows, pairs, num_pairs, norm, fused=True)
    expected = occurrences.pair_importance(rows, pairs, num_pairs, norm, fused=False)
    for a, b in zip(got, expected):
        assert a.dtype == tf.float64 and a.shape == (num_pairs,)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(got[1].numpy(), np.bincount(pairs, minlength=num_pairs))
    values = np.linalg.norm(rows.astype(np.float64), axis=1) if norm else np.abs(rows[:, 0])
    np.testing.assert_allclose(got[0].numpy(), np.bincount(pairs, values, num_pairs), rtol=1e-6)


@pytest.mark.parametrize("n, d, num_segments, skew", CASES)
def test_expand_gradient_equals_row_sums_and_norm_importance(n, d, num_segments, skew):
    """One read of the rows for both: the bits of the two separate reductions."""
    rng = np.random.default_rng(100 * n + d)
    rows = _rows(rng, n, d)
    num_pairs = 2 * num_segments + 1
    pairs = _segments(rng, n, num_pairs, skew)
    pair_rows = rng.integers(0, max(num_segments, 1), num_pairs).astype(np.int32)
    segments = pair_rows[pairs] if num_segments else np.zeros(0, np.int32)
    got = occurrences.expand_gradient(rows, segments, num_segments, pairs, num_pairs, fused=True)
    expected = occurrences.expand_gradient(
        rows, segments, num_segments, pairs, num_pairs, fused=False
    )
    assert [t.dtype for t in got] == [tf.float32, tf.float64, tf.float64]
    assert got[0].shape == (num_segments, d) and got[1].shape == got[2].shape == (num_pairs,)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(
        got[0].numpy(), occurrences.segment_row_sums(rows, segments, num_segments, True).numpy()
    )
    for a, b in zip(got[1:], occurrences.pair_importance(rows, pairs, num_pairs, True, True)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_row_norms_sum_squares_in_column_order():
    rows = np.array([[1e8, 1.0, -1e8, 3.0]], np.float32)
    squares = rows.astype(np.float32) ** 2
    total = np.float32(0)
    for value in squares[0]:
        total = np.float32(total + value)
    np.testing.assert_array_equal(
        occurrences.row_norms(tf.constant(rows)).numpy(), [np.sqrt(total)]
    )
    got, _ = occurrences.pair_importance(rows, [0], 1, norm=True, fused=True)
    assert got.numpy()[0] == np.float64(np.sqrt(total))


def test_non_finite_rows_pass_through():
    """The sketch insert refuses non-finite importance; these ops must not hide it."""
    rows = np.array([[np.nan, 0.0], [np.inf, 1.0], [1.0, 1.0]], np.float32)
    sums, _ = occurrences.pair_importance(rows, [0, 1, 2], 3, norm=True, fused=True)
    assert np.isnan(sums.numpy()[0]) and np.isinf(sums.numpy()[1])


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: occurrences.segment_row_sums(np.ones((3, 2), np.float32), [0, 3, 1], 3, True),
            r"segment ids must be in \[0, 3\), got 3 at index 1",
        ),
        (
            lambda: occurrences.segment_row_sums(np.ones((3, 2), np.float32), [0, -1, 1], 3, True),
            r"got -1 at index 1",
        ),
        (
            lambda: occurrences.pair_importance(
                np.ones((2, 2), np.float32), [0, 0], 1, False, True
            ),
            "without norm, rows must have one column",
        ),
        (
            lambda: occurrences.segment_row_sums(np.ones((3, 2), np.float32), [0, 1], 3, True),
            "rows must be|Dimensions must be equal",
        ),
        (
            lambda: occurrences.expand_gradient(
                np.ones((3, 2), np.float32), [0, 2, 1], 2, [0, 1, 1], 2, True
            ),
            r"CafeExpandGradient: segment ids must be in \[0, 2\), got 2 at index 1",
        ),
        (
            lambda: occurrences.expand_gradient(
                np.ones((3, 2), np.float32), [0, 1, 1], 2, [0, 1, -4], 2, True
            ),
            r"CafeExpandGradient: pairs: segment ids must be in \[0, 2\), got -4 at index 2",
        ),
        (
            lambda: occurrences.expand_gradient(
                np.ones((3, 2), np.float32), [0, 1, 1], 2, [0, 1], 2, True
            ),
            "pairs must be|Dimensions must be equal",
        ),
    ],
)
def test_bad_input_is_refused_clearly(call, message):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        call()


def test_expand_gradient_is_the_dense_row_sum():
    rng = np.random.default_rng(3)
    rows = tf.constant(_rows(rng, 6, 4))
    pair_rows = tf.constant([5, 0, 2, 5], tf.int32)  # two pairs may share a row
    pairs = tf.constant([0, 1, 3, 2, 0, 1, 3], tf.int32)
    index = tf.gather(pair_rows, pairs)
    dy = tf.constant(_rows(rng, 7, 4))
    for fused in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(rows)
            out = occurrences.expand(rows, index, fused)
            loss = tf.reduce_sum(out * dy)
        np.testing.assert_array_equal(out.numpy(), tf.gather(rows, index).numpy())
        grad = tape.gradient(loss, rows)
        assert isinstance(grad, tf.Tensor)  # dense: one row per distinct row
        expected = np.zeros((6, 4), np.float32)
        np.add.at(expected, index.numpy(), dy.numpy())
        np.testing.assert_array_equal(grad.numpy(), expected)


@pytest.mark.parametrize("fused", [True, False])
def test_expand_hands_its_backward_pass_the_pairs_gradient_norm_importance(fused):
    """With `on_importance`, the same row gradient, and the pairs' norm sums and
    occurrence counts of the occurrences' gradients."""
    rng = np.random.default_rng(4)
    rows = tf.constant(_rows(rng, 6, 4))
    pair_rows = tf.constant([5, 0, 2, 5], tf.int32)
    pairs = tf.constant([0, 1, 3, 2, 0, 1, 3], tf.int32)
    dy = _rows(rng, 7, 4)
    seen = []
    with tf.GradientTape() as tape:
        tape.watch(rows)
        out = occurrences.expand(
            rows, tf.gather(pair_rows, pairs), fused, lambda *a: seen.append(a), pairs, 4
        )
        loss = tf.reduce_sum(out * dy)
    grad = tape.gradient(loss, rows)
    expected = np.zeros((6, 4), np.float32)
    np.add.at(expected, tf.gather(pair_rows, pairs).numpy(), dy)
    np.testing.assert_array_equal(grad.numpy(), expected)
    ((norm_sums, counts),) = seen
    np.testing.assert_array_equal(counts.numpy(), [2, 2, 1, 2])
    reference = occurrences.pair_importance(dy, pairs, 4, norm=True, fused=False)
    np.testing.assert_array_equal(norm_sums.numpy(), reference[0].numpy())


def test_expand_refuses_importance_without_the_pairs():
    with pytest.raises(ValueError, match="on_importance needs the occurrences' pairs"):
        occurrences.expand(tf.zeros([2, 4]), tf.constant([0, 1]), False, lambda *a: None)


@pytest.mark.parametrize("n", [400, 20000])  # 20000: ExpandGradient's two tasks
@pytest.mark.parametrize("layout", ["random", "runs"])
@pytest.mark.parametrize("exponent", [-135, -126, -110, -102, -101, -70, -51, -50, -40])
def test_tiny_rows_are_flushed_as_tensorflow_flushes_them(exponent, layout, n):
    """Rows at magnitudes around and below the ones the ops sum without a flush per
    operation (2^-102 for sums, 2^-50 for norms), with cancellations: the same bits as
    TF's own kernels, which flush subnormals."""
    rng = np.random.default_rng(-exponent)
    base = np.float32(2.0**exponent)
    rows = (rng.integers(-9, 10, (n, 4)) * base).astype(np.float32)
    rows[1::2] = -rows[::2] + (rng.integers(-2, 3, (n // 2, 4)) * base * np.float32(2.0**-20))
    rows[::7] *= np.float32(2.0**30)  # some large values among the tiny ones
    ids = _segments(rng, n, 50, None if layout == "random" else "runs")
    got = occurrences.segment_row_sums(rows, ids, 50, fused=True)
    expected = occurrences.segment_row_sums(rows, ids, 50, fused=False)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    for norm in (True, False):
        values = rows if norm else rows[:, :1]
        got = occurrences.pair_importance(values, ids, 50, norm, fused=True)
        expected = occurrences.pair_importance(values, ids, 50, norm, fused=False)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    pairs = (ids * 7 + 3) % 61
    got = occurrences.expand_gradient(rows, ids, 50, pairs, 61, fused=True)
    expected = occurrences.expand_gradient(rows, ids, 50, pairs, 61, fused=False)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
