"""A synthetic click log shaped like a public one: cafe_tf's built-in data, no download needed.

Shape of the data (`cafe_tf.data.shapes`): by default Criteo Kaggle's, 13 dense fields
I1..I13 and 26 categorical fields C1..C26; or Avazu's (22 categorical fields) or KDD Cup
2012's (11), both without dense fields. `num_days` days in time order, the last one for
testing. Each field's cardinality is the real log's times `scale`. The hidden click model,
skew, drift and ground truth are the same for every shape.

How it is generated:

- ids: each field draws a popularity rank from a Zipf law (exponent `zipf_exponent`, the
  slope of log-frequency vs log-rank) and maps the rank to an id through a seeded
  permutation, so ids look hashed (popular ids are spread over `[0, cardinality)`) while a
  full embedding table can still index them directly;
- drift: every day after the first, a random `drift` fraction of the ranks trade their ids
  among themselves, so some hot ids go cold and some cold ids get hot; the change accumulates;
- dense: per field a log-normal count (some missing, i.e. 0), fed as `log1p(count)`, which is
  what the Criteo reader produces from real counts;
- labels: a hidden logistic model. Every (field, id) has a weight and a small factor vector;
  `logit = bias + sum of id weights + sum over field pairs of factor dot products
  + w_dense . (log-count - typical log-count, 0 where missing)`. `bias` is calibrated per
  day so that about `positive_rate` of each day's labels are 1 (without that, drift moving
  a few heavy ids in or out of the head swings the daily click rate from 0.15 to 0.35).
  The ids carry most of the signal, so a full embedding table beats a heavily hashed one.

The stream is produced chunk by chunk with vectorised numpy, each chunk determined by
(seed, day, chunk index) alone, so the data is reproducible from the seed and never held
in memory as a whole. Batching does not change the data: any `batch_size` yields the same rows.
"""

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from cafe_tf.data.batch import DENSE_KEY, SPARSE_KEY, CTRData, pack_batch
from cafe_tf.data.shapes import get_shape

# Independent random streams, keyed (seed, purpose, ...) through numpy's SeedSequence.
_STREAM_MODEL, _STREAM_DRIFT, _STREAM_CHUNK, _STREAM_CALIBRATION = range(4)
_CALIBRATION_ROWS = 50_000
_RANK_OFFSET = 0.5  # ranks are a continuous power law on [0.5, n + 0.5) rounded to 1..n


@dataclass(frozen=True)
class SyntheticCriteoConfig:
    """Parameters of the synthetic click log.

    Args:
        seed: non-negative; everything is a deterministic function of it.
        rows_per_day: examples per day.
        num_days: days in time order; days `0..num_days-2` train, the last day tests.
        scale: cardinality of each field = Criteo Kaggle's times `scale`, rounded, but never
            below `min(min_cardinality, Kaggle's cardinality)`: small fields (day of week-like,
            3 to ~100 values) keep their real size instead of collapsing to 1 or 2 values.
        min_cardinality: see `scale`.
        zipf_exponent: rank-frequency exponent of the ids. Criteo's overall fit is about 1.22
            (about 1.0 in the head, 1.4-1.5 in the tail).
        drift: fraction of ranks whose ids are reshuffled each day (0 = no drift).
        positive_rate: target fraction of positive labels.
        id_weight_std: root-mean-square over fields of the standard deviation of the hidden
            per-id weights (fields with more distinct values get larger weights).
        factor_dim: length of the hidden per-id factor vectors (pairwise interactions).
        factor_std: standard deviation of the factor vectors' entries.
        dense_weight_std: size of the dense fields' effect on the logit (per field, in units of
            the field's log-count spread).
        chunk_size: rows generated per numpy step. Part of the stream's identity: changing it
            changes the data.
        shape: the log imitated: "criteo_kaggle", "avazu" or "kdd12" (`cafe_tf.data.shapes`).

    Example:
        >>> config = SyntheticCriteoConfig(seed=1, rows_per_day=50_000, scale=1e-4)
        >>> config.cardinalities()["C3"]
        1013
    """

    seed: int = 0
    rows_per_day: int = 100_000
    num_days: int = 7
    scale: float = 1e-3
    min_cardinality: int = 100
    zipf_exponent: float = 1.2
    drift: float = 0.1
    positive_rate: float = 0.25
    id_weight_std: float = 0.3
    factor_dim: int = 4
    factor_std: float = 0.15
    dense_weight_std: float = 0.25
    chunk_size: int = 32_768
    shape: str = "criteo_kaggle"

    def __post_init__(self):
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.num_days < 2:
            raise ValueError(f"num_days must be at least 2 (train and test), got {self.num_days}")
        if not 0.0 <= self.drift <= 1.0:
            raise ValueError(f"drift must be in [0, 1], got {self.drift}")
        if not 0.0 < self.positive_rate < 1.0:
            raise ValueError(f"positive_rate must be in (0, 1), got {self.positive_rate}")
        if self.zipf_exponent <= 0 or self.scale <= 0:
            raise ValueError("zipf_exponent and scale must be positive")
        if self.rows_per_day < 1 or self.chunk_size < 1:
            raise ValueError("rows_per_day and chunk_size must be positive")
        get_shape(self.shape)

    def cardinalities(self) -> dict:
        """Field -> number of distinct ids, the shape's scaled as described under `scale`."""
        return {
            f: max(min(self.min_cardinality, n), int(round(n * self.scale)))
            for f, n in get_shape(self.shape).cardinalities.items()
        }


