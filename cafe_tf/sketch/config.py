"""Configuration of a HotSketch and its size in bytes."""

import dataclasses
import math
import struct

# Bytes per sketch slot: one int64 word (the key's 32-bit fingerprint, and an int32
# entry holding the hot row and tag, or the tag and second-sighting mark of a key that
# is not hot) + the float32 score. Hot rows need no bookkeeping of their own.
SLOT_BYTES = 8 + 4
# mass (float32) + batches since the last decay (int64).
SCALAR_BYTES = 4 + 8
# A hot entry packs (row << tag_bits) | tag into an int32 >= 0, so hot_rows * 2**tag_bits
# must not exceed this.
MAX_HOT_ENTRIES = 2**31
# Cold markers (-1 - 2*tag - pending) hold tags below 2**30.
MAX_TAG_BITS = 30
MAX_TAG = 2**MAX_TAG_BITS - 1
# Smallest normal float32. Subnormal importances and scores count as 0 everywhere.
FLOAT32_MIN_NORMAL = 1.1754943508222875e-38

DECAY_RULES = ("mass", "batches")
REPLACEMENTS = ("erode", "inherit")
# The half-life schedule decays in this many steps per half-life.
HALF_LIFE_STEPS = 8


@dataclasses.dataclass(frozen=True)
class SketchConfig:
    """Sizes and rules of a HotSketch (docs/sketch.md).

    Args:
      num_buckets: W, buckets of the sketch.
      hot_rows: rows of the hot table that promotions hand out.
      slots_per_bucket: c, keys tracked per bucket (paper: 4).
      threshold: k, a key with score >= k is promoted (normalised-importance units).
      decay_rate: rho, scores are multiplied by it once per decay period.
      demote_threshold: hot keys whose decayed score falls below it are demoted;
        None means `threshold` (the paper). Lower values give hysteresis.
      medium_threshold: non-hot keys with score >= it are "medium" (multi-level
        hashing); None disables the medium level.
      decay_rule: the decay period: "mass" (decay_mass_factor * W * k of
        inserted importance; the paper) or "batches" (decay_period inserted
        batches). A migration decays by rho once per whole period since the
        last decay (at most 64 times).
      decay_mass_factor: see decay_rule (paper: 10).
      decay_period: see decay_rule.
      replacement: what a key that misses a full bucket does to the smallest
        non-hot slot: "erode" lowers its score by the key's importance and
        takes the slot only with what is left over (Misra-Gries; rare keys
        cannot pile up score), "inherit" takes the slot and adds to its score
        (SpaceSaving, the paper).
      second_sighting: a key that takes a slot over is not promoted until it
        is seen again; False is the paper's rule.
      decay_half_life: when set, scores halve per `decay_half_life * hot_rows * k`
        of inserted importance (the mass rule, in 8 steps per half-life;
        decay_rate and decay_mass_factor are then derived). A key then stays
        above k when its share of the importance is at least about
        ln 2 / (decay_half_life * hot_rows), whatever k and the batch size.
      swap_margin: when set (>= 1), a migration whose candidates (score >= k)
        outnumber the free rows lets them displace the weakest hot keys that
        are below yield_threshold or that they outscore by this factor, so the
        hot set follows the top scores; None is the paper's rule (hot keys
        leave only by decaying below demote_threshold).
      yield_threshold: with swaps, a hot key whose score is below it yields its
        row to any candidate (score >= k) without the margin: fillers and keys
        that decayed make way, while keys near k keep the margin's hysteresis.
        0 (the default): every swap needs the margin.
      fill_free_rows: rows still free after the candidates (score >= k) go to
        the strongest other tracked keys (score > 0, not pending), so no row
        sits idle while the sketch knows a key for it; only keys >= k displace
        hot keys. False is the paper's rule (rows wait for keys >= k).
      num_features: every key is inserted with a feature index in
        [0, num_features) (a CAFE layer's features; 1 for a sketch of one kind of
        key). A slot's entry keeps it in its tag field: a hot slot packs
        (row << tag_bits) | feature index into one int32, tag_bits =
        ceil(log2(num_features)), so hot_rows * 2**tag_bits must be <= 2**31.
    """

    num_buckets: int
    hot_rows: int
    slots_per_bucket: int = 4
    threshold: float = 500.0
    decay_rate: float = 0.99
    demote_threshold: float | None = None
    medium_threshold: float | None = None
    decay_rule: str = "mass"
    decay_mass_factor: float = 10.0
    decay_period: int = 0
    replacement: str = "erode"
    second_sighting: bool = True
    decay_half_life: float | None = None
    swap_margin: float | None = None
    fill_free_rows: bool = False
    yield_threshold: float = 0.0
    num_features: int = 1

    def __post_init__(self):
        problems = []
        if not isinstance(self.num_buckets, int) or self.num_buckets <= 0:
            problems.append(f"num_buckets must be a positive int, got {self.num_buckets!r}")
        if not isinstance(self.hot_rows, int) or self.hot_rows <= 0:
            problems.append(f"hot_rows must be a positive int, got {self.hot_rows!r}")
        if not isinstance(self.slots_per_bucket, int) or self.slots_per_bucket <= 0:
            problems.append(
                f"slots_per_bucket must be a positive int, got {self.slots_per_bucket!r}"
            )
        elif (
            isinstance(self.num_buckets, int) and self.num_buckets * self.slots_per_bucket >= 2**31
        ):
            problems.append("num_buckets * slots_per_bucket must be < 2**31")
        # Thresholds are compared with float32 scores: a subnormal one would be 0 to TF's
        # flush-to-zero CPU kernels and not to CUDA (see FLOAT32_MIN_NORMAL).
        if not (math.isfinite(self.threshold) and self.threshold >= FLOAT32_MIN_NORMAL):
            problems.append(
                f"threshold must be finite and >= {FLOAT32_MIN_NORMAL:.6g} (the "
                f"smallest normal float32), got {self.threshold!r}"
            )
        if not 0 < self.decay_rate <= 1:
            problems.append(f"decay_rate must be in (0, 1], got {self.decay_rate!r}")
        if self.demote_threshold is not None and not (
            math.isfinite(self.demote_threshold)
            and self.demote_threshold <= self.threshold
            and (self.demote_threshold == 0 or self.demote_threshold >= FLOAT32_MIN_NORMAL)
        ):
            problems.append(
                "demote_threshold must be 0 or in [smallest normal float32, "
                f"threshold], got {self.demote_threshold!r}"
            )
        if not (
            isinstance(self.yield_threshold, (int, float))
            and math.isfinite(self.yield_threshold)
            and 0 <= self.yield_threshold <= self.threshold
            and (self.yield_threshold == 0 or self.yield_threshold >= FLOAT32_MIN_NORMAL)
        ):
            problems.append(
                "yield_threshold must be 0 or in [smallest normal float32, threshold], "
                f"got {self.yield_threshold!r}"
            )
        if self.medium_threshold is not None and not (
            math.isfinite(self.medium_threshold)
            and FLOAT32_MIN_NORMAL <= self.medium_threshold <= self.threshold
        ):
            problems.append(
                "medium_threshold must be in [smallest normal float32, threshold], "
                f"got {self.medium_threshold!r}"
            )
        if self.decay_rule not in DECAY_RULES:
            problems.append(f"decay_rule must be one of {DECAY_RULES}, got {self.decay_rule!r}")
        elif self.decay_rule == "mass" and not self.decay_mass_factor > 0:
            problems.append(f"decay_mass_factor must be > 0, got {self.decay_mass_factor!r}")
        elif self.decay_rule == "batches" and not (
            isinstance(self.decay_period, int) and self.decay_period > 0
        ):
            problems.append(f"decay_period must be a positive int, got {self.decay_period!r}")
        if self.decay_half_life is not None and not (
            self.decay_rule == "mass"
            and math.isfinite(self.decay_half_life)
            and self.decay_half_life > 0
        ):
            problems.append(
                "decay_half_life must be finite and > 0, with decay_rule 'mass', "
                f"got {self.decay_half_life!r} with {self.decay_rule!r}"
            )
        if self.swap_margin is not None and not (
            math.isfinite(self.swap_margin) and self.swap_margin >= 1
        ):
            problems.append(
                f"swap_margin must be None or finite and >= 1, got {self.swap_margin!r}"
            )
        if self.replacement not in REPLACEMENTS:
            problems.append(f"replacement must be one of {REPLACEMENTS}, got {self.replacement!r}")
        if not isinstance(self.second_sighting, bool):
            problems.append(f"second_sighting must be a bool, got {self.second_sighting!r}")
        if not isinstance(self.fill_free_rows, bool):
            problems.append(f"fill_free_rows must be a bool, got {self.fill_free_rows!r}")
        if not isinstance(self.num_features, int) or self.num_features <= 0:
            problems.append(f"num_features must be a positive int, got {self.num_features!r}")
        elif self.tag_bits > MAX_TAG_BITS:
            problems.append(f"num_features must be <= 2**{MAX_TAG_BITS}, got {self.num_features}")
        elif isinstance(self.hot_rows, int) and self.hot_rows << self.tag_bits > MAX_HOT_ENTRIES:
            problems.append(
                f"hot_rows * 2**tag_bits must be <= 2**31 (a hot slot packs (row << tag_bits) "
                f"| tag into an int32): {self.num_features} features need tag_bits "
                f"{self.tag_bits}, "
                f"which allows at most {MAX_HOT_ENTRIES >> self.tag_bits} hot rows, got "
                f"{self.hot_rows}"
            )
        if problems:
            raise ValueError("Invalid SketchConfig: " + "; ".join(problems))

    @property
    def tag_bits(self) -> int:
        """Bits of the feature index in a hot entry: ceil(log2(num_features)) (0 for one
        feature)."""
        return max(0, int(self.num_features) - 1).bit_length()

    @property
    def effective_demote_threshold(self) -> float:
        return self.threshold if self.demote_threshold is None else self.demote_threshold

    @property
    def promotion_floor(self) -> float:
        """The lowest score a key can be promoted with: 0 (any tracked key) when free rows
        are filled, else the threshold (`cafe::SketchConfig::promotion_floor`)."""
        return 0.0 if self.fill_free_rows else self.threshold

    @property
    def effective_medium_threshold(self) -> float:
        return math.inf if self.medium_threshold is None else self.medium_threshold

    @property
    def num_slots(self) -> int:
        return self.num_buckets * self.slots_per_bucket

    @property
    def effective_decay_rate(self) -> float:
        """rho of one decay step (derived from decay_half_life when set)."""
        if self.decay_half_life is None:
            return self.decay_rate
        return 0.5 ** (1.0 / HALF_LIFE_STEPS)

    @property
    def effective_decay_mass_factor(self) -> float:
        """One decay step per this many W * k of mass (derived from decay_half_life
        when set)."""
        if self.decay_half_life is None:
            return self.decay_mass_factor
        return self.decay_half_life * self.hot_rows / (HALF_LIFE_STEPS * self.num_buckets)

    @property
    def decay_mass_limit(self) -> float:
        # The ops receive factor and k as float32 attributes and multiply in double.
        return (
            _float32(self.effective_decay_mass_factor) * self.num_buckets * _float32(self.threshold)
        )

    def memory_bytes(self) -> int:
        """Bytes of sketch state: 12 per slot, and the scalars."""
        return self.num_slots * SLOT_BYTES + SCALAR_BYTES

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _float32(value: float) -> float:
    """`value` rounded to float32, as a Python float."""
    return struct.unpack("f", struct.pack("f", value))[0]
