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


def _cafe_minimum_bytes(
    sizes, dim, multi_level, bookkeeping_bytes=0, sketch_bytes=16.0, shared=False
):
    """From the layout's definition: the sketch's scalars, the bookkeeping, one hot row with
    its slots (its own and two spare ones, or a bucket of 16 without `sketch_bytes`), and
    one hashed row per feature and level (one per level when `shared`)."""
    levels = 2 if multi_level else 1
    slots = 16 if sketch_bytes is None else 3
    return (
        sketch_config.SCALAR_BYTES
        + bookkeeping_bytes
        + 4 * dim
        + slots * sketch_config.SLOT_BYTES
        + levels * (1 if shared else len(sizes)) * 4 * dim
    )


SKETCH_SIZINGS = [None, 16.0, 24.0]


@pytest.mark.parametrize("ratio", [2, 10, 100, 1000, 10000])
@pytest.mark.parametrize("vocab", sorted(VOCABS))
@pytest.mark.parametrize("multi_level", [False, True])
@pytest.mark.parametrize("dim", [8, 16, 64])
@pytest.mark.parametrize("sketch_bytes", SKETCH_SIZINGS)
def test_cafe_layout_fits_the_budget(ratio, vocab, multi_level, dim, sketch_bytes):
    sizes = VOCABS[vocab]
    budget_bytes = budget.resolve_budget(sizes, dim, compression_ratio=ratio)
    per_feature_minimum = _cafe_minimum_bytes(sizes, dim, multi_level, 32, sketch_bytes)
    plan = functools.partial(
        budget.plan_cafe_layout,
        sizes,
        dim,
        budget_bytes,
        hot_share=0.8,
        multi_level=multi_level,
        bookkeeping_bytes=32,
        sketch_bytes_per_hot_row=sketch_bytes,
    )
    # Features share each level's table where a row per feature and level does not fit,
    # or where the per-feature tables would average fewer than 2 first-level rows.
    shared = len(sizes) > 1 and (
        budget_bytes < per_feature_minimum
        or sum(plan(share_hashed_tables=False).hashed_rows) < 2 * len(sizes)
    )
    minimum = _cafe_minimum_bytes(sizes, dim, multi_level, 32, sketch_bytes, shared)
    if budget_bytes < minimum:  # refused exactly below the minimum, naming it
        with pytest.raises(budget.BudgetTooSmallError, match=f"needs at least {minimum:,} bytes"):
            plan()
        return
    layout = plan()
    assert layout.shared_hashed_tables == shared
    assert layout.bytes["total"] <= budget_bytes
    assert layout.hot_rows >= 1 and all(r >= 1 for r in layout.hashed_rows)
    assert layout.bytes["hashed_tables"] == layout.hashed_table_rows * 4 * dim
    assert layout.bytes["medium_tables"] == layout.medium_table_rows * 4 * dim
    hot_part = layout.bytes["hot_table"] + layout.bytes["sketch"] + layout.bytes["bookkeeping"]
    # The hot part takes its share (within one row, or less when minimum hashed rows need it).
    per_hot_row = 4 * dim + (16 * 12 if sketch_bytes is None else sketch_bytes)
    assert hot_part <= 0.8 * budget_bytes + per_hot_row
    assert layout.num_buckets * layout.slots_per_bucket >= layout.hot_rows
    if sketch_bytes is not None and layout.hot_rows >= 19:
        assert (layout.bytes["sketch"] + layout.bytes["bookkeeping"]) / layout.hot_rows <= (
            sketch_bytes
        )
    assert (sum(layout.medium_rows) > 0) == multi_level


@pytest.mark.parametrize("sketch_bytes", [16.0, 24.0, 48.0])
@pytest.mark.parametrize("other_bytes", [0, 52])
def test_sketch_shape_holds_every_hot_row_within_its_bytes(sketch_bytes, other_bytes):
    """Buckets of at least 16 slots, at least one slot per hot row (two more in a sketch of
    one bucket), and at most `sketch_bytes` per hot row with the other bytes wherever that
    buys them."""
    for hot_rows in list(range(1, 300)) + [431, 2703, 19_310, 10**6 + 7]:
        buckets, slots = budget.sketch_shape(hot_rows, 16, sketch_bytes, other_bytes)
        held = buckets * slots * sketch_config.SLOT_BYTES + other_bytes
        assert buckets * slots >= hot_rows
        if buckets == 1:  # with every row hot, two slots still admit keys
            assert slots >= hot_rows + 2
        affordable = (sketch_bytes * hot_rows - other_bytes) // sketch_config.SLOT_BYTES
        if affordable >= hot_rows + (2 if affordable < 32 else 0):
            assert held <= sketch_bytes * hot_rows
            # Not more than one bucket's remainder short of what the bytes buy.
            assert held > sketch_bytes * hot_rows - sketch_config.SLOT_BYTES * (slots + 1)
        assert slots >= min(16, hot_rows) and (buckets == 1 or slots < 32)
    assert budget.sketch_shape(308, 16, None) == (308, 16)


