"""Test AUC and log loss vs compression ratio: full, hash, Q-R, CAFE, CAFE multi-level.

On the synthetic drifting Criteo-like data (days in time order, one pass, test
on the last day) and on MovieLens-100K (time order, each user's latest 20% as
test, 3 passes). DLRM with small MLPs, Adam. Every
compressed kind gets the same budget (full bytes / ratio). A kind whose
minimum layout does not fit a budget is reported as "n/a". Prints a table,
and writes benchmarks/out/quality.{json,md,png}.

    python benchmarks/quality.py                       # everything (about 10 min on 2 cores)
    python benchmarks/quality.py --seeds 0 1 2         # three seeds, mean +- std
    python benchmarks/quality.py --datasets movielens --ratios 10 100
"""
import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cafe_tf.data import MovieLens100K, SyntheticCriteo, SyntheticCriteoConfig  # noqa: E402
from cafe_tf.budget import BudgetTooSmallError  # noqa: E402
from cafe_tf.experiment import EMBEDDINGS, train_and_evaluate  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def datasets(args, seed):
    """(name, data, training options): synthetic as in the paper (one pass in time
    order); MovieLens is small, so a few passes, each user's latest 20% as test."""
    if "synthetic" in args.datasets:
        yield "synthetic", SyntheticCriteo(SyntheticCriteoConfig(
            seed=seed, rows_per_day=args.rows_per_day, num_days=args.days,
            scale=args.scale)), {"epochs": 1, "batch_size": args.batch_size}
    if "movielens" in args.datasets:
        yield "movielens", MovieLens100K(split="per_user"), {"epochs": 3, "batch_size": 256}


def run_all(args):
    rows = []
    for seed in args.seeds:
        rows += run_seed(args, seed)
    return rows


def run_seed(args, seed):
    """Every (dataset, ratio, kind) with data (synthetic) and model weights from `seed`."""
    rows = []
    for name, data, options in datasets(args, seed):
        print(f"\n### {name}, seed {seed}: {sum(data.vocabulary_sizes.values()):,} distinct ids "
              f"in {len(data.field_names)} fields", flush=True)
        for ratio in args.ratios:
            for kind in args.kinds:
                if kind == "full" and ratio != args.ratios[0]:
                    continue  # one full run per dataset: it has no budget
                start = time.perf_counter()
                tf.keras.backend.clear_session()
                try:
                    result = train_and_evaluate(kind, data, ratio, embedding_dim=args.dim,
                                                learning_rate=args.learning_rate, verbose=0,
                                                seed=seed, **options, **_cafe_options(args),
                                                model_options=dict(bottom_units=(64, 32),
                                                                   top_units=(64, 32)))
                except BudgetTooSmallError as err:  # this kind's minimum layout does not fit
                    print(f"{name:>10} {kind:>8} {ratio:>7g}x   n/a ({str(err)[:70]}...)")
                    rows.append({"dataset": name, "seed": seed, "kind": kind,
                                 "compression_ratio": ratio, "auc": None, "logloss": None,
                                 "memory_bytes": None})
                    continue
                row = {"dataset": name, "seed": seed, **dataclasses.asdict(result)}
                rows.append(row)
                print(f"{name:>10} {kind:>8} {result.compression_ratio:>7g}x  AUC {result.auc:.4f}"
                      f"  logloss {result.logloss:.4f}  {result.memory_bytes:>11,} B  "
                      f"{result.train_samples_per_sec:>8,.0f}/s  "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def _cafe_options(args):
    """CafeConfig overrides from the command line (the paper's settings otherwise)."""
    return {name: value for name, value in (("threshold", args.threshold),
                                            ("hot_share", args.hot_share)) if value is not None}


def _mean_std(rows, kind, ratio, metric):
    """(mean, std) of `metric` over the seeds' runs of (kind, ratio); None if none ran.
    The full table has no ratio: its runs count under the first ratio."""
    values = [r[metric] for r in rows if r["kind"] == kind and r[metric] is not None
              and (kind == "full" or r["compression_ratio"] == ratio)]
    return (float(np.mean(values)), float(np.std(values))) if values else None


def _cell(stats):
    mean, std = stats
    return f"{mean:.4f}" if std == 0 else f"{mean:.4f} +- {std:.4f}"


def write_outputs(rows, args):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "quality.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    lines = []
    for name in args.datasets:
        subset = [r for r in rows if r["dataset"] == name]
        kinds = [k for k in args.kinds if k != "full"]
        full = _mean_std(subset, "full", args.ratios[0], "auc")
        lines += [f"**{name}** (full: AUC {_cell(full)})" if full else f"**{name}**", "",
                  "| ratio | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
        for ratio in args.ratios:
            cells = []
            for kind in kinds:
                auc = _mean_std(subset, kind, ratio, "auc")
                logloss = _mean_std(subset, kind, ratio, "logloss")
                cells.append(f"{_cell(auc)} / {_cell(logloss)}" if auc else "n/a")
            lines.append(f"| {ratio:g}x | " + " | ".join(cells) + " |")
        lines.append("")
    spread = (f"mean +- std over seeds {', '.join(map(str, args.seeds))}"
              if len(args.seeds) > 1 else f"seed {args.seeds[0]}")
    table = "\n".join([f"Test AUC / log loss (higher / lower is better; {spread})", ""] + lines)
    (OUT / "quality.md").write_text(table)
    print("\n" + table)

    fig, axes = plt.subplots(1, len(args.datasets), figsize=(6 * len(args.datasets), 4),
                             squeeze=False)
    for ax, name in zip(axes[0], args.datasets):
        subset = [r for r in rows if r["dataset"] == name]
        for kind in args.kinds:
            points = [(ratio, _mean_std(subset, kind, ratio, "auc")) for ratio in args.ratios]
            points = [(ratio, *stats) for ratio, stats in points if stats]
            if kind == "full" and points:
                ax.axhline(points[0][1], color="black", linestyle="--", label="full")
            elif points:
                ratios, means, stds = zip(*points)
                ax.errorbar(ratios, means, yerr=stds, marker="o", capsize=3, label=kind)
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio")
        ax.set_ylabel("test AUC")
        ax.set_title(name)
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "quality.png", dpi=120)
    print(f"wrote {OUT / 'quality.png'}, quality.md, quality.json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "movielens"],
                        choices=["synthetic", "movielens"])
    parser.add_argument("--ratios", type=float, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--kinds", nargs="+", default=list(EMBEDDINGS), choices=EMBEDDINGS)
    parser.add_argument("--rows-per-day", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=2e-2)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--threshold", type=float, default=None,
                        help="CAFE's k for every ratio (default: the paper's per ratio)")
    parser.add_argument("--hot-share", type=float, default=None,
                        help="CAFE's hot share for every ratio (default: the paper's 1 - h)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one run per seed (synthetic data and model weights); the table "
                             "gives mean +- std")
    args = parser.parse_args()
    write_outputs(run_all(args), args)


if __name__ == "__main__":
    main()
