"""The C++ op and the pure-TF reference give bit-identical sketch state."""

import zlib

import numpy as np
import pytest
import tensorflow as tf
from sketch_utils import assert_same_state, check_invariants, result_arrays, zipf_batch

from cafe_tf.sketch import HotSketch, SketchConfig

SCENARIOS = {
    # name: (config kwargs, batch size, distinct ids, alpha[, batches])
    "tiny_full_buckets": (
        dict(
            num_buckets=8,
            hot_rows=5,
            slots_per_bucket=2,
            threshold=2.0,
            replacement="inherit",
            decay_rate=0.5,
            decay_mass_factor=10.0,
        ),
        200,
        500,
        1.05,
    ),
    "all_hot_buckets": (
        dict(
            num_buckets=4,
            hot_rows=16,
            slots_per_bucket=4,
            threshold=0.5,
            decay_rate=0.9,
            decay_mass_factor=50.0,
        ),
        300,
        2000,
        1.1,
    ),
    "zipf_medium": (
        dict(
            num_buckets=256,
            hot_rows=127,
            slots_per_bucket=4,
            threshold=5.0,
            decay_rate=0.8,
            medium_threshold=1.0,
            decay_mass_factor=2.0,
        ),
        4000,
        100_000,
        1.2,
    ),
    "batches_rule_hysteresis": (
        dict(
            num_buckets=64,
            hot_rows=32,
            slots_per_bucket=3,
            threshold=4.0,
            demote_threshold=2.0,
            decay_rule="batches",
            decay_period=3,
            decay_rate=0.7,
        ),
        1000,
        10_000,
        1.1,
    ),
    "paper_rules": (
        dict(
            num_buckets=32,
            hot_rows=16,
            slots_per_bucket=2,
            threshold=2.0,
            second_sighting=False,
            replacement="inherit",
            decay_rate=0.7,
            decay_mass_factor=3.0,
        ),
        500,
        3000,
        1.1,
    ),
    # Several decay steps per migration, and swaps.
    "half_life_swaps": (
        dict(
            num_buckets=128,
            hot_rows=40,
            slots_per_bucket=4,
            threshold=3.0,
            decay_half_life=4.0,
            swap_margin=1.25,
            medium_threshold=1.0,
        ),
        2000,
        20_000,
        1.1,
    ),
    # Free rows filled below k, hot keys kept until displaced (the layer's defaults).
    "fill_free_rows": (
        dict(
            num_buckets=96,
            hot_rows=60,
            slots_per_bucket=4,
            threshold=3.0,
            demote_threshold=0.0,
            decay_half_life=2.0,
            swap_margin=1.5,
            fill_free_rows=True,
            yield_threshold=1.5,
        ),
        1500,
        20_000,
        1.1,
    ),
    # 16 slots per bucket, about 4/3 per hot row: the query's 16-slot scan, full buckets.
    "sixteen_slots": (
        dict(
            num_buckets=48,
            hot_rows=64,
            slots_per_bucket=16,
            threshold=3.0,
            decay_rate=0.8,
            medium_threshold=1.0,
            decay_mass_factor=2.0,
        ),
        3000,
        30_000,
        1.1,
    ),
    # Batches big enough for the op to split insert and query over several threads.
    "large_parallel": (
        dict(
            num_buckets=65_536,
            hot_rows=4_097,
            slots_per_bucket=4,
            threshold=3.0,
            decay_rate=0.9,
            medium_threshold=1.5,
            decay_mass_factor=0.5,
        ),
        150_000,
        2_000_000,
        1.1,
        6,
    ),
}


