"""Train-and-evaluate runs that compare embedding kinds under one memory budget.

Shared by `cafe-tf train` (`cafe_tf.cli`) and the benchmarks.
"""
import dataclasses
import time
from typing import Callable, Dict, Optional

import tensorflow as tf
import tf_keras

from cafe_tf import budget as budget_lib
from cafe_tf.callbacks import CafeMigration, find_cafe_layers
from cafe_tf.layers import CafeConfig, CafeEmbeddingCollection
from cafe_tf.layers.baselines import (FullEmbeddingCollection, HashEmbeddingCollection,
                                      QREmbeddingCollection)
from cafe_tf.models import DCN, DLRM

EMBEDDINGS = ("full", "hash", "qr", "cafe", "cafe_ml")
MODELS = {"dlrm": DLRM, "dcn": DCN}
OPTIMIZERS = {"adagrad": tf_keras.optimizers.Adagrad, "adam": tf_keras.optimizers.Adam,
              "sgd": tf_keras.optimizers.SGD}


def make_embedding(kind: str, vocabulary_sizes: Dict[str, int], embedding_dim: int,
                   compression_ratio: Optional[float] = None,
                   budget_bytes: Optional[int] = None, **cafe_options) -> tf_keras.layers.Layer:
    """An embedding collection of `kind` sized to full bytes / `compression_ratio`
    (or to `budget_bytes`).

    Args:
      kind: "full", "hash", "qr", "cafe" or "cafe_ml" (CAFE with multi-level hashing).
      vocabulary_sizes: {feature: distinct ids}.
      embedding_dim: D.
      compression_ratio: the budget as full bytes / ratio; ignored for "full".
      budget_bytes: the budget in bytes, instead of `compression_ratio`.
      **cafe_options: extra `CafeConfig` fields for the CAFE kinds.
    """
    budget = ({"compression_ratio": compression_ratio} if budget_bytes is None
              else {"budget_bytes": budget_bytes})
    if kind == "full":
        return FullEmbeddingCollection(vocabulary_sizes, embedding_dim, name="full")
    if kind == "hash":
        # The byte budget, not the per-field ceil(n_f / ratio) rows, which overshoots it
        # where fields are small.
        budget = budget_lib.resolve_budget(list(vocabulary_sizes.values()), embedding_dim,
                                           **budget)
        return HashEmbeddingCollection(vocabulary_sizes, embedding_dim, budget_bytes=budget,
                                       name="hash")
    if kind == "qr":
        return QREmbeddingCollection(vocabulary_sizes, embedding_dim, name="qr", **budget)
    if kind in ("cafe", "cafe_ml"):
        config = CafeConfig(embedding_dim=embedding_dim, multi_level=kind == "cafe_ml",
                            **budget, **cafe_options)
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
    hot_lookup_share: Optional[float] = None


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


def train_and_evaluate(kind: str, data, compression_ratio: float, embedding_dim: int = 16,
                       batch_size: int = 1024, model: str = "dlrm", learning_rate: float = 1e-3,
                       epochs: int = 1, verbose: int = 1, migrate_every: int = 1,
                       optimizer: str = "adam", seed: Optional[int] = 0,
                       model_options: Optional[dict] = None,
                       budget_bytes: Optional[int] = None,
                       on_trained: Optional[Callable[[tf_keras.Model], None]] = None,
                       **cafe_options) -> RunResult:
    """Trains one model on `data.train_dataset` in time order, evaluates on `data.test_dataset`.

    Args:
      kind: see `make_embedding`.
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
      budget_bytes: the budget in bytes, instead of `compression_ratio`.
      on_trained: called with the trained model after evaluation (e.g. to save it).
      **cafe_options: extra `CafeConfig` fields for the CAFE kinds.

    Returns:
      A `RunResult`.
    """
    if seed is not None:
        tf_keras.utils.set_random_seed(seed)
    embedding = make_embedding(kind, data.vocabulary_sizes, embedding_dim, compression_ratio,
                               budget_bytes, **cafe_options)
    network = MODELS[model](embedding, **(model_options or {}))
    network.compile(optimizer=OPTIMIZERS[optimizer](learning_rate))
    throughput = _Throughput(batch_size)
    callbacks = [throughput]
    if kind.startswith("cafe"):
        callbacks.append(CafeMigration(every_n_steps=migrate_every))
    history = network.fit(data.train_dataset(batch_size), epochs=epochs, verbose=verbose,
                          callbacks=callbacks)
    metrics = network.evaluate(data.test_dataset(batch_size), verbose=0, return_dict=True)
    if "auc" not in metrics:  # Keras reports no metric when it saw no test batch
        raise ValueError("the test data holds no examples")
    if on_trained is not None:
        on_trained(network)
    if budget_bytes is not None:
        full = budget_lib.full_table_bytes(list(data.vocabulary_sizes.values()), embedding_dim)
        compression_ratio = full / budget_bytes
    share = None
    for layer in find_cafe_layers(network):
        share = history.history.get(f"{layer.name}_hot_lookup_share", [None])[-1]
    return RunResult(kind=kind, compression_ratio=1.0 if kind == "full" else compression_ratio,
                     auc=float(metrics["auc"]), logloss=float(metrics["logloss"]),
                     memory_bytes=int(embedding.memory_bytes()),
                     train_samples_per_sec=throughput.samples_per_sec,
                     hot_lookup_share=share)
