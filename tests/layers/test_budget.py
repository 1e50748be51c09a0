"""Budget arithmetic: ratios, row splits and CAFE's layout (docs/user_guide.md, "Memory budget")."""

import functools

import pytest

from cafe_tf import budget
from cafe_tf.sketch import config as sketch_config

VOCABS = {
    "criteo_like": [1460, 583, 10_131_227, 2_202_608, 305, 24, 12_517, 633, 3],
    "one_field": [50_000],
    "tiny_fields": [3, 2, 1_000_000],
}


@pytest.mark.parametrize(
    "ratio, expected",
    [
        (2, (10.0, 0.7)),
        (7, (10.0, 0.5)),
        (100, (100.0, 0.3)),
        (1000, (500.0, 0.2)),
        (10**6, (500.0, 0.1)),
        (1.5, (10.0, 0.7)),
    ],
)
def test_paper_settings(ratio, expected):
    assert budget.paper_settings(ratio) == expected


def test_resolve_budget():
    assert budget.full_table_bytes([10, 20], 4) == 30 * 4 * 4
    assert budget.resolve_budget([10, 20], 4, compression_ratio=4) == 120
    assert budget.resolve_budget([10, 20], 4, budget_bytes=77) == 77
    for kwargs in (
        {},
        {"compression_ratio": 2, "budget_bytes": 5},
        {"compression_ratio": 0.5},
        {"budget_bytes": 0},
        {"compression_ratio": 1e9},
    ):
        with pytest.raises(ValueError):
            budget.resolve_budget([10, 20], 4, **kwargs)


@pytest.mark.parametrize("total", [3, 10, 1000, 10**7])
@pytest.mark.parametrize("vocab", sorted(VOCABS))
def test_split_rows_stays_within_total(total, vocab):
    sizes = VOCABS[vocab]
    if total < len(sizes):
        with pytest.raises(ValueError, match="minimum"):
            budget.split_rows(total, sizes)
        return
    rows = budget.split_rows(total, sizes)
    assert sum(rows) <= total
    assert all(1 <= r <= v for r, v in zip(rows, sizes))
    if total >= sum(sizes):  # enough rows for everything: every field gets all it can use
        assert list(rows) == sizes


def _cafe_minimum_bytes(sizes, dim, multi_level, bookkeeping_bytes=0, slots_per_bucket=4):
    """From the layout's definition: the sketch's scalars, the bookkeeping, one hot row with
    its bucket, and one hashed row per feature and level."""
    levels = 2 if multi_level else 1
    return (
        sketch_config.SCALAR_BYTES
        + bookkeeping_bytes
        + 4 * dim
        + slots_per_bucket * sketch_config.SLOT_BYTES
        + levels * len(sizes) * 4 * dim
    )


@pytest.mark.parametrize("ratio", [2, 10, 100, 1000, 10000])
@pytest.mark.parametrize("vocab", sorted(VOCABS))
@pytest.mark.parametrize("multi_level", [False, True])
@pytest.mark.parametrize("dim", [8, 16, 64])
def test_cafe_layout_fits_the_budget(ratio, vocab, multi_level, dim):
    sizes = VOCABS[vocab]
    budget_bytes = budget.resolve_budget(sizes, dim, compression_ratio=ratio)
    minimum = _cafe_minimum_bytes(sizes, dim, multi_level, bookkeeping_bytes=32)
    plan = functools.partial(
        budget.plan_cafe_layout,
        sizes,
        dim,
        budget_bytes,
        hot_share=0.8,
        multi_level=multi_level,
        bookkeeping_bytes=32,
    )
    if budget_bytes < minimum:  # refused exactly below the minimum, naming it
        with pytest.raises(budget.BudgetTooSmallError, match=f"needs at least {minimum:,} bytes"):
            plan()
        return
    layout = plan()
    assert layout.bytes["total"] <= budget_bytes
    assert layout.hot_rows >= 1 and all(r >= 1 for r in layout.hashed_rows)
    per_hot_row = 4 * dim + 4 * sketch_config.SLOT_BYTES
    # The hot part takes its share (within one row, or less when minimum hashed rows need it).
    assert layout.hot_rows * per_hot_row <= 0.8 * budget_bytes
    assert (sum(layout.medium_rows) > 0) == multi_level


@pytest.mark.parametrize("multi_level", [False, True])
@pytest.mark.parametrize("sizes", [[100, 100, 100], [10**6], [3, 2, 10**5]])
def test_cafe_layout_at_exactly_its_minimum_fits_and_one_byte_less_is_refused(sizes, multi_level):
    dim = 16
    minimum = _cafe_minimum_bytes(sizes, dim, multi_level)
    layout = budget.plan_cafe_layout(sizes, dim, minimum, hot_share=0.5, multi_level=multi_level)
    assert layout.bytes["total"] == minimum and layout.hot_rows == 1
    assert list(layout.hashed_rows) == [1] * len(sizes)
    assert list(layout.medium_rows) == [int(multi_level)] * len(sizes)
    with pytest.raises(budget.BudgetTooSmallError, match=f"needs at least {minimum:,} bytes"):
        budget.plan_cafe_layout(sizes, dim, minimum - 1, hot_share=0.5, multi_level=multi_level)


def test_budget_too_small_names_the_minimum():
    with pytest.raises(budget.BudgetTooSmallError, match=r"needs at least [\d,]+ bytes"):
        budget.plan_cafe_layout([100, 100, 100], 16, 200, hot_share=0.5)


@pytest.mark.parametrize("buckets,slots,hot_rows", [(7, 3, 5), (8, 4, 5), (8, 1, 8)])
def test_sketch_memory_bytes_are_its_variables_bytes(buckets, slots, hot_rows):
    """The planner counts the real bytes: 12 per slot, nothing per hot row, the scalars."""
    from cafe_tf.sketch import HotSketch

    config = sketch_config.SketchConfig(
        num_buckets=buckets, hot_rows=hot_rows, slots_per_bucket=slots
    )
    sketch = HotSketch(config, backend="reference")
    held = sum(v.shape.num_elements() * v.dtype.size for v in sketch.state_variables)
    assert held == config.memory_bytes() == buckets * slots * 12 + 12


def test_a_budget_buys_more_hot_rows_than_with_16_byte_slots():
    """16-byte slots with 8 bytes per hot row (the former layout) against 12-byte slots."""
    dim, budget_bytes = 16, 200_000
    layout = budget.plan_cafe_layout([10**6], dim, budget_bytes, hot_share=0.8)
    fixed = sketch_config.SCALAR_BYTES
    with_16_byte_slots = int((0.8 * budget_bytes - fixed - 4) // (4 * dim + 4 * 16 + 8))
    assert layout.hot_rows == int((0.8 * budget_bytes - fixed) // (4 * dim + 4 * 12))
    assert layout.hot_rows > with_16_byte_slots
    assert layout.hot_rows / with_16_byte_slots > 1.19  # 136 / 112 bytes per hot row


def test_hashed_tables_must_stay_below_2_to_the_32_rows():
    """CAFE hashes 32-bit fingerprints into its hashed tables."""
    with pytest.raises(ValueError, match=r"fewer than 2\*\*32 rows"):
        budget.plan_cafe_layout([2**34], 1, 8 * 2**32, hot_share=0.01)
