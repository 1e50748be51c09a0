"""Small HotSketch scenarios worked out by hand, for both backends."""

import numpy as np
import pytest
import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.sketch import LEVEL_COLD, LEVEL_HOT, LEVEL_MEDIUM, HotSketch, SketchConfig, reference
from cafe_tf.sketch import config as sketch_config
from cafe_tf.sketch.reference import ROW_NONE

# The rows entry of a pending key of tag 0 (cold_marker(0, pending=True)).
ROW_PENDING = ROW_NONE - 1

BACKENDS = ["op", "reference"]

# Slots keep 32-bit fingerprints, not keys: the keys these tests insert, by fingerprint.
_KEY_OF = {0: 0}


def _fp(key):
    fp = int(hashing.fingerprint(tf.constant([key], tf.int64)).numpy()[0])
    _KEY_OF[fp] = key
    return fp


def _keys(fingerprints):
    """The test keys of a tensor of fingerprints (a migration's), as a list."""
    return [_KEY_OF[int(f)] for f in fingerprints.numpy()]


def _by_fp(keys):
    """`keys` in fingerprint order: how score ties are broken."""
    return sorted(keys, key=_fp)


def _slot_keys(sketch):
    """The key in each slot of bucket 0 (0: empty)."""
    return _keys(sketch.read_state().fingerprints)


def _slots(sketch):
    """{key: (score, entry)} of the occupied slots of bucket 0 (W=1 sketches; with one
    tag, a hot slot's entry is its row)."""
    state = sketch.read_state()
    fps, scores, entries = (t.numpy() for t in (state.fingerprints, state.scores, state.entries))
    return {_KEY_OF[int(f)]: (float(s), int(e)) for f, s, e in zip(fps, scores, entries) if s > 0}


