"""12-byte slots match keys by a 32-bit fingerprint: what a false match does, and the
limits of the (row << tag_bits) | tag packing of hot entries (docs/sketch.md)."""

import numpy as np
import pytest
import tensorflow as tf
from sketch_utils import assert_same_state, state_arrays

from cafe_tf import hashing
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection
from cafe_tf.sketch import LEVEL_HOT, HotSketch, SketchConfig

_MASK = (1 << 64) - 1
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _unxorshift(y, shift):
    """The x with x ^ (x >> shift) == y."""
    x = y
    for _ in range(64 // shift + 1):
        x = y ^ (x >> shift)
    return x


def unmix64(h):
    """The key whose splitmix64 finaliser (cafe::Mix64) is `h`: Mix64 is a bijection."""
    x = _unxorshift(h & _MASK, 31)
    x = (x * pow(_C2, -1, 1 << 64)) & _MASK
    x = _unxorshift(x, 27)
    x = (x * pow(_C1, -1, 1 << 64)) & _MASK
    return hashing.as_signed64(_unxorshift(x, 30))


def test_unmix64_inverts_mix64():
    for h in (0, 1, 0x5692161D100B05E5, _MASK, 0x0123456789ABCDEF):
        assert hashing.mix64_int(unmix64(h)) == h


# Two different keys with the same Mix64 high half (fingerprint 0xCAFE1234) and the same
# bucket in a sketch of 8 buckets (Mix64 mod 8 = the low 3 bits: 0 for both).
FP = 0xCAFE1234
KEY_A, KEY_B = unmix64(FP << 32 | 0x10), unmix64(FP << 32 | 0x18)


def test_colliding_keys_share_fingerprint_and_bucket():
    keys = tf.constant([KEY_A, KEY_B], tf.int64)
    assert KEY_A != KEY_B
    assert hashing.fingerprint(keys).numpy().tolist() == [FP, FP]
    assert hashing.mix64_mod(keys, 8).numpy().tolist() == [0, 0]
    # ... and so the same hashed rows in every CAFE table.
    rows = hashing.fingerprint_row(hashing.fingerprint(keys), 1000, 1).numpy()
    assert rows[0] == rows[1]


def _false_match(backend):
    sketch = HotSketch(
        SketchConfig(num_buckets=8, hot_rows=4, slots_per_bucket=4, threshold=2.0), backend=backend
    )
    sketch.insert(tf.constant([KEY_A, KEY_A], tf.int64))
    result = sketch.migrate()
    assert result.promoted_fingerprints.numpy().tolist() == [FP]
    assert result.promoted_rows.numpy().tolist() == [0]
    # KEY_B was never inserted, yet it reads KEY_A's hot row: a false match.
    rows, levels = sketch.query(tf.constant([KEY_A, KEY_B], tf.int64))
    assert rows.numpy().tolist() == [0, 0]
    assert levels.numpy().tolist() == [LEVEL_HOT, LEVEL_HOT]
    # Its importance adds to the shared slot's score; no second slot is taken.
    sketch.insert(tf.constant([KEY_B], tf.int64), tf.constant([3.0]))
    state = state_arrays(sketch)
    scores = state["scores"].view(np.float32)
    assert (scores > 0).sum() == 1 and scores.max() == 5.0
    assert state["fingerprints"][scores > 0].tolist() == [FP]
    return sketch


def test_false_match_shares_slot_score_and_hot_row_in_op_and_reference():
    op, ref = _false_match("op"), _false_match("reference")
    assert_same_state(op, ref)


def test_false_match_in_one_batch_merges_in_the_slot():
    """Both keys in one batch: distinct keys, inserted in key order, the second hits the
    slot the first took. Both backends agree."""
    sketches = []
    for backend in ("op", "reference"):
        sketch = HotSketch(
            SketchConfig(num_buckets=8, hot_rows=4, slots_per_bucket=4, threshold=2.0),
            backend=backend,
        )
        sketch.insert(tf.constant([KEY_A, KEY_B], tf.int64), tf.constant([1.0, 2.0]))
        scores = sketch.scores.numpy()
        assert (scores > 0).sum() == 1 and scores.max() == 3.0
        assert sketch.migrate().promoted_fingerprints.numpy().tolist() == [FP]
        sketches.append(sketch)
    assert_same_state(*sketches)


@pytest.mark.parametrize(
    "num_features, tag_bits", [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (2**30, 30)]
)
def test_tag_bits_from_the_number_of_features(num_features, tag_bits):
    assert SketchConfig(num_buckets=1, hot_rows=1, num_features=num_features).tag_bits == tag_bits


def test_hot_entry_packs_the_largest_row_and_tag():
    """hot_rows * 2**tag_bits = 2**31 exactly: the largest entry is INT32_MAX."""
    config = SketchConfig(
        num_buckets=1, hot_rows=2, slots_per_bucket=2, threshold=1.0, num_features=2**30
    )
    sketches = []
    for backend in ("op", "reference"):
        sketch = HotSketch(config, backend=backend)
        sketch.insert(
            tf.constant([1, 2], tf.int64), tf.constant([2.0, 1.0]), tf.constant([5, 2**30 - 1])
        )
        result = sketch.migrate()
        assert result.promoted_rows.numpy().tolist() == [0, 1]
        assert result.promoted_feature_index.numpy().tolist() == [5, 2**30 - 1]
        assert sorted(sketch.read_state().entries.numpy().tolist()) == [5, 2**31 - 1]
        rows, _ = sketch.query(tf.constant([1, 2], tf.int64))
        assert rows.numpy().tolist() == [0, 1]
        sketches.append(sketch)
    assert_same_state(*sketches)


def test_layer_too_many_hot_rows_for_its_features_is_a_clear_error():
    """3 features take 2 tag bits: at most 2**29 hot rows (no variable is allocated)."""
    features = {"a": 2**40, "b": 2**40, "c": 2**40}
    with pytest.raises(
        ValueError,
        match=r"hot_rows \* 2\*\*tag_bits must be <= 2\*\*31.*"
        r"at most 536870912 hot rows",
    ):
        CafeEmbeddingCollection(
            features,
            CafeConfig(
                embedding_dim=1,
                slots_per_bucket=1,
                sketch_bytes_per_hot_row=12,
                budget_bytes=2**29 * 20 * 2,
                hot_share=0.5,
            ),
        )
    layer = CafeEmbeddingCollection(features, CafeConfig(embedding_dim=4, compression_ratio=10**6))
    assert layer.sketch_config.num_features == 3 and layer.sketch_config.tag_bits == 2
