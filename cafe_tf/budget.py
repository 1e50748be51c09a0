"""Memory budgets: the full-table size, compression ratios and CAFE's layout.

A budget is in bytes of embedding state (tables, sketch and bookkeeping;
optimizer slots are not counted, as in the paper). Compression ratio =
full table bytes / budget bytes (docs/sketch.md; CAFE paper, section on the memory budget).
"""

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence

from cafe_tf.sketch import config as sketch_config

FLOAT_BYTES = 4
# A CAFE layer's counters (promotions, demotions, hot lookups, lookups, exchanged pairs):
# five int64, counted with what finds and holds the hot set.
CAFE_COUNTER_BYTES = 5 * 8
# CAFE hashes 32-bit key fingerprints into its hashed tables: fewer rows than this each.
MAX_FINGERPRINT_TABLE_ROWS = 2**32


class BudgetTooSmallError(ValueError):
    """The budget cannot hold the minimum layout of an embedding kind."""


# Paper settings per compression ratio (Criteo Kaggle): threshold k and hash share h.
PAPER_SETTINGS = {
    2: (10.0, 0.7),
    5: (10.0, 0.5),
    10: (20.0, 0.5),
    20: (30.0, 0.5),
    50: (50.0, 0.3),
    100: (100.0, 0.3),
    200: (200.0, 0.2),
    500: (500.0, 0.2),
    1000: (500.0, 0.2),
    2000: (500.0, 0.1),
    5000: (500.0, 0.1),
    10000: (500.0, 0.1),
}


def paper_settings(compression_ratio: float) -> tuple[float, float]:
    """(threshold k, hash share h) of the paper for the nearest tabulated ratio at or below."""
    if compression_ratio < 1:
        raise ValueError(f"compression_ratio must be >= 1, got {compression_ratio}")
    ratios = [r for r in sorted(PAPER_SETTINGS) if r <= compression_ratio] or [2]
    return PAPER_SETTINGS[ratios[-1]]


# cafe_tf's own defaults (docs/sketch.md, "Defaults per ratio"), measured on the
# synthetic Criteo, Avazu and KDD12 shapes of benchmarks/quality.py:
# - the hot part takes at least this share of the budget (the paper's 1 - h where larger);
MIN_HOT_SHARE = 0.7
# - the threshold k: THRESHOLD_MASS / hot_rows within [MIN_THRESHOLD, MAX_THRESHOLD] (a
#   large hot table reaches into the tail, whose ids a high threshold never admits), and
#   more for small hot tables, so that a half-life of the scores (8 * hot_rows * k of
#   importance, about that many lookups) spans at least HALF_LIFE_FLOOR lookups;
THRESHOLD_MASS = 40_000
MIN_THRESHOLD = 2.0
MAX_THRESHOLD = 10.0
HALF_LIFE_FLOOR = 12_800
# - free hot rows are filled below k where the sketch has at least MIN_SPARE_SLOTS non-hot
#   slots per bucket once every row is hot (fewer, and filling leaves buckets all hot: they
#   stop admitting keys, and the hot set stops following drift);
MIN_SPARE_SLOTS = 2
# - with filled rows and swaps a hot feature keeps its row until displaced, by any key at k
#   once below this share of k, else only by the swap margin; otherwise hot features are
#   demoted below this share of k (hysteresis against churn either way);
DEMOTE_SHARE = 0.5
# - multi-level hashing plans a medium level, of this share of the hashed rows, from
#   MEDIUM_LEVEL_MIN_RATIO up (below it, the hot rows serve nearly every lookup a medium
#   row would help, and the medium tables cost the cold features rows).
MEDIUM_SHARE = 0.3
MEDIUM_LEVEL_MIN_RATIO = 1000
# - where per-feature tables would hold fewer first-level rows than this per feature on
#   average (most features one row, which tells none of their cold ids apart), each
#   level's hashed rows form one table shared by all features instead.
SHARED_TABLES_BELOW_ROWS_PER_FEATURE = 2


def planned_hot_share(compression_ratio: float) -> float:
    """The share of the budget CAFE's hot part takes by default at `compression_ratio`."""
    return max(MIN_HOT_SHARE, 1.0 - paper_settings(max(1.0, compression_ratio))[1])