class SyntheticChunk(NamedTuple):
    """One generated block of consecutive rows of a day.

    Attributes:
        dense: float32 `[n, num_dense]`, `log1p` of the counts (13 fields for Criteo).
        ids: int64 `[n, num_fields]`, column `i` for the shape's i-th categorical field.
        label: float32 `[n]`, 0 or 1.
        probability: float64 `[n]`, the hidden model's click probability (Bayes-optimal
            prediction) from which `label` was drawn.
    """

    dense: np.ndarray
    ids: np.ndarray
    label: np.ndarray
    probability: np.ndarray


class SyntheticCriteo(CTRData):
    """The synthetic click log described in the module docstring, as `tf.data` pipelines.

    Ids lie in `[0, vocabulary_sizes[field])`. The hidden model and the day's rank -> id
    table take `4 * (factor_dim + 2) + 16` bytes per id: 40 with the defaults, 1.4 GB at
    `scale=1`.

    Args:
        config: the generator's parameters.

    Attributes:
        config: the `SyntheticCriteoConfig`.

    Example:
        >>> data = SyntheticCriteo(SyntheticCriteoConfig(seed=0))  # doctest: +SKIP
        >>> model.fit(data.train_dataset(batch_size=128))  # doctest: +SKIP
        >>> model.evaluate(data.test_dataset(batch_size=4096))  # doctest: +SKIP
    """

    def __init__(self, config: SyntheticCriteoConfig = SyntheticCriteoConfig()):
        cardinalities = config.cardinalities()
        self.shape = get_shape(config.shape)
        super().__init__(self.shape.categorical_fields, cardinalities, self.shape.num_dense)
        self.config = config
        sizes = np.array([cardinalities[f] for f in self.field_names], np.int64)
        # All fields share one flat table; field i's entries start at _offsets[i].
        self._sizes = sizes
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._id_table = self._hidden_id_table()
        self._dense_params = self._hidden_dense_params()
        self._permutation_lock = threading.Lock()
        self._permutation_cache = (0, self._first_day_permutation())
        self._biases = {}  # day -> calibrated intercept, computed when first needed

    # ----- hidden model -------------------------------------------------------------------

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, *key])

    def _hidden_id_table(self) -> np.ndarray:
        """Per id (over all fields): `[weight, factor_1..factor_k, |factor|^2]`, float32.

        Packing them lets one gather and one sum over fields give all three logit terms.
        """
        config, rows = self.config, []
        # Fields with more distinct values carry more signal, as user and ad ids do in real
        # logs: weight spread grows with log(Kaggle cardinality), at id_weight_std on average.
        log_sizes = np.log(list(self.shape.cardinalities.values()))
        spreads = config.id_weight_std * log_sizes / np.sqrt(np.mean(log_sizes**2))
        for field, (size, spread) in enumerate(zip(self._sizes, spreads)):
            rng = self._rng(_STREAM_MODEL, field)
            weight = rng.normal(0.0, spread, (size, 1))
            factors = rng.normal(0.0, config.factor_std, (size, config.factor_dim))
            rows.append(
                np.hstack([weight, factors, (factors**2).sum(1, keepdims=True)]).astype(np.float32)
            )
        return np.concatenate(rows)

    def _hidden_dense_params(self) -> dict:
        """Log-normal parameters, missing rates and logit weights of the dense fields."""
        rng = self._rng(_STREAM_MODEL, len(self.field_names))
        n = self.num_dense
        sigma = rng.uniform(0.5, 2.0, n)
        return {
            "mu": rng.uniform(0.0, 4.0, n),
            "sigma": sigma,
            "missing": rng.uniform(0.0, 0.4, n),
            # per unit of log-count, so each field moves the logit by ~dense_weight_std
            "weight": rng.normal(0.0, self.config.dense_weight_std, n) / sigma,
        }

    def _logit_without_bias(self, dense: np.ndarray, flat_ids: np.ndarray) -> np.ndarray:
        """The hidden model's logit minus `bias`, for ids already offset into the flat table."""
        totals = np.einsum("nfc->nc", np.take(self._id_table, flat_ids, axis=0))  # sum over fields
        weights, factors, squares = totals[:, 0], totals[:, 1:-1], totals[:, -1]
        # sum over field pairs i < j of <f_i, f_j>, in O(fields) instead of O(fields^2)
        pairwise = 0.5 * ((factors * factors).sum(axis=1) - squares)
        # Dense fields act through their deviation from the typical log-count; a missing (0)
        # value is neutral, else the missing pattern alone would outweigh the ids.
        params = self._dense_params
        deviation = np.where(dense > 0, dense - params["mu"], 0.0)
        return (weights + pairwise).astype(np.float64) + deviation @ params["weight"]

    def bias(self, day: int) -> float:
        """The hidden model's intercept on `day`: mean click probability `positive_rate`.

        Args:
            day: `0 <= day < num_days`.

        Returns:
            The intercept, found by bisection on a sample of the day's features.
        """
        if day not in self._biases:
            self._biases[day] = self._calibrate_bias(day)
        return self._biases[day]

    def _calibrate_bias(self, day: int) -> float:
        rng = self._rng(_STREAM_CALIBRATION, day)
        dense, ranks = self._draw_features(rng, min(_CALIBRATION_ROWS, self.config.rows_per_day))
        ids = np.take(self.rank_to_id(day), ranks + self._offsets)
        logits = self._logit_without_bias(dense, ids + self._offsets)
        low, high = -30.0, 30.0
        for _ in range(60):  # bisection: the mean probability is increasing in the bias
            middle = 0.5 * (low + high)
            if _sigmoid(logits + middle).mean() < self.config.positive_rate:
                low = middle
            else:
                high = middle
        return 0.5 * (low + high)

    def oracle_probability(self, features: dict, day: int) -> np.ndarray:
        """The hidden model's click probability for a batch: the Bayes-optimal prediction.

        Args:
            features: a batch's features dict (tensors or numpy arrays), as produced here.
            day: the day the batch comes from (the intercept is per day).

        Returns:
            float64 `[B]`.

        Example:
            >>> features, label = next(iter(data.test_dataset(4096)))  # doctest: +SKIP
            >>> p = data.oracle_probability(features, day=6)  # doctest: +SKIP
        """
        ids = np.stack([np.asarray(features[SPARSE_KEY][f]) for f in self.field_names], axis=1)
        dense = np.asarray(features[DENSE_KEY])
        return _sigmoid(self._logit_without_bias(dense, ids + self._offsets) + self.bias(day))

    # ----- drift --------------------------------------------------------------------------

    def _first_day_permutation(self) -> np.ndarray:
        """Flat rank -> id table of day 0 (entry offset_i + r is the id of rank r in field i)."""
        return np.concatenate(
            [
                self._rng(_STREAM_DRIFT, field, 0).permutation(size)
                for field, size in enumerate(self._sizes)
            ]
        )

    def _next_day_permutation(self, permutation: np.ndarray, day: int) -> np.ndarray:
        """Day `day`'s table: a `drift` fraction of each field's ranks trade their ids."""
        permutation = permutation.copy()
        for field, (offset, size) in enumerate(zip(self._offsets, self._sizes)):
            rng = self._rng(_STREAM_DRIFT, field, day)
            moved = offset + np.flatnonzero(rng.random(size) < self.config.drift)
            permutation[moved] = permutation[rng.permutation(moved)]
        return permutation

    def rank_to_id(self, day: int) -> np.ndarray:
        """Day `day`'s flat rank -> id table (read-only view; a cached walk from day 0).

        Args:
            day: `0 <= day < num_days`.

        Returns:
            int64 array `[sum of cardinalities]`; field `i`'s ids by popularity rank are
            `table[offset_i : offset_i + cardinality_i]`, offsets being cumulative cardinalities.
        """
        self._check_day(day)
        with self._permutation_lock:
            cached_day, table = self._permutation_cache
            if cached_day > day:
                cached_day, table = 0, self._first_day_permutation()
            for next_day in range(cached_day + 1, day + 1):
                table = self._next_day_permutation(table, next_day)
            self._permutation_cache = (day, table)
        view = table.view()
        view.flags.writeable = False
        return view

    # ----- generation ---------------------------------------------------------------------

    def _draw_features(self, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Dense features `[rows, num_dense]` and 0-based popularity ranks `[rows, fields]`."""
        exponent = self.config.zipf_exponent
        # float64: a float32 uniform has 2**24 values, too few to reach every tail rank of
        # a field with millions of ids
        uniform = rng.random((rows, len(self._sizes)))
        low, high = _RANK_OFFSET, self._sizes + _RANK_OFFSET
        if np.isclose(exponent, 1.0):
            ranks = low * (high / low) ** uniform
        else:  # inverse CDF of the density x^-exponent on [low, high)
            power = 1.0 - exponent
            ranks = (low**power + uniform * (high**power - low**power)) ** (1.0 / power)
        ranks = np.clip(np.floor(ranks - _RANK_OFFSET).astype(np.int64), 0, self._sizes - 1)

        params = self._dense_params
        normal = rng.standard_normal((rows, self.num_dense), dtype=np.float32)
        counts = np.floor(np.exp(params["mu"] + params["sigma"] * normal))
        counts[rng.random(counts.shape, dtype=np.float32) < params["missing"]] = 0.0
        return np.log1p(counts).astype(np.float32), ranks

    def _check_day(self, day: int) -> None:
        if not 0 <= day < self.config.num_days:
            raise ValueError(f"day must be in [0, {self.config.num_days}), got {day}")

    def chunks(self, day: int) -> Iterator[SyntheticChunk]:
        """The rows of one day, chunk by chunk, in order, as numpy arrays.

        Args:
            day: `0 <= day < num_days`.

        Returns:
            An iterator of `SyntheticChunk`s totalling `rows_per_day` rows.
        """
        table, bias = self.rank_to_id(day), self.bias(day)
        size = self.config.chunk_size
        for index, start in enumerate(range(0, self.config.rows_per_day, size)):
            rng = self._rng(_STREAM_CHUNK, day, index)
            dense, ranks = self._draw_features(rng, min(size, self.config.rows_per_day - start))
            ids = np.take(table, ranks + self._offsets)  # np.take: 5x faster than [...]
            probability = _sigmoid(self._logit_without_bias(dense, ids + self._offsets) + bias)
            label = (rng.random(len(probability)) < probability).astype(np.float32)
            yield SyntheticChunk(dense, ids, label, probability)

    def days_dataset(self, days: Sequence[int], batch_size: int) -> tf.data.Dataset:
        """The given days, one after the other, as `(features, label)` batches, not shuffled.

        Args:
            days: day indices, streamed in the given order.
            batch_size: rows per batch; batches may straddle days, only the last may be smaller.

        Returns:
            A `tf.data.Dataset` in the batch format of `cafe_tf.data.batch`.
        """
        days = [int(d) for d in days]
        for day in days:
            self._check_day(day)

        def generate():
            for day in days:
                for chunk in self.chunks(day):
                    yield chunk.dense, chunk.ids, chunk.label

        signature = (
            tf.TensorSpec([None, self.num_dense], tf.float32),
            tf.TensorSpec([None, len(self.field_names)], tf.int64),
            tf.TensorSpec([None], tf.float32),
        )
        names = self.field_names
        batches = self.steps(batch_size, len(days))
        return (
            tf.data.Dataset.from_generator(generate, output_signature=signature)
            .rebatch(batch_size)
            # A known length gives Keras progress bars their total.
            .apply(tf.data.experimental.assert_cardinality(batches))
            .map(
                lambda d, i, y: pack_batch(d, i, y, names),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
            .prefetch(tf.data.AUTOTUNE)
        )

    def day_dataset(self, day: int, batch_size: int) -> tf.data.Dataset:
        """One day as `(features, label)` batches (see `days_dataset`)."""
        return self.days_dataset([day], batch_size)

    def train_dataset(self, batch_size: int) -> tf.data.Dataset:
        """Days `0 .. num_days - 2` in time order, not shuffled (see `days_dataset`)."""
        return self.days_dataset(range(self.config.num_days - 1), batch_size)

    def test_dataset(self, batch_size: int) -> tf.data.Dataset:
        """The last day (see `days_dataset`)."""
        return self.days_dataset([self.config.num_days - 1], batch_size)

    def steps(self, batch_size: int, num_days: int | None = None) -> int:
        """Batches in `num_days` days (default: all training days) at `batch_size`
        (the datasets above declare it as their cardinality)."""
        num_days = self.config.num_days - 1 if num_days is None else num_days
        return -(-num_days * self.config.rows_per_day // batch_size)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # never overflows, unlike 1 / (1 + exp(-x))
