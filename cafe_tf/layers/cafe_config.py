"""CafeConfig: everything that sizes and drives a CAFE embedding collection."""

import dataclasses
import math
import numbers

from cafe_tf import budget as budget_lib
from cafe_tf.sketch.config import DECAY_RULES, FLOAT32_MIN_NORMAL, REPLACEMENTS, SLOT_BYTES
from cafe_tf.sketch.hotsketch import BACKENDS

IMPORTANCES = ("gradient", "frequency")


@dataclasses.dataclass(frozen=True)
class CafeConfig:
    """Configuration of a CAFE embedding collection.

    CAFE (Zhang et al., "CAFE: Towards Compact, Adaptive, and Fast Embedding for
    Large-scale Recommendation Models", SIGMOD 2024) gives the features whose
    importance score reaches `threshold` exclusive rows of a hot table and lets
    all others share hashed rows, within one memory budget. docs/user_guide.md
    explains the fields; docs/semantics.md what the paper leaves open.

    Every field is checked when the config is built, and all problems are
    reported together in one `ValueError`.

    Args:
      embedding_dim: int. D, the width of every embedding.
      compression_ratio: float >= 1. Full table bytes / budget bytes. Give this
        or `budget_bytes`. Defaults to None.
      budget_bytes: int > 0. The budget in bytes (tables + sketch +
        bookkeeping). Defaults to None.
      hot_share: float in (0, 1). Share of the budget for the hot part (hot
        table and what finds its features). Defaults to None: the paper's 1 - h
        for the compression ratio, and at least 0.7 (`budget.planned_hot_share`).
      threshold: float. k, the score at which a feature is promoted. Defaults
        to None: 40,000 / hot rows within [2, 10], and more for hot tables below
        160 rows, so that a half-life spans at least 12,800 lookups
        (`budget.planned_threshold`).
      decay_rate: float in (0, 1]. rho, the factor applied to every score at
        each decay. Defaults to 0.99.
      slots_per_bucket: int > 0. c, keys tracked per sketch bucket: the
        smallest bucket when `sketch_bytes_per_hot_row` sizes the sketch (the
        slots that do not divide evenly make buckets larger). Defaults to 16.
      sketch_bytes_per_hot_row: float >= 12 or None. Bytes of everything that
        finds and holds the hot set (sketch slots and scalars, the layer's
        counters) per hot row: the sketch holds that many bytes / 12 slots per
        hot row. None: one bucket of `slots_per_bucket` slots per hot row (the
        paper's sizing). Defaults to 16.
      importance: "gradient" (the paper: L2 norm of the embedding's gradient,
        normalised per feature per batch) or "frequency" (1 per occurrence,
        times its weight). Defaults to "gradient".
      multi_level: bool. Give "medium" features (score >=
        medium_threshold_ratio * k) a second hashed row, summed with the
        first. With `medium_share` None, the planner gives it a medium level
        from 1000x up; never where the budget's hashed share cannot hold a
        medium row per feature besides a hashed one
        (`budget.medium_level_fits`). Elsewhere the layer is single-level
        (`layer.multi_level` is False). Defaults to False.
      medium_threshold_ratio: float in (0, 1]. k_medium / k for multi-level
        hashing. Defaults to 0.2.
      medium_share: float in (0, 1) or None. Share of the hashed rows that form
        the medium-level tables; set, it asks for a medium level at any ratio.
        Defaults to None: 0.3, from 1000x up (`multi_level`).
      share_hashed_tables: bool or None. True: every feature hashes its cold
        (and medium) keys into one table per level, so each feature's keys spread
        over all of the level's rows; False: each feature has tables of its own,
        of rows in proportion to its vocabulary (at least one each). Defaults to
        None: shared where per-feature tables would not fit besides one hot row,
        or would average fewer than 2 rows per feature (`budget.plan_cafe_layout`).
      decay_rule: "mass" (the paper) or "batches" (every `decay_period`
        batches). Defaults to "mass".
      decay_period: int. Batches between decays for decay_rule="batches"
        (must then be > 0). Defaults to 0.
      decay_half_life: float > 0 or None. With decay_rule "mass" (ignored with
        "batches"), scores halve per this many hot_rows * k of inserted
        importance (chosen by measurement, docs/sketch.md). None: the paper's
        decay (decay_rate per 10 W k). Defaults to 8.0.
      swap_margin: float >= 1 or None. Candidates (score >= k) beyond the free
        hot rows displace the weakest hot features they outscore by this
        factor, or, where free rows are filled, that are below k / 2. None:
        the paper (no swaps). Defaults to 1.5.
      replacement: "erode" (a miss in a full sketch bucket erodes its smallest
        score) or "inherit" (SpaceSaving, the paper). Defaults to "erode".
      second_sighting: bool. A feature that took a sketch slot over is
        promoted only once seen again; False: the paper. Defaults to True.
      fill_free_rows: bool or None. Hot rows that no feature >= k claims go to
        the strongest other features the sketch tracks (only features >= k
        displace hot ones), so no row sits idle; False: the paper (rows wait
        for k). Defaults to None: True where the sketch keeps at least 2
        non-hot slots per bucket with every row hot (the default 16 bytes per
        hot row in buckets of 16), else False.
      demote_threshold: float. Hot features whose decayed score falls below
        it are demoted; 0 or in [smallest normal float32, threshold]. Defaults
        to None: 0 when free rows are filled and swaps are on (a hot feature
        keeps its row until a stronger one displaces it), else k / 2
        (hysteresis against churn; the paper demotes below k).
      backend: "auto" (the C++ op when its library is loaded, else the pure-TF
        reference), "op" or "reference". Defaults to "auto".

    Example:
      >>> CafeConfig(embedding_dim=16, compression_ratio=100).resolved([1_000_000]).budget_bytes
      640000
      >>> CafeConfig(embedding_dim=16, compression_ratio=100, backend="gpu", decay_rate=2.0)
      Traceback (most recent call last):
      ...
      ValueError: Invalid CafeConfig: `decay_rate` must be in (0, 1], got 2.0; `backend` must be
      one of ('auto', 'op', 'reference'), got 'gpu'
    """

    embedding_dim: int
    compression_ratio: float | None = None
    budget_bytes: int | None = None
    hot_share: float | None = None
    threshold: float | None = None
    decay_rate: float = 0.99
    slots_per_bucket: int = 16
    sketch_bytes_per_hot_row: float | None = 16.0
    importance: str = "gradient"
    multi_level: bool = False
    medium_threshold_ratio: float = 0.2
    medium_share: float | None = None
    share_hashed_tables: bool | None = None
    decay_rule: str = "mass"
    decay_period: int = 0
    decay_half_life: float | None = 8.0
    swap_margin: float | None = 1.5
    replacement: str = "erode"
    second_sighting: bool = True
    fill_free_rows: bool | None = None
    demote_threshold: float | None = None
    backend: str = "auto"

    def __post_init__(self):
        problems = self._problems()
        if problems:
            raise ValueError("Invalid CafeConfig: " + "; ".join(problems))

    def _problems(self):
        """Every problem of this config, as "`field` must be ..., got ..." texts."""
        problems = []

        def check(field, ok, expected):
            if not ok:
                problems.append(f"`{field}` must be {expected}, got {getattr(self, field)!r}")

        check(
            "embedding_dim",
            _is_int(self.embedding_dim) and self.embedding_dim > 0,
            "a positive int",
        )
        if (self.compression_ratio is None) == (self.budget_bytes is None):
            problems.append(
                "give exactly one of `compression_ratio` and `budget_bytes`, got "
                f"compression_ratio={self.compression_ratio!r}, "
                f"budget_bytes={self.budget_bytes!r}"
            )
        if self.compression_ratio is not None:
            check(
                "compression_ratio",
                _is_real(self.compression_ratio)
                and math.isfinite(self.compression_ratio)
                and self.compression_ratio >= 1,
                "a finite number >= 1",
            )
        if self.budget_bytes is not None:
            check(
                "budget_bytes",
                _is_int(self.budget_bytes) and self.budget_bytes > 0,
                "a positive int",
            )
        if self.hot_share is not None:
            check(
                "hot_share",
                _is_real(self.hot_share) and 0 < self.hot_share < 1,
                "None or in (0, 1)",
            )
        threshold_ok = self.threshold is None or (
            _is_real(self.threshold)
            and math.isfinite(self.threshold)
            and self.threshold >= FLOAT32_MIN_NORMAL
        )
        check(
            "threshold",
            threshold_ok,
            "None or finite and >= the smallest normal float32 (1.17549e-38)",
        )
        check("decay_rate", _is_real(self.decay_rate) and 0 < self.decay_rate <= 1, "in (0, 1]")
        check(
            "slots_per_bucket",
            _is_int(self.slots_per_bucket) and self.slots_per_bucket > 0,
            "a positive int",
        )
        if self.sketch_bytes_per_hot_row is not None:
            check(
                "sketch_bytes_per_hot_row",
                _is_real(self.sketch_bytes_per_hot_row)
                and math.isfinite(self.sketch_bytes_per_hot_row)
                and self.sketch_bytes_per_hot_row >= SLOT_BYTES,
                f"None or finite and >= {SLOT_BYTES} (one 12-byte slot per hot row)",
            )
        check("importance", self.importance in IMPORTANCES, f"one of {IMPORTANCES}")
        check("multi_level", isinstance(self.multi_level, bool), "a bool")
        check(
            "medium_threshold_ratio",
            _is_real(self.medium_threshold_ratio) and 0 < self.medium_threshold_ratio <= 1,
            "in (0, 1]",
        )
        if self.medium_share is not None:
            check(
                "medium_share",
                _is_real(self.medium_share) and 0 < self.medium_share < 1,
                "None or in (0, 1)",
            )
        check(
            "share_hashed_tables",
            self.share_hashed_tables is None or isinstance(self.share_hashed_tables, bool),
            "None or a bool",
        )
        check("decay_rule", self.decay_rule in DECAY_RULES, f"one of {DECAY_RULES}")
        if self.decay_rule == "batches":
            check(
                "decay_period",
                _is_int(self.decay_period) and self.decay_period > 0,
                'a positive int with decay_rule="batches"',
            )
        else:
            check(
                "decay_period", _is_int(self.decay_period) and self.decay_period >= 0, "an int >= 0"
            )
        if self.decay_half_life is not None:
            check(
                "decay_half_life",
                _is_real(self.decay_half_life)
                and math.isfinite(self.decay_half_life)
                and self.decay_half_life > 0,
                "None or finite and > 0",
            )
        if self.swap_margin is not None:
            check(
                "swap_margin",
                _is_real(self.swap_margin)
                and math.isfinite(self.swap_margin)
                and self.swap_margin >= 1,
                "None or finite and >= 1",
            )
        check("replacement", self.replacement in REPLACEMENTS, f"one of {REPLACEMENTS}")
        check("second_sighting", isinstance(self.second_sighting, bool), "a bool")
        check(
            "fill_free_rows",
            self.fill_free_rows is None or isinstance(self.fill_free_rows, bool),
            "None or a bool",
        )
        if self.demote_threshold is not None:
            demote = self.demote_threshold
            ok = (
                _is_real(demote)
                and math.isfinite(demote)
                and (demote == 0 or demote >= FLOAT32_MIN_NORMAL)
            )
            if ok and threshold_ok and self.threshold is not None:
                ok = demote <= self.threshold
            check("demote_threshold", ok, "None, 0 or in [smallest normal float32, threshold]")
        check("backend", self.backend in BACKENDS, f"one of {BACKENDS}")
        return problems

    def resolved(self, vocabulary_sizes) -> "CafeConfig":
        """This config with the budget, hot share, threshold, filling of free rows and
        demotion threshold made concrete (docs/sketch.md, "Defaults per ratio");
        multi-level hashing off where the planner gives it no medium level."""
        budget = budget_lib.resolve_budget(
            vocabulary_sizes, self.embedding_dim, self.compression_ratio, self.budget_bytes
        )
        ratio = budget_lib.full_table_bytes(vocabulary_sizes, self.embedding_dim) / budget
        hot_share = (
            budget_lib.planned_hot_share(ratio) if self.hot_share is None else self.hot_share
        )
        # The planner's medium level from MEDIUM_LEVEL_MIN_RATIO up; a medium_share
        # that is set asks for one at any ratio. Never where it does not fit.
        multi_level = (
            self.multi_level
            and (self.medium_share is not None or ratio >= budget_lib.MEDIUM_LEVEL_MIN_RATIO)
            and budget_lib.medium_level_fits(
                vocabulary_sizes, self.embedding_dim, budget, hot_share
            )
        )
        sized = dataclasses.replace(
            self,
            compression_ratio=None,
            budget_bytes=budget,
            hot_share=hot_share,
            multi_level=multi_level,
            medium_share=(
                budget_lib.MEDIUM_SHARE if self.medium_share is None else self.medium_share
            ),
        )
        layout = sized._layout(vocabulary_sizes)
        threshold = self.threshold
        if threshold is None:
            threshold = budget_lib.planned_threshold(layout.hot_rows, self.decay_half_life or 8.0)
        fill = self.fill_free_rows
        if fill is None:
            fill = budget_lib.planned_fill_free_rows(
                layout.num_buckets, layout.slots_per_bucket, layout.hot_rows
            )
        demote = self.demote_threshold
        if demote is None:
            demote = budget_lib.planned_demote_threshold(
                threshold, fill, self.swap_margin is not None
            )
        return dataclasses.replace(
            sized,
            threshold=threshold,
            fill_free_rows=fill,
            demote_threshold=demote,
            share_hashed_tables=layout.shared_hashed_tables,
        )

    def plan(self, vocabulary_sizes) -> budget_lib.CafeLayout:
        """The layout of a CAFE layer of this config over features of `vocabulary_sizes`."""
        return self.resolved(vocabulary_sizes)._layout(vocabulary_sizes)

    def _layout(self, vocabulary_sizes) -> budget_lib.CafeLayout:
        """The layout of this config, whose budget, hot share and medium share are set."""
        return budget_lib.plan_cafe_layout(
            vocabulary_sizes,
            self.embedding_dim,
            self.budget_bytes,
            self.hot_share,
            self.slots_per_bucket,
            self.multi_level,
            self.medium_share,
            bookkeeping_bytes=budget_lib.CAFE_COUNTER_BYTES,
            sketch_bytes_per_hot_row=self.sketch_bytes_per_hot_row,
            share_hashed_tables=self.share_hashed_tables,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