def planned_fill_free_rows(num_buckets: int, slots_per_bucket: int, hot_rows: int) -> bool:
    """Whether a sketch of this shape fills free hot rows by default: when, with every
    hot row taken, its buckets keep MIN_SPARE_SLOTS non-hot slots each on average."""
    return num_buckets * (slots_per_bucket - MIN_SPARE_SLOTS) >= hot_rows


def keeps_hot_rows(fill_free_rows: bool, swaps: bool) -> bool:
    """Whether hot features keep their rows until displaced by default: where freed rows
    are refilled at once and stronger features displace weaker ones, demotion by decay
    alone would only churn."""
    return fill_free_rows and swaps


def planned_demote_threshold(threshold: float, fill_free_rows: bool, swaps: bool) -> float:
    """The default demotion threshold: 0 where hot features keep their rows until
    displaced (`keeps_hot_rows`), else DEMOTE_SHARE * k."""
    return 0.0 if keeps_hot_rows(fill_free_rows, swaps) else DEMOTE_SHARE * threshold


def planned_yield_threshold(threshold: float, fill_free_rows: bool, swaps: bool) -> float:
    """The default yield threshold: where hot features keep their rows until displaced,
    those below DEMOTE_SHARE * k yield to any candidate at k (as decay would have demoted
    them); else 0 (every swap needs the margin)."""
    return DEMOTE_SHARE * threshold if keeps_hot_rows(fill_free_rows, swaps) else 0.0


def planned_threshold(hot_rows: int, half_life: float = 8.0) -> float:
    """The default threshold k of a sketch with `hot_rows` hot rows: THRESHOLD_MASS /
    hot_rows within [MIN_THRESHOLD, MAX_THRESHOLD], or more where a half-life
    (`half_life` * hot_rows * k) would span fewer than HALF_LIFE_FLOOR lookups."""
    k = min(MAX_THRESHOLD, max(MIN_THRESHOLD, THRESHOLD_MASS / hot_rows))
    return max(k, HALF_LIFE_FLOOR / (half_life * hot_rows))


def medium_level_fits(
    vocabulary_sizes: Sequence[int], embedding_dim: int, budget_bytes: int, hot_share: float
) -> bool:
    """Whether the budget's hashed share holds a medium-level row per feature besides a
    hashed one. Where it does not, a medium level would take its rows from the hot part,
    which serves far more lookups."""
    row_bytes = embedding_dim * FLOAT_BYTES
    return budget_bytes * (1 - hot_share) >= 2 * len(vocabulary_sizes) * row_bytes


def full_table_bytes(vocabulary_sizes: Sequence[int], embedding_dim: int) -> int:
    """Bytes of uncompressed tables: one float32 row of `embedding_dim` per id."""
    return int(sum(vocabulary_sizes)) * embedding_dim * FLOAT_BYTES


