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

SketchTensors = collections.namedtuple(
    "SketchTensors", ["keys", "scores", "rows", "tags", "row_slot", "mass", "batches"])
SketchTensors.__doc__ = """Sketch state: keys/scores/rows/tags are flat [W*c] (slot = bucket*c + j),
row_slot is [hot_rows], mass (float32) and batches (int64) are scalars."""

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
    """Distinct ids with their importance summed in input order and their min tag."""
    unique, index = tf.unique(ids, out_idx=tf.int32)
    count = tf.size(unique)
    sums = tf.math.unsorted_segment_sum(importance, index, count)
    min_tags = tf.math.unsorted_segment_min(tags, index, count)
    keep = sums > 0  # a key whose summed importance is 0 changes nothing
    return (tf.boolean_mask(unique, keep), tf.boolean_mask(sums, keep),
            tf.boolean_mask(min_tags, keep))


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

    keys_in, sums, key_tags = _dedup(ids, importance, tags)
    buckets = hashing.mix64_mod(keys_in, config.num_buckets)
    order = _order_by_bucket_then_key(keys_in, buckets)
    keys_in, sums, key_tags, buckets = (tf.gather(t, order) for t in
                                        (keys_in, sums, key_tags, buckets))
    rank = _rank_within_bucket(buckets)
    rounds = tf.reduce_max(tf.concat([rank, [-1]], 0)) + 1

    def body(r, keys, scores, tags):
        pick = tf.where(tf.equal(rank, r))[:, 0]
        bucket = tf.gather(buckets, pick)
        key = tf.gather(keys_in, pick)
        value = tf.gather(sums, pick)
        tag = tf.gather(key_tags, pick)
        slot_ids = bucket[:, None] * c + tf.range(c, dtype=tf.int64)[None, :]
        slot_keys = tf.gather(keys, slot_ids)
        slot_scores = tf.gather(scores, slot_ids)
        slot_rows = tf.gather(state.rows, slot_ids)
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
        new_score = tf.where(has_empty & ~has_hit, value, old_score + value)
        slot = tf.boolean_mask(bucket * c + tf.cast(j, tf.int64), acts)[:, None]
        new_key = tf.boolean_mask(key, acts)
        new_tag = tf.boolean_mask(tf.where(has_hit, tf.gather(tags, bucket * c +
                                                               tf.cast(j, tf.int64)), tag), acts)
        keys = tf.tensor_scatter_nd_update(keys, slot, new_key)
        scores = tf.tensor_scatter_nd_update(scores, slot, tf.boolean_mask(new_score, acts))
        tags = tf.tensor_scatter_nd_update(tags, slot, new_tag)
        return r + 1, keys, scores, tags

    _, keys, scores, tags_out = tf.while_loop(
        lambda r, *_: r < rounds, body, (tf.constant(0, tf.int32), state.keys, state.scores,
                                         state.tags))
    return state._replace(keys=keys, scores=scores, tags=tags_out, mass=mass, batches=batches)


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
    row = tf.reduce_max(tf.where(match, tf.gather(tf.reshape(rows, [-1]), slot_ids), -1), 1)
    score = tf.reduce_max(tf.where(match, slot_scores, -1.0), 1)
    found = tf.reduce_any(match, 1)
    level = tf.where(row >= 0, LEVEL_HOT,
                     tf.where(tf.logical_and(found, score >= config.effective_medium_threshold),
                              LEVEL_MEDIUM, LEVEL_COLD))
    shape = tf.shape(ids)
    return tf.reshape(row, shape), tf.reshape(tf.cast(level, tf.int32), shape)


def decay_due(config: SketchConfig, state: SketchTensors) -> tf.Tensor:
    if config.decay_rule == "batches":
        return state.batches >= config.decay_period
    return tf.cast(state.mass, tf.float64) > config.decay_mass_limit


def _decay(config: SketchConfig, state: SketchTensors):
    scores = tf.where(state.scores > 0, flush_subnormal(state.scores * config.decay_rate),
                      state.scores)
    # Demoted below the threshold, and always when the score underflowed to 0.
    demote = tf.logical_and(state.rows >= 0, tf.logical_or(
        scores < config.effective_demote_threshold, tf.logical_not(scores > 0)))
    demoted_slots = tf.where(demote)[:, 0]
    demoted_rows = tf.gather(state.rows, demoted_slots)
    row_slot = tf.tensor_scatter_nd_update(state.row_slot, demoted_rows[:, None],
                                           -tf.ones_like(demoted_rows))
    emptied = tf.logical_not(scores > 0)
    state_out = state._replace(
        keys=tf.where(emptied, tf.zeros_like(state.keys), state.keys),
        scores=tf.where(emptied, tf.zeros_like(scores), scores),
        rows=tf.where(demote, -tf.ones_like(state.rows), state.rows),
        tags=tf.where(emptied, tf.zeros_like(state.tags), state.tags),
        row_slot=row_slot, mass=tf.zeros_like(state.mass), batches=tf.zeros_like(state.batches))
    demoted = (tf.gather(state.keys, demoted_slots), tf.gather(state.tags, demoted_slots),
               demoted_rows)
    return state_out, demoted


def migrate(config: SketchConfig, state: SketchTensors, force_decay=False):
    """Decay when due (or forced), then promote. Returns (state, MigrationResult)."""
    decayed = tf.logical_or(tf.convert_to_tensor(force_decay, tf.bool), decay_due(config, state))
    empty = (tf.zeros([0], tf.int64), tf.zeros([0], tf.int32), tf.zeros([0], tf.int32))
    state, demoted = tf.cond(decayed, lambda: _decay(config, state), lambda: (state, empty))

    candidates = tf.where(tf.logical_and(state.rows < 0, tf.logical_and(
        state.scores > 0, state.scores >= config.threshold)))[:, 0]
    cand_keys = tf.gather(state.keys, candidates)
    by_key = tf.argsort(cand_keys, stable=True)
    by_score = tf.argsort(tf.gather(tf.gather(state.scores, candidates), by_key),
                          direction="DESCENDING", stable=True)
    ordered = tf.gather(candidates, tf.gather(by_key, by_score))
    free_rows = tf.cast(tf.where(state.row_slot < 0)[:, 0], tf.int32)
    count = tf.minimum(tf.size(ordered), tf.size(free_rows))
    slots, rows = ordered[:count], free_rows[:count]
    state = state._replace(
        rows=tf.tensor_scatter_nd_update(state.rows, slots[:, None], rows),
        row_slot=tf.tensor_scatter_nd_update(state.row_slot, rows[:, None],
                                             tf.cast(slots, tf.int32)))
    result = MigrationResult(decayed, *demoted, tf.gather(state.keys, slots),
                             tf.gather(state.tags, slots), rows)
    return state, result
