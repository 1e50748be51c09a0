"""The main job: CAFE vs hashing vs full embeddings on synthetic Criteo-like data.

Trains a DLRM once per embedding kind on the built-in synthetic click log
(days in time order, one pass, test on the last day; no download) under the
same memory budget, and prints test AUC, log loss, bytes held and training
samples/s for each.

    python -m cafe_tf.main [--compression-ratio 100] [--rows-per-day 50000] ...
"""
import argparse

from cafe_tf import budget
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.experiment import EMBEDDINGS, train_and_evaluate

# Small MLPs: the embeddings are what this job compares, and 2 cores are slow.
MODEL_OPTIONS = {"bottom_units": (64, 32), "top_units": (64, 32)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compression-ratio", type=float, default=100.0)
    parser.add_argument("--kinds", nargs="+", default=["cafe", "hash", "full"],
                        choices=EMBEDDINGS)
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1e-3,
                        help="cardinalities = Criteo Kaggle's times this")
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)

    data = SyntheticCriteo(SyntheticCriteoConfig(
        seed=args.seed, rows_per_day=args.rows_per_day, num_days=args.days, scale=args.scale))
    vocabulary = list(data.vocabulary_sizes.values())
    full_bytes = budget.full_table_bytes(vocabulary, args.embedding_dim)
    print(f"Synthetic Criteo-like data: {args.days - 1} training days + 1 test day of "
          f"{args.rows_per_day:,} rows, 26 fields, {sum(vocabulary):,} distinct ids; "
          f"full tables {full_bytes:,} bytes; budget 1/{args.compression_ratio:g} = "
          f"{int(full_bytes // args.compression_ratio):,} bytes")
    results = []
    for kind in args.kinds:
        print(f"\n== {kind} ==", flush=True)
        try:
            results.append(train_and_evaluate(
                kind, data, args.compression_ratio, embedding_dim=args.embedding_dim,
                batch_size=args.batch_size, learning_rate=args.learning_rate,
                verbose=args.verbose, seed=args.seed, model_options=MODEL_OPTIONS))
        except budget.BudgetTooSmallError as err:  # this kind's minimum layout does not fit the budget
            print(f"skipped: {err}")
    print(f"\n{'embedding':<10} {'ratio':>7} {'test AUC':>9} {'log loss':>9} {'bytes held':>12} "
          f"{'samples/s':>10} {'hot lookups':>11}")
    for r in results:
        share = "" if r.hot_lookup_share is None else f"{r.hot_lookup_share:.1%}"
        print(f"{r.kind:<10} {r.compression_ratio:>6g}x {r.auc:>9.4f} {r.logloss:>9.4f} "
              f"{r.memory_bytes:>12,} {r.train_samples_per_sec:>10,.0f} {share:>11}")
    return results


if __name__ == "__main__":
    main()