def resolve_budget(
    vocabulary_sizes: Sequence[int],
    embedding_dim: int,
    compression_ratio: float | None = None,
    budget_bytes: int | None = None,
) -> int:
    """The budget in bytes from exactly one of a compression ratio or a byte count."""
    if (compression_ratio is None) == (budget_bytes is None):
        raise ValueError(
            "give exactly one of compression_ratio and budget_bytes, got "
            f"compression_ratio={compression_ratio}, budget_bytes={budget_bytes}"
        )
    if any(v <= 0 for v in vocabulary_sizes):
        raise ValueError(f"vocabulary sizes must be > 0, got {list(vocabulary_sizes)}")
    if embedding_dim <= 0:
        raise ValueError(f"embedding_dim must be > 0, got {embedding_dim}")
    if budget_bytes is not None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be > 0, got {budget_bytes}")
        return int(budget_bytes)
    if not compression_ratio >= 1:
        raise ValueError(f"compression_ratio must be >= 1, got {compression_ratio}")
    budget = int(full_table_bytes(vocabulary_sizes, embedding_dim) // compression_ratio)
    if budget <= 0:
        raise BudgetTooSmallError(
            f"compression_ratio={compression_ratio} leaves a budget of "
            "0 bytes: too small for any layout"
        )
    return budget


def split_rows(
    total_rows: int,
    vocabulary_sizes: Sequence[int],
    minimum_rows: Sequence[int] | None = None,
    maximum_rows: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Rows per field: its minimum (default 1) plus a share of the spare rows in
    proportion to its vocabulary, capped at its maximum (default: its
    vocabulary); never more than `total_rows` in all.

    Raises:
      ValueError: when `total_rows` is below the sum of the minimums.
    """
    minimum_rows = [1] * len(vocabulary_sizes) if minimum_rows is None else list(minimum_rows)
    maximum_rows = list(vocabulary_sizes) if maximum_rows is None else list(maximum_rows)
    spare = total_rows - sum(minimum_rows)
    if spare < 0:
        raise ValueError(
            f"{total_rows} rows cannot give each of {len(vocabulary_sizes)} fields "
            f"its minimum ({sum(minimum_rows)} rows in all)"
        )
    vocabulary_total = sum(vocabulary_sizes)
    return tuple(
        min(high, low + spare * size // vocabulary_total)
        for size, low, high in zip(vocabulary_sizes, minimum_rows, maximum_rows)
    )


@dataclasses.dataclass(frozen=True)
class CafeLayout:
    """How a CAFE layer spends its budget.

    Attributes:
      hot_rows: rows of the hot table.
      num_buckets: W, buckets of the HotSketch.
      slots_per_bucket: c, slots per bucket.
      hashed_rows: rows of each feature's hashed table (with `shared_hashed_tables`,
        the one shared table's rows, repeated for every feature).
      medium_rows: rows of each feature's second (medium-level) table, likewise;
        zeros when multi-level hashing is off.
      bytes: bytes held by part ("hot_table", "sketch", "hashed_tables",
        "medium_tables", "bookkeeping") and "total".
      shared_hashed_tables: whether all features hash into one table per level
        instead of a table each (`plan_cafe_layout`).
    """

    hot_rows: int
    num_buckets: int
    slots_per_bucket: int
    hashed_rows: tuple[int, ...]
    medium_rows: tuple[int, ...]
    bytes: dict
    shared_hashed_tables: bool = False

    @property
    def hashed_table_rows(self) -> int:
        """Rows of the packed hashed tables."""
        return self._table_rows(self.hashed_rows)

    @property
    def medium_table_rows(self) -> int:
        """Rows of the packed medium tables."""
        return self._table_rows(self.medium_rows)

    @property
    def hashed_offsets(self) -> tuple[int, ...]:
        """Each feature's first row in the packed hashed tables."""
        return self._offsets(self.hashed_rows)

    @property
    def medium_offsets(self) -> tuple[int, ...]:
        """Each feature's first row in the packed medium tables."""
        return self._offsets(self.medium_rows)

    def _table_rows(self, rows: Sequence[int]) -> int:
        return _packed_table_rows(rows, self.shared_hashed_tables)

    def _offsets(self, rows: Sequence[int]) -> tuple[int, ...]:
        if self.shared_hashed_tables:
            return tuple(0 for _ in rows)
        return tuple(itertools.accumulate(rows[:-1], initial=0))


def _packed_table_rows(rows: Sequence[int], shared: bool) -> int:
    """Rows of one level's packed tables, of `rows` per feature (one table if `shared`)."""
    return rows[0] if shared else sum(rows)


def sketch_shape(
    hot_rows: int,
    slots_per_bucket: int,
    sketch_bytes_per_hot_row: float | None,
    other_bytes: int = 0,
) -> tuple[int, int]:
    """(W buckets, c slots per bucket) of the HotSketch of `hot_rows` hot rows.

    With `sketch_bytes_per_hot_row`, the slots and `other_bytes` (the sketch's
    scalars and the layer's bookkeeping) take at most that many bytes per hot row,
    in buckets of at least `slots_per_bucket` slots (fewer, larger buckets when the
    slots do not divide evenly), never fewer slots than hot rows, and in a sketch of
    one bucket MIN_SPARE_SLOTS slots beyond them (which takes more bytes where the
    hot rows are few). Without it, one bucket of `slots_per_bucket` slots per hot
    row (the paper's sizing).
    """
    if sketch_bytes_per_hot_row is None:
        return hot_rows, slots_per_bucket
    slots = max(
        hot_rows,
        int((sketch_bytes_per_hot_row * hot_rows - other_bytes) // sketch_config.SLOT_BYTES),
    )
    buckets = max(1, slots // slots_per_bucket)
    if buckets == 1:
        # A bucket whose slots are all hot admits no key: with every row hot, the hot
        # set of a one-bucket sketch could never change again.
        return 1, max(slots, hot_rows + MIN_SPARE_SLOTS)
    return buckets, max(slots // buckets, -(-hot_rows // buckets))


def plan_cafe_layout(
    vocabulary_sizes: Sequence[int],
    embedding_dim: int,
    budget_bytes: int,
    hot_share: float,
    slots_per_bucket: int = 16,
    multi_level: bool = False,
    medium_share: float = 0.3,
    bookkeeping_bytes: int = 0,
    sketch_bytes_per_hot_row: float | None = 16.0,
    share_hashed_tables: bool | None = None,
) -> CafeLayout:
    """Sizes CAFE's tables and sketch to fit `budget_bytes` (docs/sketch.md).

    The hot part gets `hot_share` of the budget and pays for what finds and holds
    the hot set: each hot row costs its embedding plus `sketch_bytes_per_hot_row`
    bytes of HotSketch slots, scalars and bookkeeping (`sketch_shape`; None: one
    bucket of `slots_per_bucket` 12-byte slots per hot row). The rest goes to
    hashed rows; with `multi_level`, `medium_share` of those rows form the
    medium level's tables. With `share_hashed_tables`, each level is one table
    that every feature hashes into; without, each feature has a table of its own
    per level, of rows in proportion to its vocabulary (>= 1 row each). None:
    shared for more than one feature where per-feature tables would not fit, or
    would hold fewer than SHARED_TABLES_BELOW_ROWS_PER_FEATURE first-level rows per
    feature on average.

    Raises:
      ValueError: when the budget cannot hold one hot row and the minimum hashed
        rows (one per table), naming the minimum; or when a hashed table would
        need 2**32 rows or more (CAFE hashes 32-bit fingerprints into them).
    """
    plan = functools.partial(
        _plan_cafe_layout,
        vocabulary_sizes,
        embedding_dim,
        budget_bytes,
        hot_share,
        slots_per_bucket=slots_per_bucket,
        multi_level=multi_level,
        medium_share=medium_share,
        bookkeeping_bytes=bookkeeping_bytes,
        sketch_bytes_per_hot_row=sketch_bytes_per_hot_row,
    )
    if share_hashed_tables is not None:
        return plan(share_hashed_tables=share_hashed_tables)
    fields = len(vocabulary_sizes)
    try:
        per_feature = plan(share_hashed_tables=False)
    except BudgetTooSmallError:
        if fields == 1:
            raise
        return plan(share_hashed_tables=True)
    if fields > 1 and sum(per_feature.hashed_rows) < SHARED_TABLES_BELOW_ROWS_PER_FEATURE * fields:
        return plan(share_hashed_tables=True)
    return per_feature


def _plan_cafe_layout(
    vocabulary_sizes: Sequence[int],
    embedding_dim: int,
    budget_bytes: int,
    hot_share: float,
    *,
    slots_per_bucket: int,
    multi_level: bool,
    medium_share: float,
    bookkeeping_bytes: int,
    sketch_bytes_per_hot_row: float | None,
    share_hashed_tables: bool,
) -> CafeLayout:
    """`plan_cafe_layout` with per-feature or shared tables, as `share_hashed_tables` says."""
    if not 0 < hot_share < 1:
        raise ValueError(f"hot_share must be in (0, 1), got {hot_share}")
    if multi_level and not 0 < medium_share < 1:
        raise ValueError(f"medium_share must be in (0, 1), got {medium_share}")
    if sketch_bytes_per_hot_row is not None and not (
        math.isfinite(sketch_bytes_per_hot_row)
        and sketch_bytes_per_hot_row >= sketch_config.SLOT_BYTES
    ):
        raise ValueError(
            f"sketch_bytes_per_hot_row must be None or finite and >= {sketch_config.SLOT_BYTES} "
            f"(one slot per hot row), got {sketch_bytes_per_hot_row}"
        )
    row_bytes = embedding_dim * FLOAT_BYTES
    fixed = sketch_config.SCALAR_BYTES + bookkeeping_bytes

    def hot_bytes(rows):  # the hot table and its sketch's slots
        buckets, slots = sketch_shape(rows, slots_per_bucket, sketch_bytes_per_hot_row, fixed)
        return rows * row_bytes + buckets * slots * sketch_config.SLOT_BYTES

    levels = 2 if multi_level else 1
    fields = len(vocabulary_sizes)
    tables = levels if share_hashed_tables else levels * fields
    minimum = fixed + hot_bytes(1) + tables * row_bytes
    if budget_bytes < minimum:
        least = (
            f"{levels} shared hashed row(s)"
            if share_hashed_tables
            else f"{levels} hashed row(s) per feature"
        )
        raise BudgetTooSmallError(
            f"budget of {budget_bytes:,} bytes is too small for a CAFE layout of "
            f"{fields} features with embedding_dim={embedding_dim}: it needs at "
            f"least {minimum:,} bytes (one hot row with its sketch slots and {least})"
        )

    def level_rows(total):  # rows per feature of one level's tables
        if share_hashed_tables:
            return tuple(max(1, total) for _ in vocabulary_sizes)
        return split_rows(max(fields, total), vocabulary_sizes)

    def table_rows(rows):  # rows of one level's packed tables
        return _packed_table_rows(rows, share_hashed_tables)

    per_hot_row = row_bytes + (
        slots_per_bucket * sketch_config.SLOT_BYTES
        if sketch_bytes_per_hot_row is None
        else sketch_bytes_per_hot_row
    )
    hot_rows = max(1, int((budget_bytes * hot_share - fixed) // per_hot_row))
    while True:
        hashed_total = int((budget_bytes - fixed - hot_bytes(hot_rows)) // row_bytes)
        medium_rows = tuple(0 for _ in vocabulary_sizes)
        if multi_level:
            medium_rows = level_rows(int(hashed_total * medium_share))
            hashed_total -= table_rows(medium_rows)
        hashed_rows = level_rows(hashed_total)
        overflow = (
            fixed
            + hot_bytes(hot_rows)
            + (table_rows(hashed_rows) + table_rows(medium_rows)) * row_bytes
            - budget_bytes
        )
        if overflow <= 0:
            break
        # The minimum rows per table overshot: give up hot rows instead.
        hot_rows -= max(1, math.ceil(overflow / per_hot_row))
        if hot_rows < 1:
            raise BudgetTooSmallError(
                f"budget of {budget_bytes:,} bytes cannot hold one hot row besides the minimum "
                f"hashed rows of {len(vocabulary_sizes)} features"
            )
    if max(hashed_rows + medium_rows) >= MAX_FINGERPRINT_TABLE_ROWS:
        raise ValueError(
            f"a hashed table of {max(hashed_rows + medium_rows):,} rows: CAFE's hashed rows are "
            f"hashed from 32-bit key fingerprints, so each table must have fewer than 2**32 rows"
        )
    num_buckets, slots = sketch_shape(hot_rows, slots_per_bucket, sketch_bytes_per_hot_row, fixed)
    parts = {
        "hot_table": hot_rows * row_bytes,
        "sketch": sketch_config.SketchConfig(
            num_buckets=num_buckets, hot_rows=hot_rows, slots_per_bucket=slots
        ).memory_bytes(),
        "hashed_tables": table_rows(hashed_rows) * row_bytes,
        "medium_tables": table_rows(medium_rows) * row_bytes,
        "bookkeeping": bookkeeping_bytes,
    }
    parts["total"] = sum(parts.values())
    return CafeLayout(
        hot_rows=hot_rows,
        num_buckets=num_buckets,
        slots_per_bucket=slots,
        hashed_rows=hashed_rows,
        medium_rows=medium_rows,
        bytes=parts,
        shared_hashed_tables=share_hashed_tables,
    )
