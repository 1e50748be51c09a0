"""CafeConfig checks every field when it is built and reports all problems at once."""

import dataclasses

import pytest

from cafe_tf import CafeConfig, budget

VALID = dict(embedding_dim=8, compression_ratio=10)


@pytest.mark.parametrize(
    "changes, message",
    [
        pytest.param(
            dict(embedding_dim=0), "`embedding_dim` must be a positive int, got 0", id="zero_dim"
        ),
        pytest.param(
            dict(embedding_dim=8.0), "`embedding_dim` must be a positive int", id="float_dim"
        ),
        pytest.param(
            dict(embedding_dim=True), "`embedding_dim` must be a positive int", id="bool_dim"
        ),
        pytest.param(
            dict(compression_ratio=None), "exactly one of `compression_ratio` and", id="no_budget"
        ),
        pytest.param(dict(budget_bytes=1000), "exactly one of", id="ratio_and_budget"),
        pytest.param(
            dict(compression_ratio=0.5),
            "`compression_ratio` must be a finite number >= 1",
            id="ratio_below_1",
        ),
        pytest.param(
            dict(compression_ratio=float("inf")),
            "`compression_ratio` must be a finite",
            id="infinite_ratio",
        ),
        pytest.param(
            dict(compression_ratio=None, budget_bytes=0),
            "`budget_bytes` must be a positive int",
            id="zero_budget",
        ),
        pytest.param(
            dict(compression_ratio=None, budget_bytes=1e6),
            "`budget_bytes` must be a positive int",
            id="float_budget",
        ),
        pytest.param(
            dict(hot_share=1.0), "`hot_share` must be None or in \\(0, 1\\)", id="hot_share_1"
        ),
        pytest.param(
            dict(threshold=0.0), "`threshold` must be None or finite", id="zero_threshold"
        ),
        pytest.param(dict(threshold=1e-40), "`threshold` must be None or finite", id="subnormal_k"),
        pytest.param(dict(decay_rate=0.0), "`decay_rate` must be in \\(0, 1\\]", id="zero_decay"),
        pytest.param(
            dict(decay_rate=1.5), "`decay_rate` must be in \\(0, 1\\]", id="decay_above_1"
        ),
        pytest.param(
            dict(slots_per_bucket=0), "`slots_per_bucket` must be a positive int", id="no_slots"
        ),
        pytest.param(
            dict(importance="loss"), "`importance` must be one of", id="unknown_importance"
        ),
        pytest.param(dict(multi_level="yes"), "`multi_level` must be a bool", id="multi_level_str"),
        pytest.param(
            dict(medium_threshold_ratio=0.0),
            "`medium_threshold_ratio` must be in",
            id="zero_medium_ratio",
        ),
        pytest.param(
            dict(medium_share=1.0),
            "`medium_share` must be None or in \\(0, 1\\)",
            id="medium_share_1",
        ),
        pytest.param(
            dict(decay_rule="often"),
            "`decay_rule` must be one of \\('mass', 'batches'\\)",
            id="unknown_decay_rule",
        ),
        pytest.param(
            dict(decay_rule="batches"),
            "`decay_period` must be a positive int with",
            id="batches_without_period",
        ),
        pytest.param(
            dict(decay_period=-1), "`decay_period` must be an int >= 0", id="negative_period"
        ),
        pytest.param(
            dict(threshold=10.0, demote_threshold=20.0),
            "`demote_threshold` must be None,",
            id="demote_above_k",
        ),
        pytest.param(
            dict(demote_threshold=-1.0), "`demote_threshold` must be None,", id="negative_demote"
        ),
        pytest.param(
            dict(fill_free_rows="yes"),
            "`fill_free_rows` must be None or a bool",
            id="fill_not_a_bool",
        ),
        pytest.param(
            dict(share_hashed_tables="yes"),
            "`share_hashed_tables` must be None or a bool",
            id="share_not_a_bool",
        ),
        pytest.param(
            dict(backend="gpu"),
            "`backend` must be one of \\('auto', 'op', 'reference'\\), got 'gpu'",
            id="gpu_backend",
        ),
    ],
)
def test_each_bad_field_is_rejected_at_construction(changes, message):
    with pytest.raises(ValueError, match=message):
        CafeConfig(**{**VALID, **changes})


