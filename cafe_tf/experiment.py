"""Train-and-evaluate runs that compare embedding kinds under one memory budget.

Shared by `cafe-tf train` (`cafe_tf.cli`) and the benchmarks.
"""

import dataclasses
import time
from collections.abc import Callable

import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf.callbacks import CafeMigration
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection, find_cafe_layers
from cafe_tf.layers.adaembed import AdaEmbedEmbeddingCollection
from cafe_tf.layers.baselines import (
    FullEmbeddingCollection,
    HashEmbeddingCollection,
    QREmbeddingCollection,
)
from cafe_tf.layers.mde import MDEEmbeddingCollection
from cafe_tf.layers.offline import OfflineSeparationEmbeddingCollection, count_frequencies
from cafe_tf.models import DCN, DLRM
from cafe_tf.reallocation import AdaEmbedReallocation

EMBEDDINGS = ("full", "hash", "qr", "mde", "adaembed", "offline", "cafe", "cafe_ml")
MODELS = {"dlrm": DLRM, "dcn": DCN}
# Small MLPs, so that the embeddings make the difference (the benchmarks' models).
SMALL_MODEL_OPTIONS = {
    "dlrm": dict(bottom_units=(64, 32), top_units=(64, 32)),
    "dcn": dict(num_cross_layers=2, deep_units=(64, 32)),
}
OPTIMIZERS = {
    "adagrad": tf_keras.optimizers.Adagrad,
    "adam": tf_keras.optimizers.Adam,
    "sgd": tf_keras.optimizers.SGD,
}


def add_run_arguments(parser) -> None:
    """Adds the benchmarks' shared options (synthetic data size and training) to an
    `argparse` parser: --rows-per-day, --days, --scale, --dim, --batch-size, --learning-rate."""
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument(
        "--scale",
        type=float,
        default=2e-2,
        help="synthetic cardinalities = the real log's times this",
    )
    parser.add_argument("--dim", type=int, default=16, help="embedding dimension D")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=1e-3)


def make_embedding(
    kind: str,
    vocabulary_sizes: dict[str, int],
    embedding_dim: int,
    compression_ratio: float | None = None,
    budget_bytes: int | None = None,
    frequencies=None,
    exclusive_rows: int | None = None,
    **cafe_options,
) -> tf_keras.layers.Layer:
    """An embedding collection of `kind` sized to full bytes / `compression_ratio`
    (or to `budget_bytes`).

    Args:
      kind: "full", "hash", "qr", "mde" (mixed dimensions), "adaembed",
        "offline" (offline separation), "cafe" or "cafe_ml" (CAFE with
        multi-level hashing).
      vocabulary_sizes: {feature: distinct ids}.
      embedding_dim: D.
      compression_ratio: the budget as full bytes / ratio; ignored for "full".
      budget_bytes: the budget in bytes, instead of `compression_ratio`.
      frequencies: the training data's id counts (`count_frequencies`); "offline" only.
      exclusive_rows: "offline" only: this many exclusive rows instead of its hot
        share of the budget (`OfflineSeparationEmbeddingCollection`).
      **cafe_options: extra `CafeConfig` fields for the CAFE kinds ("offline" uses
        `hot_share` too).

    Raises:
      BudgetTooSmallError: the kind's minimum layout does not fit the budget.
      ValueError: an unknown kind, "offline" without `frequencies`, or
        `exclusive_rows` for another kind.
    """
    if exclusive_rows is not None and kind != "offline":
        raise ValueError(f"exclusive_rows applies to kind 'offline' only, not {kind!r}")
    budget = (
        {"compression_ratio": compression_ratio}
        if budget_bytes is None
        else {"budget_bytes": budget_bytes}
    )
    if kind == "full":
        return FullEmbeddingCollection(vocabulary_sizes, embedding_dim, name="full")
    if kind == "hash":
        # The byte budget, not the per-field ceil(n_f / ratio) rows, which overshoots it
        # where fields are small.
        budget = budget_lib.resolve_budget(list(vocabulary_sizes.values()), embedding_dim, **budget)
        return HashEmbeddingCollection(
            vocabulary_sizes, embedding_dim, budget_bytes=budget, name="hash"
        )
    if kind == "qr":
        return QREmbeddingCollection(vocabulary_sizes, embedding_dim, name="qr", **budget)
    if kind == "mde":
        return MDEEmbeddingCollection(vocabulary_sizes, embedding_dim, name="mde", **budget)
    if kind == "adaembed":
        return AdaEmbedEmbeddingCollection(
            vocabulary_sizes, embedding_dim, name="adaembed", **budget
        )
    if kind == "offline":
        # By default the hot share CAFE gets at this ratio, so that the two differ
        # only in how the hot ids are found (and in what finding them costs).
        ratio = budget_lib.full_table_bytes(list(vocabulary_sizes.values()), embedding_dim) / (
            budget_lib.resolve_budget(list(vocabulary_sizes.values()), embedding_dim, **budget)
        )
        hot_share = cafe_options.get("hot_share") or budget_lib.planned_hot_share(ratio)
        return OfflineSeparationEmbeddingCollection(
            vocabulary_sizes,
            embedding_dim,
            frequencies=frequencies,
            hot_share=hot_share,
            exclusive_rows=exclusive_rows,
            name="offline",
            **budget,
        )
    if kind in ("cafe", "cafe_ml"):
        config = CafeConfig(
            embedding_dim=embedding_dim, multi_level=kind == "cafe_ml", **budget, **cafe_options
        )
        return CafeEmbeddingCollection(vocabulary_sizes, config, name=kind)
    raise ValueError(f"kind must be one of {EMBEDDINGS}, got {kind!r}")


