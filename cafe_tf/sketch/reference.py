"""Pure-TensorFlow HotSketch: the same semantics as custom_ops/core, stock ops only.

It is the test oracle for the C++ and CUDA kernels (bit for bit), the fallback
when the op library is unavailable, and the query path that a SavedModel can
carry without cafe_tf's `.so`. Functions take and return `SketchTensors`
(flat state), never variables.
"""
import collections

import numpy as np
import tensorflow as tf

from cafe_tf import hashing
from cafe_tf.sketch.config import SketchConfig

LEVEL_COLD, LEVEL_MEDIUM, LEVEL_HOT = 0, 1, 2
# Tags are in [0, MAX_TAG]: a slot's int32 `rows` entry holds its hot row (>= 0)
# or, for a key that is not hot, cold_marker(tag, pending).
MAX_TAG = 2**30 - 1
# The marker of an empty slot (and Query's "not hot").
ROW_NONE = -1
# At most this many decay steps (rho each) in one migration.
MAX_DECAY_STEPS = 64

SketchTensors = collections.namedtuple(
    "SketchTensors", ["keys", "scores", "rows", "row_slot", "row_tag", "mass", "batches"])
SketchTensors.__doc__ = """Sketch state: keys/scores/rows are flat [W*c] (slot = bucket*c + j; rows
holds the hot row or a cold marker), row_slot and row_tag are [hot_rows] (the
slot owning the row or -1, the tag of its key), mass (float32) and batches
(int64) are scalars."""


def cold_marker(tag, pending):
    """The `rows` entry of a key that is not hot: its tag, and whether it is pending
    (it took its slot over and was not seen since: the second sighting rule)."""
    return -1 - 2 * tag - tf.cast(pending, tf.int32)


def marker_tag(marker):
    """The tag in a cold marker (< 0)."""
    return tf.bitwise.right_shift(-1 - marker, 1)


def slot_tags(state: "SketchTensors") -> tf.Tensor:
    """The tag of each slot's key (flat [W*c]; 0 for empty slots)."""
    hot = state.rows >= 0
    return tf.where(hot, tf.gather(state.row_tag, tf.maximum(state.rows, 0)),
                    marker_tag(tf.minimum(state.rows, ROW_NONE)))


def marker_pending(marker):
    """Whether a `rows` entry is the cold marker of a pending key."""
    return tf.logical_and(marker < 0, tf.equal(tf.bitwise.bitwise_and(-1 - marker, 1), 1))

MigrationResult = collections.namedtuple(
    "MigrationResult", ["decayed", "demoted_keys", "demoted_tags", "demoted_rows",
                        "promoted_keys", "promoted_tags", "promoted_rows"])