def test_all_problems_are_reported_at_once():
    with pytest.raises(ValueError) as raised:
        CafeConfig(
            embedding_dim=-1,
            compression_ratio=10,
            backend="gpu",
            decay_rule="often",
            decay_rate=2.0,
            importance="loss",
        )
    message = str(raised.value)
    assert message.startswith("Invalid CafeConfig: ")
    for field in ("embedding_dim", "backend", "decay_rule", "decay_rate", "importance"):
        assert f"`{field}`" in message
    assert message.count(";") == 4


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param(dict(), id="defaults"),
        pytest.param(dict(compression_ratio=None, budget_bytes=50_000), id="budget_bytes"),
        pytest.param(dict(threshold=5.0, demote_threshold=0.0), id="demote_to_zero"),
        pytest.param(dict(demote_threshold=1.0), id="demote_with_paper_k"),
        pytest.param(
            dict(
                decay_rule="batches",
                decay_period=3,
                backend="reference",
                importance="frequency",
                multi_level=True,
                medium_share=0.3,
            ),
            id="every_option",
        ),
    ],
)
def test_valid_configs_construct_and_round_trip(changes):
    config = CafeConfig(**{**VALID, **changes})
    assert CafeConfig(**config.to_dict()) == config
    resolved = config.resolved([1000, 300])
    assert resolved.budget_bytes > 0 and resolved.threshold is not None
    assert dataclasses.replace(resolved) == resolved  # resolved configs pass the checks too


# Criteo-like: 676k ids in 26 features, as benchmarks/quality.py's smallest shape.
CRITEO_LIKE = [26_000] * 26


@pytest.mark.parametrize("ratio", [10, 100, 1000, 10000])
def test_defaults_follow_the_layout(ratio):
    """Hot share at least 0.7, k from the hot rows (40,000 / H within [2, 10], raised for
    small hot tables to a 12,800-lookup half-life); hot features keep their rows until
    displaced (demotion threshold 0), or, where free rows wait for k, demotion at k / 2."""
    resolved = CafeConfig(embedding_dim=16, compression_ratio=ratio).resolved(CRITEO_LIKE)
    paper_k, paper_h = budget.paper_settings(ratio)
    assert resolved.hot_share == max(0.7, 1 - paper_h)
    hot_rows = resolved.plan(CRITEO_LIKE).hot_rows
    k = min(10.0, max(2.0, 40_000 / hot_rows))
    assert resolved.threshold == max(k, 12_800 / (8 * hot_rows))
    assert 2.0 <= resolved.threshold
    assert resolved.fill_free_rows is True and resolved.demote_threshold == 0.0
    for waiting in (dict(fill_free_rows=False), dict(swap_margin=None)):
        config = CafeConfig(embedding_dim=16, compression_ratio=ratio, **waiting)
        resolved = config.resolved(CRITEO_LIKE)
        assert resolved.demote_threshold == resolved.threshold / 2
    # What is set stays.
    fixed = CafeConfig(
        embedding_dim=16,
        compression_ratio=ratio,
        threshold=7.0,
        hot_share=0.6,
        fill_free_rows=False,
    ).resolved(CRITEO_LIKE)
    assert (fixed.threshold, fixed.hot_share, fixed.demote_threshold) == (7.0, 0.6, 3.5)
    assert (
        CafeConfig(embedding_dim=16, compression_ratio=ratio, demote_threshold=1.0)
        .resolved(CRITEO_LIKE)
        .demote_threshold
        == 1.0
    )