@dataclasses.dataclass
class RunResult:
    """What one train-and-evaluate run measured."""

    kind: str
    compression_ratio: float
    auc: float
    logloss: float
    memory_bytes: int
    train_samples_per_sec: float
    hot_lookup_share: float | None = None
    exclusive_rows: int | None = None


def exclusive_rows(embedding) -> int | None:
    """Rows the layer gives one id alone: CAFE's hot rows, offline separation's
    counted ids, AdaEmbed's resident rows; None for the other kinds."""
    if isinstance(embedding, CafeEmbeddingCollection):
        return int(embedding.layout.hot_rows)
    if isinstance(embedding, OfflineSeparationEmbeddingCollection):
        return int(embedding.hot_rows)
    if isinstance(embedding, AdaEmbedEmbeddingCollection):
        return int(embedding.num_rows)
    return None


def _build_variables(network, dataset) -> None:
    """Creates the model's and the optimizer's variables before `fit`: a first
    `fit` that creates them traces its step function twice (once to create them,
    once without), which costs seconds per run for models with many features."""
    for batch in dataset.take(1):  # none in an empty dataset: `fit` says so itself
        network(batch[0], training=False)
        network.optimizer.build(network.trainable_variables)


class _Throughput(tf_keras.callbacks.Callback):
    """Training samples per second over all epochs, from the end of the first batch
    (tracing excluded); batches count as full ones."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.samples_per_sec = float("nan")

    def on_train_batch_end(self, batch, logs=None):
        if not hasattr(self, "_start"):
            self._start, self._batches = time.perf_counter(), 0
        else:
            self._batches += 1

    def on_train_end(self, logs=None):
        elapsed = time.perf_counter() - getattr(self, "_start", time.perf_counter())
        if getattr(self, "_batches", 0) > 0 and elapsed > 0:
            self.samples_per_sec = self._batches * self.batch_size / elapsed


# Batch size of the counting pass of the "offline" kind (large: only numpy work per batch).
_COUNTING_BATCH = 1 << 16


def _build(
    kind,
    data,
    compression_ratio,
    budget_bytes,
    embedding_dim,
    model,
    learning_rate,
    optimizer,
    migrate_every,
    reallocate_every,
    batch_size,
    seed,
    model_options,
    cafe_options,
):
    """(compiled model, its embedding layer, fit callbacks, throughput meter) of one run."""
    if seed is not None:
        tf_keras.utils.set_random_seed(seed)
    frequencies = None
    if kind == "offline":  # the oracle's pass over the training data, before training
        frequencies = count_frequencies(data.train_dataset(_COUNTING_BATCH), data.field_names)
    embedding = make_embedding(
        kind,
        data.vocabulary_sizes,
        embedding_dim,
        compression_ratio,
        budget_bytes,
        frequencies=frequencies,
        **cafe_options,
    )
    network = MODELS[model](embedding, **(model_options or {}))
    network.compile(optimizer=OPTIMIZERS[optimizer](learning_rate))
    throughput = _Throughput(batch_size)
    callbacks = [throughput]
    if kind.startswith("cafe"):
        callbacks.append(CafeMigration(every_n_steps=migrate_every))
    if kind == "adaembed":
        callbacks.append(AdaEmbedReallocation(every_n_steps=reallocate_every))
    return network, embedding, callbacks, throughput


def train_and_evaluate(
    kind: str,
    data,
    compression_ratio: float,
    embedding_dim: int = 16,
    batch_size: int = 1024,
    model: str = "dlrm",
    learning_rate: float = 1e-3,
    epochs: int = 1,
    verbose: int = 1,
    migrate_every: int = 1,
    optimizer: str = "adam",
    seed: int | None = 0,
    model_options: dict | None = None,
    reallocate_every: int = 20,
    budget_bytes: int | None = None,
    on_trained: Callable[[tf_keras.Model], None] | None = None,
    callbacks: list[tf_keras.callbacks.Callback] | None = None,
    **cafe_options,
) -> RunResult:
    """Trains one model on `data.train_dataset` in time order, evaluates on `data.test_dataset`.

    Args:
      kind: see `make_embedding`. "offline" first counts the ids of the
        training data (its frequencies), as the oracle does.
      data: a cafe_tf dataset (`train_dataset`, `test_dataset`, `vocabulary_sizes`).
      compression_ratio: full bytes / budget (ignored when `budget_bytes` is given).
      embedding_dim: D.
      batch_size: training and evaluation batch size.
      model: "dlrm" or "dcn".
      learning_rate: of the optimizer.
      optimizer: "adagrad", "adam" or "sgd".
      epochs: passes over the training days (the paper: one).
      verbose: Keras verbosity (progress bars with 1).
      migrate_every: batches between CAFE migrations.
      seed: seeds Python, NumPy and TF (the model's initial weights) first; None leaves them.
      model_options: extra constructor arguments of the model.
      reallocate_every: batches between AdaEmbed reallocations.
      budget_bytes: the budget in bytes, instead of `compression_ratio`.
      on_trained: called with the trained model after evaluation (e.g. to save it).
      callbacks: more `fit` callbacks, run after the run's own (CAFE's migration).
      **cafe_options: extra `CafeConfig` fields for the CAFE kinds, or
        `exclusive_rows` for "offline" (`make_embedding`).

    Returns:
      A `RunResult`.
    """
    network, embedding, own_callbacks, throughput = _build(
        kind,
        data,
        compression_ratio,
        budget_bytes,
        embedding_dim,
        model,
        learning_rate,
        optimizer,
        migrate_every,
        reallocate_every,
        batch_size,
        seed,
        model_options,
        cafe_options,
    )
    train = data.train_dataset(batch_size)
    _build_variables(network, train)
    history = network.fit(
        train, epochs=epochs, verbose=verbose, callbacks=own_callbacks + list(callbacks or [])
    )
    metrics = network.evaluate(data.test_dataset(batch_size), verbose=0, return_dict=True)
    if "auc" not in metrics:  # Keras reports no metric when it saw no test batch
        raise ValueError("the test data holds no examples")
    if on_trained is not None:
        on_trained(network)
    if budget_bytes is not None:
        full = budget_lib.full_table_bytes(list(data.vocabulary_sizes.values()), embedding_dim)
        compression_ratio = full / budget_bytes
    # CAFE: share of the training lookups its hot rows served; offline: share of the
    # counted lookups its exclusive rows serve.
    share = getattr(embedding, "hot_lookup_share", None)
    for layer in find_cafe_layers(network):
        share = history.history.get(f"{layer.name}_hot_lookup_share", [None])[-1]
    return RunResult(
        kind=kind,
        compression_ratio=1.0 if kind == "full" else compression_ratio,
        auc=float(metrics["auc"]),
        logloss=float(metrics["logloss"]),
        memory_bytes=int(embedding.memory_bytes()),
        train_samples_per_sec=throughput.samples_per_sec,
        hot_lookup_share=share,
        exclusive_rows=exclusive_rows(embedding),
    )


def train_day_by_day(
    kind: str,
    data,
    compression_ratio: float,
    embedding_dim: int = 16,
    batch_size: int = 1024,
    model: str = "dlrm",
    learning_rate: float = 1e-3,
    migrate_every: int = 1,
    optimizer: str = "adam",
    seed: int | None = 0,
    model_options: dict | None = None,
    reallocate_every: int = 20,
    **cafe_options,
) -> list[dict[str, float]]:
    """Trains on day d, then evaluates on day d + 1, for every day d but the last.

    One model goes through the days in time order (one pass each), so each
    evaluation measures how well it predicts the next day, after drift. The
    data must have days (`num_days`, `day_dataset`), as `SyntheticCriteo`.
    Arguments are those of `train_and_evaluate`; "offline" counts the ids of
    all training days up front, as the oracle does.

    Returns:
      Per training day: {"day": d, "auc": AUC on day d + 1, "logloss": ...}.
    """
    network, _, callbacks, _ = _build(
        kind,
        data,
        compression_ratio,
        None,
        embedding_dim,
        model,
        learning_rate,
        optimizer,
        migrate_every,
        reallocate_every,
        batch_size,
        seed,
        model_options,
        cafe_options,
    )
    results = []
    for day in range(data.config.num_days - 1):
        network.fit(data.day_dataset(day, batch_size), epochs=1, verbose=0, callbacks=callbacks)
        metrics = network.evaluate(
            data.day_dataset(day + 1, batch_size), verbose=0, return_dict=True
        )
        results.append(
            {"day": day, "auc": float(metrics["auc"]), "logloss": float(metrics["logloss"])}
        )
    return results
