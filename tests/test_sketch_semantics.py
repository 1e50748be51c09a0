"""Small HotSketch scenarios worked out by hand, for both backends."""
import numpy as np
import pytest
import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.sketch import LEVEL_COLD, LEVEL_HOT, LEVEL_MEDIUM, HotSketch, SketchConfig

BACKENDS = ["op", "reference"]


def _slots(sketch):
    """{key: (score, row)} of the occupied slots of bucket 0 (W=1 sketches)."""
    state = sketch.read_state()
    keys, scores, rows = (t.numpy() for t in (state.keys, state.scores, state.rows))
    return {int(k): (float(s), int(r)) for k, s, r in zip(keys, scores, rows) if s > 0}


def _insert(sketch, ids, values=None):
    sketch.insert(tf.constant(ids, tf.int64),
                  None if values is None else tf.constant(values, tf.float32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_space_saving_takeover(backend):
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2,
                                    threshold=100.0), backend=backend)
    _insert(sketch, [20, 10], [1.0, 3.0])  # processed in key order: 10 -> slot 0, 20 -> slot 1
    assert sketch.keys.numpy()[0].tolist() == [10, 20]
    _insert(sketch, [30], [2.0])  # full: the smallest (20, score 1) is taken over, 1 + 2
    assert _slots(sketch) == {10: (3.0, -1), 30: (3.0, -1)}
    _insert(sketch, [40], [1.0])  # tie at 3: the highest slot index loses
    assert sketch.keys.numpy()[0].tolist() == [10, 40]
    assert _slots(sketch) == {10: (3.0, -1), 40: (4.0, -1)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_are_summed_and_zero_importance_changes_nothing(backend):
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2,
                                    threshold=100.0), backend=backend)
    _insert(sketch, [4, 4, 9, 4], [1.0, 2.0, 0.0, 3.0])
    assert _slots(sketch) == {4: (6.0, -1)}
    assert sketch.mass.numpy() == 6.0 and sketch.batches.numpy() == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_promotion_order_and_demotion_on_decay(backend):
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=2, slots_per_bucket=4,
                                    threshold=2.0, decay_rate=0.5), backend=backend)
    _insert(sketch, [5, 6, 7, 8], [3.0, 3.0, 5.0, 1.0])
    result = sketch.migrate()
    assert not result.decayed.numpy()
    # score descending, ties by key ascending; rows ascending; 6 finds no free row
    assert result.promoted_keys.numpy().tolist() == [7, 5]
    assert result.promoted_rows.numpy().tolist() == [0, 1]
    assert _slots(sketch) == {5: (3.0, 1), 6: (3.0, -1), 7: (5.0, 0), 8: (1.0, -1)}
    assert sketch.read_state().row_slot.numpy().tolist() == [2, 0]

    result = sketch.decay()  # 7 -> 2.5 stays hot, 5 -> 1.5 < k is demoted, row 1 freed
    assert result.decayed.numpy()
    assert result.demoted_keys.numpy().tolist() == [5]
    assert result.demoted_rows.numpy().tolist() == [1]
    assert result.promoted_keys.numpy().tolist() == []  # 6 -> 1.5 is below k now
    assert _slots(sketch) == {5: (1.5, -1), 6: (1.5, -1), 7: (2.5, 0), 8: (0.5, -1)}
    assert sketch.read_state().row_slot.numpy().tolist() == [2, -1]
    assert sketch.mass.numpy() == 0.0 and sketch.batches.numpy() == 0

    _insert(sketch, [6])  # 2.5 >= k: promoted into the freed row 1
    result = sketch.migrate()
    assert result.promoted_keys.numpy().tolist() == [6]
    assert result.promoted_rows.numpy().tolist() == [1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_slot_hot_drops_the_update(backend):
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=2, slots_per_bucket=2,
                                    threshold=1.0), backend=backend)
    _insert(sketch, [1, 2])
    sketch.migrate()
    before = _slots(sketch)
    assert all(row >= 0 for _, row in before.values())
    _insert(sketch, [3], [50.0])
    assert _slots(sketch) == before
    assert sketch.mass.numpy() == 52.0  # offered importance still counts toward decay