@pytest.mark.parametrize(
    "options, fills",
    [
        pytest.param({}, True, id="default_16_bytes_c16"),
        pytest.param(dict(sketch_bytes_per_hot_row=12.0), False, id="one_slot_per_hot_row"),
        pytest.param(dict(slots_per_bucket=4), False, id="16_bytes_c4"),
        pytest.param(dict(sketch_bytes_per_hot_row=48.0, slots_per_bucket=4), True, id="48_c4"),
    ],
)
def test_free_rows_are_filled_where_buckets_keep_spare_slots(options, fills):
    """Filling needs 2 non-hot slots per bucket on average with every row hot; where it is
    off, the demotion threshold falls back to k / 2."""
    config = CafeConfig(embedding_dim=16, compression_ratio=100, **options)
    resolved, layout = config.resolved(CRITEO_LIKE), config.plan(CRITEO_LIKE)
    spare = layout.num_buckets * layout.slots_per_bucket - layout.hot_rows
    assert (spare >= 2 * layout.num_buckets) == fills
    assert resolved.fill_free_rows == fills
    assert resolved.demote_threshold == (0.0 if fills else resolved.threshold / 2)
    # What is set stays.
    forced = dataclasses.replace(config, fill_free_rows=not fills).resolved(CRITEO_LIKE)
    assert forced.fill_free_rows == (not fills)


def test_threshold_regimes():
    assert budget.planned_threshold(100_000) == 2.0  # large hot tables reach into the tail
    assert budget.planned_threshold(4000) == 10.0
    assert budget.planned_threshold(400) == 10.0
    assert budget.planned_threshold(40) == 40.0  # a half-life of 12,800 lookups


@pytest.mark.parametrize(
    "ratio, medium_share, vocabulary, expected",
    [
        pytest.param(100, None, CRITEO_LIKE, False, id="planner_below_1000x"),
        pytest.param(1000, None, CRITEO_LIKE, True, id="planner_from_1000x"),
        pytest.param(100, 0.3, CRITEO_LIKE, True, id="asked_for_below_1000x"),
        # 10000x: 43 KB for 26 features; the hashed 10% cannot hold two rows per feature.
        pytest.param(10000, None, CRITEO_LIKE, False, id="no_room"),
        pytest.param(10000, 0.3, CRITEO_LIKE, False, id="no_room_even_asked"),
    ],
)
def test_the_planner_decides_the_medium_level(ratio, medium_share, vocabulary, expected):
    config = CafeConfig(
        embedding_dim=16, compression_ratio=ratio, multi_level=True, medium_share=medium_share
    )
    resolved = config.resolved(vocabulary)
    assert resolved.multi_level is expected
    assert resolved.medium_share == (0.3 if medium_share is None else medium_share)
    layout = resolved.plan(vocabulary)
    assert (sum(layout.medium_rows) > 0) is expected
    if not expected:  # exactly the single-level layout
        single = CafeConfig(embedding_dim=16, compression_ratio=ratio).plan(vocabulary)
        assert layout == single


@pytest.mark.parametrize(
    "ratio, share, vocabulary, expected",
    [
        # Per-feature tables would hold 5.2 rows per feature at 1000x, 1 at 10000x.
        pytest.param(1000, None, CRITEO_LIKE, False, id="planner_5_rows_per_feature"),
        pytest.param(10000, None, CRITEO_LIKE, True, id="planner_1_row_per_feature"),
        pytest.param(10000, None, [676_000], False, id="one_feature"),
        pytest.param(10000, False, CRITEO_LIKE, False, id="per_feature_asked"),
        pytest.param(10, True, CRITEO_LIKE, True, id="shared_asked"),
        # 100x of a vocabulary of small features: 26 rows of 16 floats leave no hot row.
        pytest.param(100, None, [50] * 26, True, id="no_room_per_feature"),
    ],
)
@pytest.mark.parametrize("multi_level", [False, True])
def test_the_planner_decides_whether_features_share_hashed_tables(
    ratio, share, vocabulary, expected, multi_level
):
    config = CafeConfig(
        embedding_dim=16,
        compression_ratio=ratio,
        share_hashed_tables=share,
        multi_level=multi_level,
        medium_share=0.3 if multi_level else None,
    )
    resolved = config.resolved(vocabulary)
    assert resolved.share_hashed_tables is expected
    layout = resolved.plan(vocabulary)
    assert layout.shared_hashed_tables is expected
    assert layout == config.plan(vocabulary)
    levels = [layout.hashed_rows] + ([layout.medium_rows] if resolved.multi_level else [])
    for rows in levels:
        if expected:  # one table per level, every feature's rows are all of it
            assert len(set(rows)) == 1
        else:
            assert sum(rows) >= len(vocabulary)
