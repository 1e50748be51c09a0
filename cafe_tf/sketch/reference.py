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
# A slot's int32 entry holds, for a hot key, (row << tag_bits) | tag, and for a
# key that is not hot, cold_marker(tag, pending); the tag is the key's feature index.
# Cold markers hold tags up to config.MAX_TAG; a sketch's tags are in [0, 2**tag_bits).
# The entry of an empty slot (and Query's "not hot").
ROW_NONE = -1
# At most this many decay steps (rho each) in one migration.
MAX_DECAY_STEPS = 64

SketchTensors = collections.namedtuple(
    "SketchTensors", ["fingerprints", "scores", "entries", "mass", "batches"]
)
SketchTensors.__doc__ = """Sketch state, unpacked: fingerprints (int64 in [0, 2**32)), scores
(float32) and entries (int32: hot row and tag, or a cold marker) are flat
[W*c] (slot = bucket*c + j); mass (float32) and batches (int64) are scalars.
`pack_slots` / `unpack_slots` convert to and from the int64 `slots` variable."""


def pack_slots(fingerprints, entries):
    """The int64 slot words: fingerprint in the high 32 bits, the int32 entry in the low."""
    high = tf.bitwise.left_shift(
        tf.bitcast(tf.cast(fingerprints, tf.int64), tf.uint64), tf.constant(32, tf.uint64)
    )
    low = tf.cast(tf.bitcast(tf.cast(entries, tf.int32), tf.uint32), tf.uint64)
    return tf.bitcast(tf.bitwise.bitwise_or(high, low), tf.int64)


def unpack_slots(slots):
    """(fingerprints int64, entries int32) of int64 slot words (any shape)."""
    words = tf.bitcast(tf.convert_to_tensor(slots, tf.int64), tf.uint64)
    fingerprints = tf.cast(tf.bitwise.right_shift(words, tf.constant(32, tf.uint64)), tf.int64)
    low = tf.bitwise.bitwise_and(words, tf.constant(0xFFFFFFFF, tf.uint64))
    return fingerprints, tf.bitcast(tf.cast(low, tf.uint32), tf.int32)


def cold_marker(tag, pending):
    """The entry of a key that is not hot: its tag, and whether it is pending
    (it took its slot over and was not seen since: the second sighting rule)."""
    return -1 - 2 * tag - tf.cast(pending, tf.int32)


def marker_tag(marker):
    """The tag in a cold marker (< 0)."""
    return tf.bitwise.right_shift(-1 - marker, 1)


def hot_entry(rows, tags, tag_bits: int):
    """The entry of a hot key: (row << tag_bits) | tag."""
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(rows, tag_bits), tags)


def entry_rows(entries, tag_bits: int):
    """The hot row of each entry, -1 for cold markers."""
    return tf.bitwise.right_shift(tf.maximum(entries, ROW_NONE), tag_bits)


def entry_tags(entries, tag_bits: int):
    """The tag of each entry (hot or cold; 0 for an empty slot)."""
    return tf.where(
        entries >= 0,
        tf.bitwise.bitwise_and(entries, (1 << tag_bits) - 1),
        marker_tag(tf.minimum(entries, ROW_NONE)),
    )


def slot_tags(state: "SketchTensors", tag_bits: int) -> tf.Tensor:
    """The tag of each slot's key (flat [W*c]; 0 for empty slots)."""
    return entry_tags(state.entries, tag_bits)


def marker_pending(marker):
    """Whether an entry is the cold marker of a pending key."""
    return tf.logical_and(marker < 0, tf.equal(tf.bitwise.bitwise_and(-1 - marker, 1), 1))


MigrationResult = collections.namedtuple(
    "MigrationResult",
    [
        "decayed",
        "demoted_fingerprints",
        "demoted_feature_index",
        "demoted_rows",
        "promoted_fingerprints",
        "promoted_feature_index",
        "promoted_rows",
    ],
)
MigrationResult.__doc__ = """What a migration did: whether it decayed, and per demoted and per
promoted key its fingerprint (int64 in [0, 2**32)), feature index (int32, its entry's tag)
and hot row (int32)."""


