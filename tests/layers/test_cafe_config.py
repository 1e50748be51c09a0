"""CafeConfig checks every field when it is built and reports all problems at once."""

import dataclasses

import pytest

from cafe_tf import CafeConfig

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
            dict(medium_share=1.0), "`medium_share` must be in \\(0, 1\\)", id="medium_share_1"
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
