"""CAFE over time: train on day d, test on day d + 1, for CAFE, hash, AdaEmbed and offline.

One model per kind goes through the synthetic drifting log day by day (one pass
each, in time order) and is evaluated on the next day after each, at one
compression ratio (default 1000x). Offline separation counts the ids of all
training days before training (the oracle); CAFE and AdaEmbed follow the
drift online. Prints AUC per day, and writes benchmarks/out/<name>.{json,md,png} (over_time).

    python benchmarks/over_time.py                         # Criteo shape, 1000x, DLRM
    python benchmarks/over_time.py --seeds 0 1 2 --ratio 100
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from cafe_tf.data import SHAPES, SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.experiment import (
    EMBEDDINGS,
    MODELS,
    SMALL_MODEL_OPTIONS,
    add_run_arguments,
    train_day_by_day,
)

OUT = Path(__file__).resolve().parent / "out"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kinds", nargs="+", default=["cafe", "hash", "adaembed", "offline"], choices=EMBEDDINGS
    )
    parser.add_argument("--ratio", type=float, default=1000)
    parser.add_argument("--shape", default="criteo_kaggle", choices=list(SHAPES))
    parser.add_argument("--model", default="dlrm", choices=list(MODELS))
    add_run_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--offline-hot-share",
        type=float,
        default=None,
        help="budget share of offline's exclusive rows (default: CAFE's)",
    )
    parser.add_argument(
        "--name", default="over_time", help="output files benchmarks/out/<name>.{json,md,png}"
    )
    args = parser.parse_args()

    results = {}  # kind -> [per seed: [AUC on day d + 1 for each d]]
    for seed in args.seeds:
        data = SyntheticCriteo(
            SyntheticCriteoConfig(
                seed=seed,
                rows_per_day=args.rows_per_day,
                num_days=args.days,
                scale=args.scale,
                shape=args.shape,
            )
        )
        for kind in args.kinds:
            start = time.perf_counter()
            tf.keras.backend.clear_session()
            days = train_day_by_day(
                kind,
                data,
                args.ratio,
                embedding_dim=args.dim,
                batch_size=args.batch_size,
                model=args.model,
                learning_rate=args.learning_rate,
                seed=seed,
                model_options=SMALL_MODEL_OPTIONS[args.model],
                **(
                    {"hot_share": args.offline_hot_share}
                    if kind == "offline" and args.offline_hot_share
                    else {}
                ),
            )
            results.setdefault(kind, []).append([d["auc"] for d in days])
            print(
                f"seed {seed} {kind:>8}: "
                + " ".join(f"{d['auc']:.4f}" for d in days)
                + f"  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(
        json.dumps({"args": vars(args), "auc": results}, indent=2)
    )
    test_days = list(range(1, args.days))
    lines = [
        f"Test AUC on day d + 1 after training on days 0..d, {args.shape}, "
        f"{args.model.upper()}, {args.ratio:g}x (mean +- std over seeds "
        f"{', '.join(map(str, args.seeds))})",
        "",
        "| kind | " + " | ".join(f"day {d}" for d in test_days) + " |",
        "|---" * (len(test_days) + 1) + "|",
    ]
    for kind, runs in results.items():
        runs = np.array(runs)
        lines.append(
            f"| {kind} | "
            + " | ".join(
                f"{m:.4f}" + (f" +- {s:.4f}" if len(runs) > 1 else "")
                for m, s in zip(runs.mean(0), runs.std(0))
            )
            + " |"
        )
    table = "\n".join(lines)
    (OUT / f"{args.name}.md").write_text(table)
    print("\n" + table)

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, runs in results.items():
        runs = np.array(runs)
        ax.errorbar(test_days, runs.mean(0), yerr=runs.std(0), marker="o", capsize=3, label=kind)
    ax.set_xlabel("test day (trained on the days before)")
    ax.set_ylabel("test AUC")
    ax.set_title(f"{args.shape}, {args.model.upper()}, {args.ratio:g}x")
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / f"{args.name}.png", dpi=120)
    print(f"wrote {OUT / args.name}.png, .md, .json")


if __name__ == "__main__":
    main()