def pairwise_sum(values: tf.Tensor) -> tf.Tensor:
    """Float32 sum by pairwise halving over the length padded to a power of two.

    The fixed tree of cafe::PairwiseSum, so the result is bit-identical.
    """
    values = tf.reshape(tf.cast(values, tf.float32), [-1])
    n = tf.size(values)
    (padded,) = tf.while_loop(lambda p: p < n, lambda p: (p * 2,), (tf.constant(1),))
    x = tf.concat([values, tf.zeros([padded - n], tf.float32)], 0)

    (x,) = tf.while_loop(lambda x: tf.size(x) > 1,
                         lambda x: (x[:tf.size(x) // 2] + x[tf.size(x) // 2:],), (x,),
                         shape_invariants=(tf.TensorShape([None]),))
    return x[0]


def _first_true(mask: tf.Tensor) -> tf.Tensor:
    """Index of the first True per row of a [A, c] mask (0 when none)."""
    return tf.argmax(tf.cast(mask, tf.int32), axis=1, output_type=tf.int32)


def _last_true(mask: tf.Tensor) -> tf.Tensor:
    """Index of the last True per row of a [A, c] mask."""
    c = tf.shape(mask)[1]
    return c - 1 - _first_true(tf.reverse(mask, axis=[1]))


def flush_subnormal(values):
    """Values below FLT_MIN (subnormal) as 0, as every implementation treats them
    (TF's CPU kernels flush them, CUDA code does not: none may reach arithmetic)."""
    return tf.where(values < np.finfo(np.float32).tiny, tf.zeros_like(values), values)


def _dedup(ids, importance, tags):
    """Distinct ids with their importance summed in input order, their min tag and
    whether they occur more than once."""
    unique, index = tf.unique(ids, out_idx=tf.int32)
    count = tf.size(unique)
    sums = tf.math.unsorted_segment_sum(importance, index, count)
    min_tags = tf.math.unsorted_segment_min(tags, index, count)
    repeated = tf.math.unsorted_segment_sum(tf.ones_like(index), index, count) > 1
    keep = sums > 0  # a key whose summed importance is 0 changes nothing
    return tuple(tf.boolean_mask(t, keep) for t in (unique, sums, min_tags, repeated))


def _order_by_bucket_then_key(keys, buckets):
    by_key = tf.argsort(keys, stable=True)
    by_bucket = tf.argsort(tf.gather(buckets, by_key), stable=True)
    return tf.gather(by_key, by_bucket)


def _rank_within_bucket(sorted_buckets):
    n = tf.size(sorted_buckets)
    starts = tf.concat([[True], sorted_buckets[1:] != sorted_buckets[:-1]], 0)[:n]
    run = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    start_positions = tf.boolean_mask(tf.range(n), starts)
    return tf.range(n) - tf.gather(start_positions, run)


def insert(config: SketchConfig, state: SketchTensors, ids, importance, tags) -> SketchTensors:
    """Batch insert (spec section 2). Inputs must already be validated."""
    c = config.slots_per_bucket
    n = tf.size(ids)
    importance = flush_subnormal(importance)
    mass = state.mass + pairwise_sum(importance)
    batches = state.batches + tf.cast(n > 0, tf.int64)

    keys_in, sums, key_tags, repeated = _dedup(ids, importance, tags)
    buckets = hashing.mix64_mod(keys_in, config.num_buckets)
    order = _order_by_bucket_then_key(keys_in, buckets)
    keys_in, sums, key_tags, repeated, buckets = (tf.gather(t, order) for t in
                                                  (keys_in, sums, key_tags, repeated, buckets))
    rank = _rank_within_bucket(buckets)
    rounds = tf.reduce_max(tf.concat([rank, [-1]], 0)) + 1

    def body(r, keys, scores, rows):
        pick = tf.where(tf.equal(rank, r))[:, 0]
        bucket = tf.gather(buckets, pick)
        key = tf.gather(keys_in, pick)
        value = tf.gather(sums, pick)
        tag = tf.gather(key_tags, pick)
        slot_ids = bucket[:, None] * c + tf.range(c, dtype=tf.int64)[None, :]
        slot_keys = tf.gather(keys, slot_ids)
        slot_scores = tf.gather(scores, slot_ids)
        slot_rows = tf.gather(rows, slot_ids)
        occupied = slot_scores > 0
        hit = tf.logical_and(occupied, tf.equal(slot_keys, key[:, None]))
        has_hit = tf.reduce_any(hit, 1)
        empty = tf.logical_not(occupied)
        has_empty = tf.reduce_any(empty, 1)
        evictable = slot_rows < 0
        has_evictable = tf.reduce_any(evictable, 1)
        masked = tf.where(evictable, slot_scores, tf.fill(tf.shape(slot_scores), float("inf")))
        smallest = tf.logical_and(evictable, tf.equal(masked, tf.reduce_min(masked, 1,
                                                                              keepdims=True)))
        j = tf.where(has_hit, _first_true(hit),
                     tf.where(has_empty, _first_true(empty), _last_true(smallest)))
        acts = tf.logical_or(tf.logical_or(has_hit, has_empty), has_evictable)
        old_score = tf.gather(slot_scores, j, batch_dims=1)
        old_row = tf.gather(slot_rows, j, batch_dims=1)
        new_key = key
        new_score = tf.where(has_empty & ~has_hit, value, old_score + value)
        if config.replacement == "erode":
            # A miss in a full bucket erodes the victim; the newcomer takes the slot
            # only with what exceeds its score (an eroded-out slot empties).
            gain = flush_subnormal(value - old_score)
            left = flush_subnormal(old_score - value)
            eroded = ~has_hit & ~has_empty & ~(gain > 0)
            new_score = tf.where(has_hit | has_empty, new_score, tf.where(eroded, left, gain))
            kept = eroded & (left > 0)
            new_key = tf.where(kept, tf.gather(slot_keys, j, batch_dims=1),
                               tf.where(eroded, tf.zeros_like(key), key))
        # A hit keeps the slot's tag and clears a pending mark; a takeover is
        # pending unless sighted (seen twice in this batch, or the rule is off).
        sighted = tf.logical_or(tf.gather(repeated, pick), not config.second_sighting)
        new_row = tf.where(has_hit, tf.where(marker_pending(old_row), old_row + 1, old_row),
                           cold_marker(tag, tf.logical_not(has_empty | sighted)))
        if config.replacement == "erode":
            new_row = tf.where(kept, old_row, tf.where(eroded, ROW_NONE, new_row))
        slot = tf.boolean_mask(bucket * c + tf.cast(j, tf.int64), acts)[:, None]
        keys = tf.tensor_scatter_nd_update(keys, slot, tf.boolean_mask(new_key, acts))
        scores = tf.tensor_scatter_nd_update(scores, slot, tf.boolean_mask(new_score, acts))
        rows = tf.tensor_scatter_nd_update(rows, slot, tf.boolean_mask(new_row, acts))
        return r + 1, keys, scores, rows

    _, keys, scores, rows = tf.while_loop(
        lambda r, *_: r < rounds, body, (tf.constant(0, tf.int32), state.keys, state.scores,
                                         state.rows))
    return state._replace(keys=keys, scores=scores, rows=rows, mass=mass, batches=batches)


def query(config: SketchConfig, keys, scores, rows, ids):
    """Hot row (or -1) and level per id; `ids` of any shape, state flat or [W, c]."""
    c = config.slots_per_bucket
    ids = tf.convert_to_tensor(ids, tf.int64)
    flat_ids = tf.reshape(ids, [-1])
    slot_ids = (hashing.mix64_mod(flat_ids, config.num_buckets)[:, None] * c +
                tf.range(c, dtype=tf.int64)[None, :])
    slot_scores = tf.gather(tf.reshape(scores, [-1]), slot_ids)
    match = tf.logical_and(slot_scores > 0,
                           tf.equal(tf.gather(tf.reshape(keys, [-1]), slot_ids), flat_ids[:, None]))
    # Not found or not hot (a cold marker): -1.
    row = tf.reduce_max(tf.where(match, tf.gather(tf.reshape(rows, [-1]), slot_ids), ROW_NONE), 1)
    row = tf.maximum(row, ROW_NONE)
    score = tf.reduce_max(tf.where(match, slot_scores, -1.0), 1)
    found = tf.reduce_any(match, 1)
    level = tf.where(row >= 0, LEVEL_HOT,
                     tf.where(tf.logical_and(found, score >= config.effective_medium_threshold),
                              LEVEL_MEDIUM, LEVEL_COLD))
    shape = tf.shape(ids)
    return tf.reshape(row, shape), tf.reshape(tf.cast(level, tf.int32), shape)


def _decay_steps(config: SketchConfig, state: SketchTensors, force):
    """(steps, mass left, batches left): cafe::DueDecaySteps."""
    if config.decay_rule == "batches":
        period = tf.constant(config.decay_period, tf.int64)
        steps = tf.where(state.batches >= period, state.batches // period, 0)
        mass_left, batches_left = tf.zeros_like(state.mass), state.batches - steps * period
    else:
        mass = tf.cast(state.mass, tf.float64)
        limit = tf.constant(config.decay_mass_limit, tf.float64)
        due = mass > limit
        periods = tf.where(due, tf.floor(mass / limit), 0.0)
        steps = tf.cast(tf.minimum(periods, MAX_DECAY_STEPS), tf.int64)
        left = mass - periods * limit
        # (left is NaN when mass overflowed to inf: then 0, as in the core.)
        left = flush_subnormal(tf.where(left > 0, tf.cast(left, tf.float32), 0.0))
        mass_left = tf.where(due, left, state.mass)
        batches_left = tf.zeros_like(state.batches)
    forced = tf.logical_and(tf.convert_to_tensor(force, tf.bool), steps == 0)
    return (tf.where(forced, tf.constant(1, tf.int64), steps),
            tf.where(forced, tf.zeros_like(mass_left), mass_left),
            tf.where(forced, tf.zeros_like(batches_left), batches_left))


def decay_factor(rate: float, steps) -> tf.Tensor:
    """rho^steps as cafe::DecayFactor computes it: one float multiply per step (at
    most MAX_DECAY_STEPS), subnormals flushed."""
    rate = tf.constant(rate, tf.float32)
    steps = tf.minimum(tf.cast(steps, tf.int64), MAX_DECAY_STEPS)
    _, factor = tf.while_loop(
        lambda i, f: tf.logical_and(i < steps, tf.logical_and(f > 0, rate < 1)),
        lambda i, f: (i + 1, flush_subnormal(f * rate)),
        (tf.constant(0, tf.int64), tf.constant(1.0, tf.float32)))
    return factor


def _decay(config: SketchConfig, state: SketchTensors, steps, mass_left, batches_left):
    factor = decay_factor(config.effective_decay_rate, steps)
    scores = tf.where(state.scores > 0, flush_subnormal(state.scores * factor), state.scores)
    # Demoted below the threshold, and always when the score underflowed to 0.
    demote = tf.logical_and(state.rows >= 0, tf.logical_or(
        scores < config.effective_demote_threshold, tf.logical_not(scores > 0)))
    demoted_slots = tf.where(demote)[:, 0]
    demoted_rows = tf.gather(state.rows, demoted_slots)
    demoted_tags = tf.gather(state.row_tag, demoted_rows)
    row_slot = tf.tensor_scatter_nd_update(state.row_slot, demoted_rows[:, None],
                                           -tf.ones_like(demoted_rows))
    row_tag = tf.tensor_scatter_nd_update(state.row_tag, demoted_rows[:, None],
                                          tf.zeros_like(demoted_rows))
    rows = tf.tensor_scatter_nd_update(state.rows, demoted_slots[:, None],
                                       cold_marker(demoted_tags, False))
    emptied = tf.logical_not(scores > 0)
    state_out = state._replace(
        keys=tf.where(emptied, tf.zeros_like(state.keys), state.keys),
        scores=tf.where(emptied, tf.zeros_like(scores), scores),
        rows=tf.where(emptied, tf.fill(tf.shape(rows), ROW_NONE), rows),
        row_slot=row_slot, row_tag=row_tag, mass=mass_left, batches=batches_left)
    return state_out, (tf.gather(state.keys, demoted_slots), demoted_tags, demoted_rows)


def _by_score_then_key(state: SketchTensors, slots, direction):
    """`slots` ordered by score (`direction`), ties by key ascending."""
    by_key = tf.gather(slots, tf.argsort(tf.gather(state.keys, slots), stable=True))
    return tf.gather(by_key, tf.argsort(tf.gather(state.scores, by_key), direction=direction,
                                        stable=True))


def _swap(config: SketchConfig, state: SketchTensors, candidates):
    """Demotes the weakest hot keys (score, key ascending) that the candidates
    beyond the free rows outscore by swap_margin (a prefix of the pairs, as the
    candidates' scores fall and the hot keys' rise). Returns (state, demoted)."""
    hot = _by_score_then_key(state, tf.where(state.rows >= 0)[:, 0], "ASCENDING")
    challengers = candidates[tf.reduce_sum(tf.cast(state.row_slot < 0, tf.int32)):]
    pairs = tf.minimum(tf.size(hot), tf.size(challengers))
    hot = hot[:pairs]
    wins = (tf.gather(state.scores, challengers[:pairs]) >
            tf.constant(config.swap_margin, tf.float32) * tf.gather(state.scores, hot))
    swaps = tf.reduce_sum(tf.cast(tf.math.cumprod(tf.cast(wins, tf.int32)), tf.int32))
    slots = hot[:swaps]
    rows = tf.gather(state.rows, slots)
    tags = tf.gather(state.row_tag, rows)
    state = state._replace(
        rows=tf.tensor_scatter_nd_update(state.rows, slots[:, None], cold_marker(tags, False)),
        row_slot=tf.tensor_scatter_nd_update(state.row_slot, rows[:, None], -tf.ones_like(rows)),
        row_tag=tf.tensor_scatter_nd_update(state.row_tag, rows[:, None], tf.zeros_like(rows)))
    return state, (tf.gather(state.keys, slots), tags, rows)


def migrate(config: SketchConfig, state: SketchTensors, force_decay=False):
    """Decay when due (or forced), then promote. Returns (state, MigrationResult)."""
    steps, mass_left, batches_left = _decay_steps(config, state, force_decay)
    decayed = steps > 0
    empty = (tf.zeros([0], tf.int64), tf.zeros([0], tf.int32), tf.zeros([0], tf.int32))
    state, demoted = tf.cond(decayed,
                             lambda: _decay(config, state, steps, mass_left, batches_left),
                             lambda: (state, empty))

    # Pending keys (not seen since they took their slot over) wait.
    candidates = tf.where(tf.logical_and(
        tf.logical_and(state.rows < 0, tf.logical_not(marker_pending(state.rows))),
        tf.logical_and(state.scores > 0, state.scores >= config.threshold)))[:, 0]
    ordered = _by_score_then_key(state, candidates, "DESCENDING")
    if config.swap_margin is not None:
        state, swapped = _swap(config, state, ordered)
        demoted = tuple(tf.concat([d, s], 0) for d, s in zip(demoted, swapped))
    free_rows = tf.cast(tf.where(state.row_slot < 0)[:, 0], tf.int32)
    count = tf.minimum(tf.size(ordered), tf.size(free_rows))
    slots, rows = ordered[:count], free_rows[:count]
    tags = marker_tag(tf.gather(state.rows, slots))
    state = state._replace(
        rows=tf.tensor_scatter_nd_update(state.rows, slots[:, None], rows),
        row_slot=tf.tensor_scatter_nd_update(state.row_slot, rows[:, None],
                                             tf.cast(slots, tf.int32)),
        row_tag=tf.tensor_scatter_nd_update(state.row_tag, rows[:, None], tags))
    result = MigrationResult(decayed, *demoted, tf.gather(state.keys, slots), tags, rows)
    return state, result