@pytest.mark.parametrize("sketch_bytes", SKETCH_SIZINGS)
@pytest.mark.parametrize("multi_level", [False, True])
@pytest.mark.parametrize("sizes", [[100, 100, 100], [10**6], [3, 2, 10**5]])
def test_cafe_layout_at_exactly_its_minimum_fits_and_one_byte_less_is_refused(
    sizes, multi_level, sketch_bytes
):
    dim = 16
    minimum = _cafe_minimum_bytes(sizes, dim, multi_level, sketch_bytes=sketch_bytes)
    plan = functools.partial(
        budget.plan_cafe_layout,
        sizes,
        dim,
        hot_share=0.5,
        multi_level=multi_level,
        sketch_bytes_per_hot_row=sketch_bytes,
    )
    layout = plan(minimum, share_hashed_tables=False)
    assert layout.bytes["total"] == minimum and layout.hot_rows == 1
    assert list(layout.hashed_rows) == [1] * len(sizes)
    assert list(layout.medium_rows) == [int(multi_level)] * len(sizes)
    assert not layout.shared_hashed_tables
    with pytest.raises(budget.BudgetTooSmallError, match=f"needs at least {minimum:,} bytes"):
        plan(minimum - 1, share_hashed_tables=False)
    # Below it, the features share one table per level, down to that layout's minimum.
    shared_minimum = _cafe_minimum_bytes(
        sizes, dim, multi_level, sketch_bytes=sketch_bytes, shared=True
    )
    layout = plan(shared_minimum)
    assert layout.shared_hashed_tables == (len(sizes) > 1) and layout.hot_rows == 1
    assert layout.bytes["total"] == shared_minimum and layout.hashed_table_rows == 1
    assert layout.medium_table_rows == int(multi_level)
    assert layout.hashed_offsets == (0,) * len(sizes)
    with pytest.raises(budget.BudgetTooSmallError, match=f"needs at least {shared_minimum:,}"):
        plan(shared_minimum - 1)


@pytest.mark.parametrize("multi_level", [False, True])
@pytest.mark.parametrize("share_hashed_tables", [False, True])
def test_hashed_tables_are_packed_or_shared(share_hashed_tables, multi_level):
    """Per-feature tables lie back to back; a shared one starts every feature at row 0."""
    sizes, dim = [40_000, 2_000, 7], 16
    plan = functools.partial(
        budget.plan_cafe_layout, sizes, dim, 100_000, hot_share=0.7, multi_level=multi_level
    )
    layout = plan(share_hashed_tables=share_hashed_tables)
    assert layout.shared_hashed_tables == share_hashed_tables
    levels = [(layout.hashed_rows, layout.hashed_offsets, layout.hashed_table_rows)]
    if multi_level:
        levels.append((layout.medium_rows, layout.medium_offsets, layout.medium_table_rows))
    for rows, offsets, table_rows in levels:
        if share_hashed_tables:
            assert len(set(rows)) == 1 and offsets == (0, 0, 0) and table_rows == rows[0]
        else:
            assert offsets == (0, rows[0], rows[0] + rows[1]) and table_rows == sum(rows)
    assert layout.bytes["hashed_tables"] == layout.hashed_table_rows * 4 * dim
    assert layout.bytes["medium_tables"] == layout.medium_table_rows * 4 * dim
    # The shared tables hold what the per-feature tables would, give or take a row each.
    other = plan(share_hashed_tables=not share_hashed_tables)
    assert abs(other.hashed_table_rows - layout.hashed_table_rows) <= 2 * len(sizes)
    assert abs(other.medium_table_rows - layout.medium_table_rows) <= len(sizes)
    assert other.hot_rows == layout.hot_rows


def test_budget_too_small_names_the_minimum():
    with pytest.raises(budget.BudgetTooSmallError, match=r"needs at least [\d,]+ bytes"):
        budget.plan_cafe_layout([100, 100, 100], 16, 150, hot_share=0.5)


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


def test_a_budget_buys_more_hot_rows_at_16_bytes_per_hot_row():
    """16 bytes per hot row against one bucket of four 12-byte slots (48 bytes)."""
    dim, budget_bytes = 16, 200_000
    plan = functools.partial(budget.plan_cafe_layout, [10**6], dim, budget_bytes, hot_share=0.8)
    default, paper = plan(), plan(slots_per_bucket=4, sketch_bytes_per_hot_row=None)
    fixed = sketch_config.SCALAR_BYTES
    assert paper.hot_rows == int((0.8 * budget_bytes - fixed) // (4 * dim + 4 * 12))
    assert default.hot_rows == int((0.8 * budget_bytes - fixed) // (4 * dim + 16))
    assert default.hot_rows / paper.hot_rows > 1.39  # 112 / 80 bytes per hot row
    assert default.bytes["sketch"] <= 16 * default.hot_rows


@pytest.mark.parametrize("bad", [11.9, float("nan"), float("inf"), 0])
def test_sketch_bytes_below_one_slot_per_hot_row_are_refused(bad):
    with pytest.raises(ValueError, match="sketch_bytes_per_hot_row"):
        budget.plan_cafe_layout([10**6], 16, 200_000, 0.8, sketch_bytes_per_hot_row=bad)


def test_hashed_tables_must_stay_below_2_to_the_32_rows():
    """CAFE hashes 32-bit fingerprints into its hashed tables."""
    with pytest.raises(ValueError, match=r"fewer than 2\*\*32 rows"):
        budget.plan_cafe_layout([2**34], 1, 8 * 2**32, hot_share=0.01)