def pairwise_sum(values: tf.Tensor) -> tf.Tensor:
    """Float32 sum by pairwise halving over the length padded to a power of two.

    The fixed tree of cafe::PairwiseSum, so the result is bit-identical.
    """
    values = tf.reshape(tf.cast(values, tf.float32), [-1])
    n = tf.size(values)
    (padded,) = tf.while_loop(lambda p: p < n, lambda p: (p * 2,), (tf.constant(1),))
    x = tf.concat([values, tf.zeros([padded - n], tf.float32)], 0)

    (x,) = tf.while_loop(
        lambda x: tf.size(x) > 1,
        lambda x: (x[: tf.size(x) // 2] + x[tf.size(x) // 2 :],),
        (x,),
        shape_invariants=(tf.TensorShape([None]),),
    )
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


def _dedup(ids, importance, feature_index):
    """Distinct ids with their importance summed in input order, their min feature index
    (their tag) and whether they occur more than once."""
    unique, index = tf.unique(ids, out_idx=tf.int32)
    count = tf.size(unique)
    sums = tf.math.unsorted_segment_sum(importance, index, count)
    min_tags = tf.math.unsorted_segment_min(feature_index, index, count)
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


def insert(
    config: SketchConfig, state: SketchTensors, ids, importance, feature_index
) -> SketchTensors:
    """Batch insert (docs/sketch.md, "Batch insert"). Inputs must already be validated."""
    c = config.slots_per_bucket
    n = tf.size(ids)
    importance = flush_subnormal(importance)
    mass = state.mass + pairwise_sum(importance)
    batches = state.batches + tf.cast(n > 0, tf.int64)

    keys_in, sums, key_tags, repeated = _dedup(ids, importance, feature_index)
    buckets = hashing.mix64_mod(keys_in, config.num_buckets)
    order = _order_by_bucket_then_key(keys_in, buckets)
    keys_in, sums, key_tags, repeated, buckets = (
        tf.gather(t, order) for t in (keys_in, sums, key_tags, repeated, buckets)
    )
    fps_in = hashing.fingerprint(keys_in)
    rank = _rank_within_bucket(buckets)
    rounds = tf.reduce_max(tf.concat([rank, [-1]], 0)) + 1

    def body(r, fps, scores, entries):
        pick = tf.where(tf.equal(rank, r))[:, 0]
        bucket = tf.gather(buckets, pick)
        fp = tf.gather(fps_in, pick)
        value = tf.gather(sums, pick)
        tag = tf.gather(key_tags, pick)
        slot_ids = bucket[:, None] * c + tf.range(c, dtype=tf.int64)[None, :]
        slot_fps = tf.gather(fps, slot_ids)
        slot_scores = tf.gather(scores, slot_ids)
        slot_entries = tf.gather(entries, slot_ids)
        occupied = slot_scores > 0
        # Slots match keys by fingerprint.
        hit = tf.logical_and(occupied, tf.equal(slot_fps, fp[:, None]))
        has_hit = tf.reduce_any(hit, 1)
        empty = tf.logical_not(occupied)
        has_empty = tf.reduce_any(empty, 1)
        evictable = slot_entries < 0
        has_evictable = tf.reduce_any(evictable, 1)
        masked = tf.where(evictable, slot_scores, tf.fill(tf.shape(slot_scores), float("inf")))
        smallest = tf.logical_and(
            evictable, tf.equal(masked, tf.reduce_min(masked, 1, keepdims=True))
        )
        j = tf.where(
            has_hit, _first_true(hit), tf.where(has_empty, _first_true(empty), _last_true(smallest))
        )
        acts = tf.logical_or(tf.logical_or(has_hit, has_empty), has_evictable)
        old_score = tf.gather(slot_scores, j, batch_dims=1)
        old_entry = tf.gather(slot_entries, j, batch_dims=1)
        new_fp = fp
        new_score = tf.where(has_empty & ~has_hit, value, old_score + value)
        if config.replacement == "erode":
            # A miss in a full bucket erodes the victim; the newcomer takes the slot
            # only with what exceeds its score (an eroded-out slot empties).
            gain = flush_subnormal(value - old_score)
            left = flush_subnormal(old_score - value)
            eroded = ~has_hit & ~has_empty & ~(gain > 0)
            new_score = tf.where(has_hit | has_empty, new_score, tf.where(eroded, left, gain))
            kept = eroded & (left > 0)
            new_fp = tf.where(
                kept, tf.gather(slot_fps, j, batch_dims=1), tf.where(eroded, tf.zeros_like(fp), fp)
            )
        # A hit keeps the slot's tag and clears a pending mark; a takeover is
        # pending unless sighted (seen twice in this batch, or the rule is off).
        sighted = tf.logical_or(tf.gather(repeated, pick), not config.second_sighting)
        new_entry = tf.where(
            has_hit,
            tf.where(marker_pending(old_entry), old_entry + 1, old_entry),
            cold_marker(tag, tf.logical_not(has_empty | sighted)),
        )
        if config.replacement == "erode":
            new_entry = tf.where(kept, old_entry, tf.where(eroded, ROW_NONE, new_entry))
        slot = tf.boolean_mask(bucket * c + tf.cast(j, tf.int64), acts)[:, None]
        fps = tf.tensor_scatter_nd_update(fps, slot, tf.boolean_mask(new_fp, acts))
        scores = tf.tensor_scatter_nd_update(scores, slot, tf.boolean_mask(new_score, acts))
        entries = tf.tensor_scatter_nd_update(entries, slot, tf.boolean_mask(new_entry, acts))
        return r + 1, fps, scores, entries

    _, fps, scores, entries = tf.while_loop(
        lambda r, *_: r < rounds,
        body,
        (tf.constant(0, tf.int32), state.fingerprints, state.scores, state.entries),
    )
    return state._replace(
        fingerprints=fps, scores=scores, entries=entries, mass=mass, batches=batches
    )


def query(config: SketchConfig, slots, scores, ids):
    """Hot row (or -1) and level per id; `ids` of any shape, `slots` (int64 slot
    words) and `scores` flat or [W, c]."""
    c = config.slots_per_bucket
    ids = tf.convert_to_tensor(ids, tf.int64)
    flat_ids = tf.reshape(ids, [-1])
    fps, entries = unpack_slots(tf.reshape(slots, [-1]))
    slot_ids = (
        hashing.mix64_mod(flat_ids, config.num_buckets)[:, None] * c
        + tf.range(c, dtype=tf.int64)[None, :]
    )
    slot_scores = tf.gather(tf.reshape(scores, [-1]), slot_ids)
    match = tf.logical_and(
        slot_scores > 0, tf.equal(tf.gather(fps, slot_ids), hashing.fingerprint(flat_ids)[:, None])
    )
    # Not found or not hot (a cold marker): -1.
    entry = tf.reduce_max(tf.where(match, tf.gather(entries, slot_ids), ROW_NONE), 1)
    row = entry_rows(entry, config.tag_bits)
    score = tf.reduce_max(tf.where(match, slot_scores, -1.0), 1)
    found = tf.reduce_any(match, 1)
    level = tf.where(
        row >= 0,
        LEVEL_HOT,
        tf.where(
            tf.logical_and(found, score >= config.effective_medium_threshold),
            LEVEL_MEDIUM,
            LEVEL_COLD,
        ),
    )
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
    return (
        tf.where(forced, tf.constant(1, tf.int64), steps),
        tf.where(forced, tf.zeros_like(mass_left), mass_left),
        tf.where(forced, tf.zeros_like(batches_left), batches_left),
    )


def decay_factor(rate: float, steps) -> tf.Tensor:
    """rho^steps as cafe::DecayFactor computes it: one float multiply per step (at
    most MAX_DECAY_STEPS), subnormals flushed."""
    rate = tf.constant(rate, tf.float32)
    steps = tf.minimum(tf.cast(steps, tf.int64), MAX_DECAY_STEPS)
    _, factor = tf.while_loop(
        lambda i, f: tf.logical_and(i < steps, tf.logical_and(f > 0, rate < 1)),
        lambda i, f: (i + 1, flush_subnormal(f * rate)),
        (tf.constant(0, tf.int64), tf.constant(1.0, tf.float32)),
    )
    return factor


def _decay(config: SketchConfig, state: SketchTensors, steps, mass_left, batches_left):
    tag_bits = config.tag_bits
    factor = decay_factor(config.effective_decay_rate, steps)
    scores = tf.where(state.scores > 0, flush_subnormal(state.scores * factor), state.scores)
    # Demoted below the threshold, and always when the score underflowed to 0.
    demote = tf.logical_and(
        state.entries >= 0,
        tf.logical_or(scores < config.effective_demote_threshold, tf.logical_not(scores > 0)),
    )
    demoted_slots = tf.where(demote)[:, 0]
    demoted_entries = tf.gather(state.entries, demoted_slots)
    demoted_rows = entry_rows(demoted_entries, tag_bits)
    demoted_tags = entry_tags(demoted_entries, tag_bits)
    entries = tf.tensor_scatter_nd_update(
        state.entries, demoted_slots[:, None], cold_marker(demoted_tags, False)
    )
    emptied = tf.logical_not(scores > 0)
    state_out = state._replace(
        fingerprints=tf.where(emptied, tf.zeros_like(state.fingerprints), state.fingerprints),
        scores=tf.where(emptied, tf.zeros_like(scores), scores),
        entries=tf.where(emptied, tf.fill(tf.shape(entries), ROW_NONE), entries),
        mass=mass_left,
        batches=batches_left,
    )
    return state_out, (tf.gather(state.fingerprints, demoted_slots), demoted_tags, demoted_rows)


def _by_score_then_fingerprint(state: SketchTensors, slots, direction):
    """`slots` (ascending) ordered by score (`direction`), ties by fingerprint
    ascending, then slot ascending."""
    by_fp = tf.gather(slots, tf.argsort(tf.gather(state.fingerprints, slots), stable=True))
    return tf.gather(
        by_fp, tf.argsort(tf.gather(state.scores, by_fp), direction=direction, stable=True)
    )


def _swap(config: SketchConfig, state: SketchTensors, candidates):
    """Demotes the weakest hot keys (score, fingerprint, slot ascending) that are below
    yield_threshold or that the candidates (score >= k) beyond the free rows outscore by
    swap_margin (a prefix of the pairs, as the candidates' scores fall and the hot keys'
    rise). Returns (state, demoted)."""
    tag_bits = config.tag_bits
    hot = _by_score_then_fingerprint(state, tf.where(state.entries >= 0)[:, 0], "ASCENDING")
    free = config.hot_rows - tf.size(hot)
    challengers = candidates[free:]
    pairs = tf.minimum(tf.size(hot), tf.size(challengers))
    hot = hot[:pairs]
    hot_scores = tf.gather(state.scores, hot)
    # A hot key below yield_threshold (a filler, or one that decayed) yields to any candidate.
    wins = tf.logical_or(
        hot_scores < config.yield_threshold,
        tf.gather(state.scores, challengers[:pairs])
        > tf.constant(config.swap_margin, tf.float32) * hot_scores,
    )
    swaps = tf.reduce_sum(tf.cast(tf.math.cumprod(tf.cast(wins, tf.int32)), tf.int32))
    slots = hot[:swaps]
    entries = tf.gather(state.entries, slots)
    rows, tags = entry_rows(entries, tag_bits), entry_tags(entries, tag_bits)
    state = state._replace(
        entries=tf.tensor_scatter_nd_update(state.entries, slots[:, None], cold_marker(tags, False))
    )
    return state, (tf.gather(state.fingerprints, slots), tags, rows)


def free_rows(config: SketchConfig, entries) -> tf.Tensor:
    """Hot rows held by no slot's entry, ascending (int32)."""
    hot = tf.boolean_mask(entries, entries >= 0)
    used = tf.scatter_nd(
        entry_rows(hot, config.tag_bits)[:, None], tf.ones_like(hot), [config.hot_rows]
    )
    return tf.cast(tf.where(tf.equal(used, 0))[:, 0], tf.int32)


def migrate(config: SketchConfig, state: SketchTensors, force_decay=False):
    """Decay when due (or forced), then promote. Returns (state, MigrationResult)."""
    steps, mass_left, batches_left = _decay_steps(config, state, force_decay)
    decayed = steps > 0
    empty = (tf.zeros([0], tf.int64), tf.zeros([0], tf.int32), tf.zeros([0], tf.int32))
    state, demoted = tf.cond(
        decayed,
        lambda: _decay(config, state, steps, mass_left, batches_left),
        lambda: (state, empty),
    )

    # Pending keys (not seen since they took their slot over) wait. Keys below k
    # (filling free rows) follow those above it in the order.
    floor = config.promotion_floor
    candidates = tf.where(
        tf.logical_and(
            tf.logical_and(state.entries < 0, tf.logical_not(marker_pending(state.entries))),
            tf.logical_and(state.scores > 0, state.scores >= floor),
        )
    )[:, 0]
    ordered = _by_score_then_fingerprint(state, candidates, "DESCENDING")
    if config.swap_margin is not None:
        strong = tf.reduce_sum(
            tf.cast(tf.gather(state.scores, ordered) >= config.threshold, tf.int32)
        )
        state, swapped = _swap(config, state, ordered[:strong])
        demoted = tuple(tf.concat([d, s], 0) for d, s in zip(demoted, swapped))
    free = free_rows(config, state.entries)
    count = tf.minimum(tf.size(ordered), tf.size(free))
    slots, rows = ordered[:count], free[:count]
    tags = marker_tag(tf.gather(state.entries, slots))
    state = state._replace(
        entries=tf.tensor_scatter_nd_update(
            state.entries, slots[:, None], hot_entry(rows, tags, config.tag_bits)
        )
    )
    result = MigrationResult(decayed, *demoted, tf.gather(state.fingerprints, slots), tags, rows)
    return state, result