def _insert(sketch, ids, values=None):
    for key in ids:
        _fp(key)
    sketch.insert(
        tf.constant(ids, tf.int64), None if values is None else tf.constant(values, tf.float32)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_space_saving_takeover(backend):
    sketch = HotSketch(
        SketchConfig(
            replacement="inherit", num_buckets=1, hot_rows=1, slots_per_bucket=2, threshold=100.0
        ),
        backend=backend,
    )
    _insert(sketch, [20, 10], [1.0, 3.0])  # processed in key order: 10 -> slot 0, 20 -> slot 1
    assert _slot_keys(sketch) == [10, 20]
    _insert(sketch, [30], [2.0])  # full: the smallest (20, score 1) is taken over, 1 + 2
    assert _slots(sketch) == {10: (3.0, -1), 30: (3.0, ROW_PENDING)}
    _insert(sketch, [40], [1.0])  # tie at 3: the highest slot index loses
    assert _slot_keys(sketch) == [10, 40]
    assert _slots(sketch) == {10: (3.0, -1), 40: (4.0, ROW_PENDING)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_off_takeover_with_inherited_score_is_never_promoted(backend):
    sketch = HotSketch(
        SketchConfig(
            replacement="inherit", num_buckets=1, hot_rows=3, slots_per_bucket=2, threshold=5.0
        ),
        backend=backend,
    )
    _insert(sketch, [10, 20], [6.0, 7.0])  # empty slots: promotable at once
    _insert(sketch, [30], [1.0])  # takes 10's slot over: 6 + 1 >= k, but seen once
    assert _slots(sketch) == {20: (7.0, -1), 30: (7.0, ROW_PENDING)}
    for _ in range(3):
        sketch.migrate()
        assert _slots(sketch) == {20: (7.0, 0), 30: (7.0, ROW_PENDING)}
    rows, levels = sketch.query(tf.constant([30], tf.int64))
    assert rows.numpy().tolist() == [-1] and levels.numpy().tolist() == [LEVEL_COLD]
    _insert(sketch, [30], [1.0])  # seen again, in a later batch: promotable
    assert _slots(sketch) == {20: (7.0, 0), 30: (8.0, -1)}
    assert _keys(sketch.migrate().promoted_fingerprints) == [30]


@pytest.mark.parametrize("backend", BACKENDS)
def test_takeover_seen_twice_in_its_batch_is_promotable(backend):
    sketch = HotSketch(
        SketchConfig(
            replacement="inherit", num_buckets=1, hot_rows=3, slots_per_bucket=2, threshold=5.0
        ),
        backend=backend,
    )
    _insert(sketch, [10, 20], [6.0, 7.0])
    _insert(sketch, [40, 9, 40], [0.5, 0.0, 0.5])  # two sightings of 40 in the claiming batch
    assert _slots(sketch) == {20: (7.0, -1), 40: (7.0, -1)}
    result = sketch.migrate()
    assert _keys(result.promoted_fingerprints) == _by_fp([20, 40])  # ties: fingerprint asc


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_are_summed_and_zero_importance_changes_nothing(backend):
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2, threshold=100.0),
        backend=backend,
    )
    _insert(sketch, [4, 4, 9, 4], [1.0, 2.0, 0.0, 3.0])
    assert _slots(sketch) == {4: (6.0, -1)}
    assert sketch.mass.numpy() == 6.0 and sketch.batches.numpy() == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_promotion_order_and_demotion_on_decay(backend):
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=2, slots_per_bucket=4, threshold=2.0, decay_rate=0.5),
        backend=backend,
    )
    _insert(sketch, [5, 6, 7, 8], [3.0, 3.0, 5.0, 1.0])
    result = sketch.migrate()
    assert not result.decayed.numpy()
    # score descending, ties by fingerprint ascending; rows ascending; the loser of the
    # tie at 3 finds no free row
    won, lost = _by_fp([5, 6])
    assert _keys(result.promoted_fingerprints) == [7, won]
    assert result.promoted_rows.numpy().tolist() == [0, 1]
    assert _slots(sketch) == {won: (3.0, 1), lost: (3.0, -1), 7: (5.0, 0), 8: (1.0, -1)}
    assert sorted(sketch.read_state().entries.numpy().tolist()) == [-1, -1, 0, 1]

    result = sketch.decay()  # 7 -> 2.5 stays hot, `won` -> 1.5 < k is demoted, row 1 freed
    assert result.decayed.numpy()
    assert _keys(result.demoted_fingerprints) == [won]
    assert result.demoted_rows.numpy().tolist() == [1]
    assert _keys(result.promoted_fingerprints) == []  # `lost` -> 1.5 is below k now
    assert _slots(sketch) == {won: (1.5, -1), lost: (1.5, -1), 7: (2.5, 0), 8: (0.5, -1)}
    assert int(sketch.hot_rows_used()) == 1
    assert sketch.mass.numpy() == 0.0 and sketch.batches.numpy() == 0

    _insert(sketch, [lost])  # 2.5 >= k: promoted into the freed row 1
    result = sketch.migrate()
    assert _keys(result.promoted_fingerprints) == [lost]
    assert result.promoted_rows.numpy().tolist() == [1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_slot_hot_drops_the_update(backend):
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=2, slots_per_bucket=2, threshold=1.0), backend=backend
    )
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
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2, threshold=1.0, decay_rate=0.5),
        backend=backend,
    )
    _insert(sketch, [1], [10.0])
    assert not sketch.migrate().decayed.numpy()
    _insert(sketch, [1], [0.5])
    assert sketch.migrate().decayed.numpy()
    assert _slots(sketch) == {1: (5.25, 0)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_rule(backend):
    sketch = HotSketch(
        SketchConfig(
            num_buckets=1,
            hot_rows=1,
            slots_per_bucket=2,
            threshold=9.0,
            decay_rule="batches",
            decay_period=2,
        ),
        backend=backend,
    )
    _insert(sketch, [1])
    _insert(sketch, [], [])  # empty batches do not count
    assert not sketch.migrate().decayed.numpy()
    _insert(sketch, [1])
    assert sketch.migrate().decayed.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_query_levels(backend):
    sketch = HotSketch(
        SketchConfig(
            num_buckets=64, hot_rows=4, slots_per_bucket=4, threshold=4.0, medium_threshold=2.0
        ),
        backend=backend,
    )
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


def test_numpy_field_keys_equal_the_tensorflow_ones():
    ids = np.array([[0, 7, 2**62], [-5, 3, 9]], np.int64)  # column f is feature f
    expected = np.stack([hashing.field_keys(ids[:, f], f).numpy() for f in range(3)], axis=1)
    np.testing.assert_array_equal(hashing.field_keys_numpy(ids, np.arange(3)), expected)
    assert hashing.field_keys_numpy(np.array([], np.int64), np.array([], np.int64)).size == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_hot_key_whose_score_underflows_is_demoted_and_frees_its_row(backend):
    # demote_threshold 0: only the underflow to 0 can demote.
    sketch = HotSketch(
        SketchConfig(
            num_buckets=1,
            hot_rows=1,
            slots_per_bucket=2,
            threshold=1e-30,
            demote_threshold=0.0,
            decay_rate=1e-10,
        ),
        backend=backend,
    )
    _insert(sketch, [7], [1e-30])
    assert _keys(sketch.migrate().promoted_fingerprints) == [7]
    # 1e-30 * 1e-10 is subnormal in float32, which counts as 0: demoted at the first decay.
    assert _keys(sketch.decay().demoted_fingerprints) == [7]
    assert _slots(sketch) == {}
    assert int(sketch.hot_rows_used()) == 0
    assert np.all(sketch.read_state().entries.numpy() == -1)
    assert np.all(sketch.read_state().fingerprints.numpy() == 0)
    _insert(sketch, [99], [1e-31])  # takes the emptied slot, and is not hot
    rows, levels = sketch.query(tf.constant([99], tf.int64))
    assert rows.numpy().tolist() == [-1] and levels.numpy().tolist() == [LEVEL_COLD]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wrap", [lambda f: f, tf.function], ids=["eager", "tf_function"])
def test_subnormal_importance_counts_as_zero(backend, wrap):
    """TF's CPU kernels flush subnormals and CUDA does not: every implementation
    treats an importance below FLT_MIN as 0 (no slot taken, no mass)."""
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2, threshold=1.0), backend=backend
    )
    tiny = np.float32(1e-40)
    assert 0 < tiny < np.finfo(np.float32).tiny
    insert = wrap(lambda ids, values: sketch.insert(ids, values) and None)
    insert(tf.constant([5, 6, 6], tf.int64), tf.constant([tiny, tiny, 2.0], tf.float32))
    assert _slots(sketch) == {6: (2.0, -1)}
    assert sketch.mass.numpy() == np.float32(2.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tags_are_kept_while_pending_hot_and_demoted(backend):
    """A slot's int32 entry holds (row, tag) or (tag, pending): the tag must survive each
    state, up to the largest tag (30 tag bits leave room for 2 hot rows)."""
    sketch = HotSketch(
        SketchConfig(
            replacement="inherit",
            num_buckets=1,
            hot_rows=2,
            slots_per_bucket=2,
            threshold=5.0,
            decay_rate=0.5,
            num_features=2**30,
        ),
        backend=backend,
    )
    top = sketch_config.MAX_TAG
    for key in (10, 20, 30):
        _fp(key)

    def tags_by_key():
        state = sketch.read_state()
        return {
            _KEY_OF[int(f)]: int(t)
            for f, t, s in zip(
                state.fingerprints.numpy(),
                reference.slot_tags(state, 30).numpy(),
                state.scores.numpy(),
            )
            if s > 0
        }

    sketch.insert(tf.constant([10, 20], tf.int64), tf.constant([6.0, 7.0]), tf.constant([top, 3]))
    sketch.insert(tf.constant([30], tf.int64), tf.constant([1.0]), tf.constant([top - 1]))
    assert tags_by_key() == {20: 3, 30: top - 1}
    result = sketch.migrate()
    assert _keys(result.promoted_fingerprints) == [20]
    assert result.promoted_feature_index.numpy().tolist() == [3]
    sketch.insert(tf.constant([30], tf.int64), tf.constant([1.0]), tf.constant([0]))
    result = sketch.migrate()
    # The feature index it claimed the slot with.
    assert result.promoted_feature_index.numpy().tolist() == [top - 1]
    assert tags_by_key() == {20: 3, 30: top - 1}
    result = sketch.decay()  # 30 -> 4 and 20 -> 3.5: both below k, demoted in slot order
    assert _keys(result.demoted_fingerprints) == [30, 20]
    assert result.demoted_feature_index.numpy().tolist() == [top - 1, 3]
    assert tags_by_key() == {20: 3, 30: top - 1}
    assert int(sketch.hot_rows_used()) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_decay_applies_rho_once_per_period_due(backend):
    # mass rule, period = 1 * W * k = 2: 7 inserted -> 3 periods, 1 left over
    sketch = HotSketch(
        SketchConfig(
            num_buckets=1,
            hot_rows=1,
            slots_per_bucket=2,
            threshold=2.0,
            decay_rate=0.5,
            decay_mass_factor=1.0,
        ),
        backend=backend,
    )
    _insert(sketch, [1], [7.0])
    assert sketch.migrate().decayed.numpy()
    assert _slots(sketch) == {1: (7.0 * 0.5**3, ROW_NONE)}
    assert sketch.mass.numpy() == 1.0
    # batches rule, period 2: 5 batches -> 2 periods, 1 batch left over
    sketch = HotSketch(
        SketchConfig(
            num_buckets=1,
            hot_rows=1,
            slots_per_bucket=2,
            threshold=99.0,
            decay_rate=0.5,
            decay_rule="batches",
            decay_period=2,
        ),
        backend=backend,
    )
    for _ in range(5):
        _insert(sketch, [1], [8.0])
    assert sketch.migrate().decayed.numpy()
    assert _slots(sketch) == {1: (10.0, ROW_NONE)}
    assert sketch.batches.numpy() == 1
    # at most MAX_DECAY_STEPS periods in one migration
    sketch = HotSketch(
        SketchConfig(
            num_buckets=1,
            hot_rows=1,
            slots_per_bucket=2,
            threshold=1.0,
            decay_rate=0.9,
            decay_mass_factor=1.0,
        ),
        backend=backend,
    )
    _insert(sketch, [1], [1e6])
    sketch.migrate()
    factor = np.float32(1.0)
    for _ in range(reference.MAX_DECAY_STEPS):  # one float32 multiply per step
        factor *= np.float32(0.9)
    assert sketch.scores.numpy()[0, 0] == np.float32(1e6) * factor


@pytest.mark.parametrize("backend", BACKENDS)
def test_swap_displaces_the_weakest_hot_key_by_a_margin(backend):
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=2, slots_per_bucket=4, threshold=2.0, swap_margin=1.5),
        backend=backend,
    )
    _insert(sketch, [1, 2], [3.0, 4.0])
    assert _keys(sketch.migrate().promoted_fingerprints) == [2, 1]  # rows 0, 1: all taken
    _insert(sketch, [3], [5.0])  # 5 > 1.5 * 3: displaces key 1 and takes its row
    result = sketch.migrate()
    assert _keys(result.demoted_fingerprints) == [1]
    assert result.demoted_rows.numpy().tolist() == [1]
    assert _keys(result.promoted_fingerprints) == [3]
    assert result.promoted_rows.numpy().tolist() == [1]
    assert _slots(sketch) == {1: (3.0, ROW_NONE), 2: (4.0, 0), 3: (5.0, 1)}
    _insert(sketch, [4], [5.5])  # 5.5 <= 1.5 * 4: the weakest hot key (2) stays
    result = sketch.migrate()
    assert _keys(result.demoted_fingerprints) == []
    assert _keys(result.promoted_fingerprints) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_free_rows_are_filled_below_k_and_keys_at_k_displace_them(backend):
    sketch = HotSketch(
        SketchConfig(
            num_buckets=1,
            hot_rows=3,
            slots_per_bucket=8,
            threshold=2.0,
            demote_threshold=0.0,
            swap_margin=1.5,
            fill_free_rows=True,
            yield_threshold=1.75,
        ),
        backend=backend,
    )
    _insert(sketch, [1, 2, 3, 4], [0.5, 3.0, 0.25, 1.0])
    result = sketch.migrate()
    # Key 2 reaches k; rows 1 and 2 go to the strongest keys below it; key 3 waits.
    assert _keys(result.promoted_fingerprints) == [2, 4, 1]
    assert result.promoted_rows.numpy().tolist() == [0, 1, 2]
    assert _keys(result.demoted_fingerprints) == []
    # A key below k never displaces a hot key, however weak that key is.
    _insert(sketch, [5], [1.9])
    result = sketch.migrate()
    assert _keys(result.promoted_fingerprints) == [] and _keys(result.demoted_fingerprints) == []
    # A key at k displaces the weakest hot key below yield_threshold without the margin
    # (2.0 < 1.5 * 1.7), and no hot key at or above it (2.0 < 1.5 * 1.8).
    _insert(sketch, [1, 4], [1.2, 0.8])  # hot keys 1 and 4 now 1.7 and 1.8
    _insert(sketch, [6, 7], [2.0, 2.0])
    result = sketch.migrate()
    assert _keys(result.demoted_fingerprints) == [1]
    assert _keys(result.promoted_fingerprints) == [_by_fp([6, 7])[0]]
    assert result.promoted_rows.numpy().tolist() == [2]
    # Decay keeps hot keys at demote_threshold 0: no row is freed while it holds.
    assert _keys(sketch.decay().demoted_fingerprints) == []
    assert int(sketch.hot_rows_used()) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_filled_rows_do_not_take_pending_keys(backend):
    sketch = HotSketch(
        SketchConfig(
            num_buckets=1,
            hot_rows=2,
            slots_per_bucket=1,
            threshold=5.0,
            fill_free_rows=True,
        ),
        backend=backend,
    )
    _insert(sketch, [1], [1.0])
    _insert(sketch, [2], [3.0])  # erodes key 1's slot and takes it over: pending
    assert _slots(sketch) == {2: (2.0, ROW_PENDING)}
    assert _keys(sketch.migrate().promoted_fingerprints) == []
    _insert(sketch, [2], [0.5])  # seen again: promotable, and fills a free row below k
    assert _keys(sketch.migrate().promoted_fingerprints) == [2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_erode_lowers_the_smallest_score_before_taking_the_slot(backend):
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=2, threshold=100.0),
        backend=backend,
    )
    _insert(sketch, [10, 20], [5.0, 3.0])
    _insert(sketch, [30], [1.0])  # misses a full bucket: 20's 3 eroded to 2, 30 not recorded
    assert _slots(sketch) == {10: (5.0, ROW_NONE), 20: (2.0, ROW_NONE)}
    _insert(sketch, [40], [2.0])  # eroded to 0: the slot empties
    assert _slots(sketch) == {10: (5.0, ROW_NONE)}
    assert _slot_keys(sketch) == [10, 0]
    _insert(sketch, [50], [4.0])  # an empty slot: taken whole
    _insert(sketch, [60], [6.0])  # outweighs 50's 4: takes the slot with the 2 left over
    assert _slots(sketch) == {10: (5.0, ROW_NONE), 60: (2.0, ROW_PENDING)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_keys_equal_in_one_half_have_unrelated_fingerprints(backend):
    """Slots match fingerprints of Mix64(key): keys equal in either 32-bit half do not
    share them (a real false match: tests/sketch/test_fingerprints.py)."""
    sketch = HotSketch(
        SketchConfig(num_buckets=1, hot_rows=1, slots_per_bucket=4, threshold=2.0), backend=backend
    )
    keys = [5, 5 + 2**32, 5 - 2**40, 7 * 2**32]  # equal low halves / equal high halves
    _insert(sketch, keys, [2.0, 1.0, 1.0, 1.0])
    sketch.migrate()
    rows, levels = sketch.query(tf.constant(keys + [6 * 2**32 + 5], tf.int64))
    assert rows.numpy().tolist() == [0, -1, -1, -1, -1]
    assert levels.numpy().tolist() == [LEVEL_HOT] + [LEVEL_COLD] * 4