@pytest.mark.parametrize("backend", BACKENDS)
def test_mass_rule_decays_only_past_the_limit(backend):
    # limit = factor * W * k = 10 * 1 * 1
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2,
                                    threshold=1.0, decay_rate=0.5), backend=backend)
    _insert(sketch, [1], [10.0])
    assert not sketch.migrate().decayed.numpy()
    _insert(sketch, [1], [0.5])
    assert sketch.migrate().decayed.numpy()
    assert _slots(sketch) == {1: (5.25, 0)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_rule(backend):
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2, threshold=9.0,
                                    decay_rule="batches", decay_period=2), backend=backend)
    _insert(sketch, [1])
    _insert(sketch, [], [])  # empty batches do not count
    assert not sketch.migrate().decayed.numpy()
    _insert(sketch, [1])
    assert sketch.migrate().decayed.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_query_levels(backend):
    sketch = HotSketch(SketchConfig(num_buckets=64, hot_rows=4, slots_per_bucket=4,
                                    threshold=4.0, medium_threshold=2.0), backend=backend)
    _insert(sketch, [1, 1, 1, 1, 2, 2, 3])
    sketch.migrate()
    rows, levels = sketch.query(tf.constant([[1, 2], [3, 4]], tf.int64))
    assert rows.numpy().tolist() == [[0, -1], [-1, -1]]
    assert levels.numpy().tolist() == [[LEVEL_HOT, LEVEL_MEDIUM], [LEVEL_COLD, LEVEL_COLD]]


def test_bucket_uses_the_mixer_not_the_key():
    """Consecutive ids land in scattered buckets (the reference's `key mod W` did not)."""
    buckets = hashing.mix64_mod(tf.range(1000, dtype=tf.int64), 1024).numpy()
    assert len(np.unique(buckets)) > 550
    assert not np.array_equal(buckets, np.arange(1000))
    # splitmix64 finaliser of 1, the value every implementation must reproduce
    assert hashing.mix64_int(1) == 0x5692161D100B05E5
    assert np.uint64(hashing.mix64(tf.constant([1], tf.int64)).numpy()[0]) == 0x5692161D100B05E5


def test_field_keys_differ_per_field_and_keep_ids_distinct():
    ids = tf.constant([0, 1, 2, -5], tf.int64)
    k0, k1 = hashing.field_keys(ids, 0).numpy(), hashing.field_keys(ids, 1).numpy()
    assert len(set(k0.tolist())) == 4 and not set(k0.tolist()) & set(k1.tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_hot_key_whose_score_underflows_is_demoted_and_frees_its_row(backend):
    # demote_threshold 0: only the underflow to 0 can demote.
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2,
                                    threshold=1e-30, demote_threshold=0.0, decay_rate=1e-10),
                       backend=backend)
    _insert(sketch, [7], [1e-30])
    assert sketch.migrate().promoted_keys.numpy().tolist() == [7]
    # 1e-30 * 1e-10 is subnormal in float32, which counts as 0: demoted at the first decay.
    assert sketch.decay().demoted_keys.numpy().tolist() == [7]
    assert _slots(sketch) == {}
    assert sketch.read_state().row_slot.numpy().tolist() == [-1]
    assert np.all(sketch.read_state().rows.numpy() == -1)
    _insert(sketch, [99], [1e-31])  # takes the emptied slot, and is not hot
    rows, levels = sketch.query(tf.constant([99], tf.int64))
    assert rows.numpy().tolist() == [-1] and levels.numpy().tolist() == [LEVEL_COLD]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wrap", [lambda f: f, tf.function], ids=["eager", "tf_function"])
def test_subnormal_importance_counts_as_zero(backend, wrap):
    """TF's CPU kernels flush subnormals and CUDA does not: every implementation
    treats an importance below FLT_MIN as 0 (no slot taken, no mass)."""
    sketch = HotSketch(SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2,
                                    threshold=1.0), backend=backend)
    tiny = np.float32(1e-40)
    assert 0 < tiny < np.finfo(np.float32).tiny
    insert = wrap(lambda ids, values: sketch.insert(ids, values) and None)
    insert(tf.constant([5, 6, 6], tf.int64), tf.constant([tiny, tiny, 2.0], tf.float32))
    assert _slots(sketch) == {6: (2.0, -1)}
    assert sketch.mass.numpy() == np.float32(2.0)
