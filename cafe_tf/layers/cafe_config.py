"""CafeConfig: everything that sizes and drives a CAFE embedding collection."""
import dataclasses
from typing import Optional

from cafe_tf import budget as budget_lib

IMPORTANCES = ("gradient", "frequency")


@dataclasses.dataclass(frozen=True)
class CafeConfig:
    """Configuration of a CAFE embedding collection (docs/sketch.md for the sketch).

    Args:
      embedding_dim: D, the width of every embedding.
      compression_ratio: full table bytes / budget bytes (give this or budget_bytes).
      budget_bytes: the budget in bytes (tables + sketch + bookkeeping).
      hot_share: share of the budget for the hot part (hot table and its
        sketch), i.e. 1 - h in the paper. None: the paper's value for the ratio.
      threshold: k, the score at which a feature is promoted. None: the
        paper's value for the ratio.
      decay_rate: rho, the factor applied to every score at each decay.
      slots_per_bucket: c, keys tracked per sketch bucket.
      importance: "gradient" (paper: L2 norm of the embedding's gradient,
        normalised per feature per batch) or "frequency" (1 per occurrence,
        times its weight).
      multi_level: give "medium" features (score >= medium_threshold_ratio * k)
        a second hashed row, summed with the first.
      medium_threshold_ratio: k_medium / k for multi-level hashing.
      medium_share: share of the hashed rows that form the medium-level tables.
      decay_rule: "mass" (paper) or "batches" (every decay_period batches).
      decay_period: batches between decays for decay_rule="batches".
      decay_half_life: with decay_rule "mass", scores halve per this many
        hot_rows * k of inserted importance (the default, chosen by
        measurement in docs/sketch.md); None: the paper's decay (decay_rate
        per 10 W k).
      swap_margin: candidates beyond the free hot rows displace the weakest
        hot features they outscore by this factor; None: the paper (no swaps).
      replacement: "erode" (a miss in a full sketch bucket erodes its smallest
        score) or "inherit" (SpaceSaving, the paper).
      second_sighting: a feature that took a sketch slot over is promoted only
        once seen again; False: the paper.
      demote_threshold: hot features whose decayed score falls below it are
        demoted; None means k (the paper). A lower value adds hysteresis.
      backend: "auto", "op" or "reference" (see HotSketch).
    """

    embedding_dim: int
    compression_ratio: Optional[float] = None
    budget_bytes: Optional[int] = None
    hot_share: Optional[float] = None
    threshold: Optional[float] = None
    decay_rate: float = 0.99
    slots_per_bucket: int = 4
    importance: str = "gradient"
    multi_level: bool = False
    medium_threshold_ratio: float = 0.2
    medium_share: float = 0.3
    decay_rule: str = "mass"
    decay_period: int = 0
    decay_half_life: Optional[float] = 8.0
    swap_margin: Optional[float] = 1.5
    replacement: str = "erode"
    second_sighting: bool = True
    demote_threshold: Optional[float] = None
    backend: str = "auto"

    def __post_init__(self):
        if not isinstance(self.embedding_dim, int) or self.embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be a positive int, got {self.embedding_dim!r}")
        if (self.compression_ratio is None) == (self.budget_bytes is None):
            raise ValueError("give exactly one of compression_ratio and budget_bytes")
        if self.compression_ratio is not None and not self.compression_ratio >= 1:
            raise ValueError(f"compression_ratio must be >= 1, got {self.compression_ratio}")
        if self.budget_bytes is not None and not self.budget_bytes > 0:
            raise ValueError(f"budget_bytes must be > 0, got {self.budget_bytes}")
        if self.hot_share is not None and not 0 < self.hot_share < 1:
            raise ValueError(f"hot_share must be in (0, 1), got {self.hot_share}")
        if self.importance not in IMPORTANCES:
            raise ValueError(f"importance must be one of {IMPORTANCES}, got {self.importance!r}")
        if not 0 < self.medium_threshold_ratio <= 1:
            raise ValueError("medium_threshold_ratio must be in (0, 1], got "
                             f"{self.medium_threshold_ratio}")

    def resolved(self, vocabulary_sizes) -> "CafeConfig":
        """This config with the budget, threshold and hot share made concrete."""
        budget = budget_lib.resolve_budget(vocabulary_sizes, self.embedding_dim,
                                           self.compression_ratio, self.budget_bytes)
        ratio = budget_lib.full_table_bytes(vocabulary_sizes, self.embedding_dim) / budget
        paper_k, paper_h = budget_lib.paper_settings(max(1.0, ratio))
        return dataclasses.replace(
            self, compression_ratio=None, budget_bytes=budget,
            threshold=paper_k if self.threshold is None else self.threshold,
            hot_share=1.0 - paper_h if self.hot_share is None else self.hot_share)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
