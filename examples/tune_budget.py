"""Tunes CAFE under a memory cap on the built-in synthetic Criteo-like data.

A DLRM with one CAFE embedding collection over the 26 categorical fields is
trained for each configuration keras-tuner proposes (compression ratio, hot
share, threshold, decay half-life, multi-level on/off); every configuration keeps
the CAFE layer within `--cap-kib`. Prints a table of all trials, the best
configuration with its validation AUC and bytes, and the test AUC of a model
retrained with it (a held-out day the search never saw). The defaults run in a
few minutes on 2 CPU cores.

Usage:
  TF_USE_LEGACY_KERAS=1 python examples/tune_budget.py --tuner bayesian --max-trials 8
"""

import os

# TFRS and cafe_tf are Keras 2: tf.keras must mean tf_keras from the first TF import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Hides TF's C++ info and warning lines (e.g. each cached dataset's end of sequence).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import tempfile
import time

import tf_keras

from cafe_tf import budget
from cafe_tf.callbacks import CafeMigration
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.layers import CafeEmbeddingCollection
from cafe_tf.models import DLRM
from cafe_tf.tuning import TUNERS, CafeSearchSpace, tune


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuner", choices=sorted(TUNERS), default="random")
    parser.add_argument("--max-trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--cap-kib",
        type=float,
        default=64.0,
        help="most KiB the CAFE layer may hold (tables, sketch, bookkeeping)",
    )
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument(
        "--rows-per-day",
        type=int,
        default=20_000,
        help="4 days are generated: 2 to train, 1 to validate, 1 to test",
    )
    parser.add_argument(
        "--scale", type=float, default=1e-3, help="field cardinalities = Criteo Kaggle's times this"
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument(
        "--directory", default=None, help="keras-tuner's directory (default: a temporary one)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    data = SyntheticCriteo(
        SyntheticCriteoConfig(
            seed=args.seed, rows_per_day=args.rows_per_day, num_days=4, scale=args.scale
        )
    )
    # Generated once, then replayed from memory by every trial.
    train = data.days_dataset([0, 1], args.batch_size).cache()
    validation = data.day_dataset(2, 4096).cache()

    def build_model(config):
        embeddings = CafeEmbeddingCollection(data.vocabulary_sizes, config, name="cafe")
        model = DLRM(
            embeddings, embedding_dim=config.embedding_dim, bottom_units=(64,), top_units=(64, 32)
        )
        model.compile(optimizer=tf_keras.optimizers.Adam(0.005))
        return model

    # Thresholds are in normalised importance per decay period: a short run needs
    # lower ones than the paper's Criteo-sized 10-500.
    space = CafeSearchSpace(
        embedding_dim=args.embedding_dim, compression_ratio=(2.0, 200.0), threshold=(2.0, 200.0)
    )
    cap_bytes = int(args.cap_kib * 1024)
    full = budget.full_table_bytes(list(data.vocabulary_sizes.values()), args.embedding_dim)
    print(
        f"{len(data.vocabulary_sizes)} fields, {sum(data.vocabulary_sizes.values()):,} ids; "
        f"full tables {full:,} bytes; cap {cap_bytes:,} bytes "
        f"(compression ratio >= {full / cap_bytes:.1f})"
    )

    start = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        result = tune(
            build_model,
            train,
            validation,
            vocabulary_sizes=data.vocabulary_sizes,
            cap_bytes=cap_bytes,
            space=space,
            tuner=args.tuner,
            max_trials=args.max_trials,
            epochs=args.epochs,
            directory=args.directory or scratch,
            project_name="tune_budget",
            seed=args.seed,
        )
    print(f"\n{len(result.trials)} trials in {time.time() - start:.0f} s\n")
    print(result.format_table())
    best = result.best_config
    print(
        f"\nbest: {result.objective} {result.best_metric:.4f}, {result.best_bytes:,} bytes "
        f"(cap {cap_bytes:,}); compression_ratio={best.compression_ratio:.4g}, "
        f"hot_share={best.hot_share:.3f}, threshold={best.threshold:.3g}, "
        f"decay_half_life={best.decay_half_life:.3g}, multi_level={best.multi_level}"
    )

    # The best validation AUC is biased upwards (it picked the winner): retrain the
    # best configuration and test it on the day the search never saw.
    model = build_model(best)
    model.fit(train, epochs=args.epochs, verbose=0, callbacks=[CafeMigration()])
    test = model.evaluate(data.day_dataset(3, 4096), return_dict=True, verbose=0)
    print(f"best configuration retrained: test AUC {test['auc']:.4f} on the held-out day")


if __name__ == "__main__":
    main()