def _run(config, batches, make_sketch, forced_decays, wrap=lambda f: f):
    """Inserts and migrates batch after batch; returns the sketch and, per step, the
    migration result and the query answer for the batch's ids and some unseen ones."""
    sketch = make_sketch(config)

    def insert_batch(ids, values, tags):
        sketch.insert(ids, values, tags)  # returns an Operation: a tf.function must not

    insert = wrap(insert_batch)
    migrate = wrap(lambda force: sketch.migrate(force))
    query = wrap(lambda ids: sketch.query(ids))
    results = []
    for step, (ids, values, tags) in enumerate(batches):
        insert(tf.constant(ids), tf.constant(values), tf.constant(tags))
        migration = result_arrays(migrate(tf.constant(step in forced_decays)))
        asked = np.concatenate([ids, np.arange(-50, 50, dtype=np.int64)])
        results.append(migration + result_arrays(query(tf.constant(asked))))
    return sketch, results


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_op_matches_reference_bit_for_bit(scenario):
    """The reference runs once; the op runs with every thread count (its state must not
    depend on how insert and query split the work)."""
    kwargs, n, distinct, alpha, *num_batches = SCENARIOS[scenario]
    config = SketchConfig(**kwargs, num_features=3)
    rng = np.random.default_rng(zlib.crc32(scenario.encode()))
    batches = [
        zipf_batch(rng, n, distinct, alpha, num_features=3) for _ in range(*num_batches or [12])
    ]
    batches.append(zipf_batch(rng, 0, distinct, alpha))  # an empty batch changes nothing
    forced = {4, 9}
    ref, ref_results = _run(config, batches, lambda c: HotSketch(c, backend="reference"), forced)
    # The scenario must exercise what it claims.
    assert sum(len(r[4]) for r in ref_results) > 0, "no promotion happened"
    assert any(r[0] for r in ref_results), "no decay happened"
    for num_threads in (1, 2, 3, 8, 64):
        op, op_results = _run(
            config,
            batches,
            lambda c, n=num_threads: HotSketch(c, backend="op", num_threads=n),
            forced,
        )
        where = f"{num_threads} threads"
        assert_same_state(op, ref, f"after {len(batches)} batches, {where}")
        for step, (a, b) in enumerate(zip(op_results, ref_results)):
            for x, y in zip(a, b):
                assert np.array_equal(x, y), (
                    f"migration result or query differs at step {step}, {where}"
                )
        check_invariants(op)


@pytest.mark.parametrize("backend", ["op", "reference"])
def test_eager_and_tf_function_agree(backend):
    kwargs, n, distinct, alpha = SCENARIOS["zipf_medium"]
    config = SketchConfig(**kwargs)
    rng = np.random.default_rng(7)
    batches = [zipf_batch(rng, n, distinct, alpha) for _ in range(6)]

    def make(c):
        return HotSketch(c, backend=backend)

    eager, eager_results = _run(config, batches, make, {2})
    graph, graph_results = _run(config, batches, make, {2}, wrap=tf.function)
    assert_same_state(eager, graph)
    for a, b in zip(eager_results, graph_results):
        for x, y in zip(a, b):
            assert np.array_equal(x, y)


def test_state_is_independent_of_batch_order_within_a_batch():
    """Insert is order-free up to duplicate sums: permuting a batch of unit
    importances gives the same state."""
    config = SketchConfig(num_buckets=16, hot_rows=8, slots_per_bucket=2, threshold=3.0)
    rng = np.random.default_rng(3)
    ids, values, tags = zipf_batch(rng, 2000, 5000, importance="ones")
    perm = rng.permutation(len(ids))
    a = HotSketch(config, backend="op")
    b = HotSketch(config, backend="op")
    a.insert(ids, values, tags)
    b.insert(ids[perm], values[perm], tags[perm])
    assert_same_state(a, b)


def test_invariants_hold_after_every_step():
    config = SketchConfig(
        num_buckets=32,
        hot_rows=20,
        slots_per_bucket=4,
        threshold=3.0,
        decay_rate=0.6,
        decay_mass_factor=0.5,
        num_features=5,
    )
    sketch = HotSketch(config, backend="op")
    rng = np.random.default_rng(11)
    for _ in range(30):
        sketch.insert(*zipf_batch(rng, 500, 3000, 1.1, num_features=5))
        check_invariants(sketch)
        sketch.migrate()
        check_invariants(sketch)


def test_decay_limit_is_the_ops_float32_one():
    """The ops get k and the mass factor as float32: 10 * 3 * f32(0.001) is just above
    0.03, and a float32 mass between the two limits must not decay either sketch."""
    config = SketchConfig(num_buckets=3, hot_rows=2, threshold=0.001, decay_mass_factor=10.0)
    mass = np.float32(0.030000001192092896)
    assert 0.03 < float(mass) < 10 * 3 * float(np.float32(0.001))
    decayed = []
    for backend in ("op", "reference"):
        sketch = HotSketch(config, backend=backend)
        sketch.insert(tf.constant([1], tf.int64), tf.constant([mass]))
        assert sketch.mass.numpy() == mass
        decayed.append(bool(sketch.migrate().decayed.numpy()))
    assert decayed == [False, False]
