"""Test AUC and log loss vs compression ratio for every embedding kind, model and data shape.

The paper's comparison grid: full, hash, Q-R, MDE, AdaEmbed, offline separation,
CAFE and CAFE multi-level x ratios 10, 100, 1000, 10000 x DLRM and DCN x the
synthetic drifting logs shaped like Criteo Kaggle, Avazu and KDD12 (days in
time order, one pass, test on the last day); MovieLens-100K on request (time
order, each user's latest 20% as test, 3 passes). Small MLPs, Adam. Every
compressed kind gets the same budget (full bytes / ratio). A kind whose
minimum layout does not fit a budget is reported as "n/a". Prints a table per
(data, model), and writes benchmarks/out/quality.{json,md,png}.

    python benchmarks/quality.py --datasets criteo_kaggle      # one shape, one seed
    python benchmarks/quality.py --seeds 0 1 2                 # the whole grid, mean +- std
    python benchmarks/quality.py --datasets movielens --ratios 10 100 --models dlrm
    python benchmarks/quality.py --load out/a.json out/b.json --name merged   # table only
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

from cafe_tf.data import SHAPES, MovieLens100K, SyntheticCriteo, SyntheticCriteoConfig  # noqa: E402
from cafe_tf.budget import BudgetTooSmallError  # noqa: E402
from cafe_tf.experiment import (EMBEDDINGS, MODELS, SMALL_MODEL_OPTIONS,  # noqa: E402
                                add_run_arguments, train_and_evaluate)

OUT = Path(__file__).resolve().parent / "out"


def datasets(args, seed):
    """(name, data, training options): synthetic as in the paper (one pass in time
    order); MovieLens is small, so a few passes, each user's latest 20% as test."""
    for shape in SHAPES:
        if shape in args.datasets:
            yield shape, SyntheticCriteo(SyntheticCriteoConfig(
                seed=seed, rows_per_day=args.rows_per_day, num_days=args.days,
                scale=args.scale, shape=shape)), {"epochs": 1, "batch_size": args.batch_size}
    if "movielens" in args.datasets:
        yield "movielens", MovieLens100K(split="per_user"), {"epochs": 3, "batch_size": 256}


def run_all(args):
    rows = []
    for seed in args.seeds:
        for row in run_seed(args, seed):
            rows.append(row)
            _save_json(rows, args)  # a long grid's finished runs survive an interruption
    return rows


def _save_json(rows, args):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}.json").write_text(json.dumps({"args": vars(args), "rows": rows},
                                                      indent=2))


def run_seed(args, seed):
    """Every (dataset, model, ratio, kind) with data (synthetic) and model weights from `seed`."""
    for name, data, options in datasets(args, seed):
        print(f"\n### {name}, seed {seed}: {sum(data.vocabulary_sizes.values()):,} distinct ids "
              f"in {len(data.field_names)} fields", flush=True)
        for model in args.models:
            for ratio in args.ratios:
                for kind in args.kinds:
                    if kind == "full" and ratio != args.ratios[0]:
                        continue  # one full run per dataset and model: it has no budget
                    yield run_one(args, seed, name, data, options, model, ratio, kind)


def run_one(args, seed, name, data, options, model, ratio, kind):
    """One train-and-evaluate run as a table row; AUC None where the budget is too small."""
    start = time.perf_counter()
    tf.keras.backend.clear_session()
    label = f"{name:>13} {model:>4} {kind:>8} {ratio:>7g}x"
    try:
        result = train_and_evaluate(kind, data, ratio, embedding_dim=args.dim, model=model,
                                    learning_rate=args.learning_rate, verbose=0, seed=seed,
                                    model_options=SMALL_MODEL_OPTIONS[model], **options,
                                    **_cafe_options(args))
    except BudgetTooSmallError as err:  # this kind's minimum layout does not fit
        print(f"{label}   n/a ({str(err)[:70]}...)", flush=True)
        return {"dataset": name, "model": model, "seed": seed, "kind": kind,
                "compression_ratio": ratio, "auc": None, "logloss": None, "memory_bytes": None}
    print(f"{label}  AUC {result.auc:.4f}  logloss {result.logloss:.4f}  "
          f"{result.memory_bytes:>11,} B  {result.train_samples_per_sec:>8,.0f}/s  "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return {"dataset": name, "model": model, "seed": seed, **dataclasses.asdict(result)}


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


def _panels(args):
    return [(name, model) for name in args.datasets for model in args.models]


def markdown_table(rows, args) -> str:
    """Per (data, model): AUC (mean +- std over seeds) of every kind and ratio; the best
    compressed kind of each ratio in bold."""
    spread = (f"mean +- std over seeds {', '.join(map(str, args.seeds))}"
              if len(args.seeds) > 1 else f"seed {args.seeds[0]}")
    lines = [f"Test AUC ({spread}; n/a: the budget cannot hold the kind's minimum layout; "
             "best compressed kind in bold)", ""]
    kinds = [k for k in args.kinds if k != "full"]
    for name, model in _panels(args):
        subset = [r for r in rows if r["dataset"] == name and r.get("model", "dlrm") == model]
        if not subset:
            continue
        full = _mean_std(subset, "full", args.ratios[0], "auc")
        lines += [f"**{name}, {model.upper()}**" + (f" (full: AUC {_cell(full)})" if full else ""),
                  "", "| ratio | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
        for ratio in args.ratios:
            stats = {kind: _mean_std(subset, kind, ratio, "auc") for kind in kinds}
            best = max((s[0] for s in stats.values() if s), default=None)
            ran = {r["kind"] for r in subset if r["compression_ratio"] == ratio}
            cells = [("n/a" if kind in ran else "not run") if not s else
                     (f"**{_cell(s)}**" if s[0] == best else _cell(s))
                     for kind, s in stats.items()]
            lines.append(f"| {ratio:g}x | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_outputs(rows, args):
    _save_json(rows, args)
    table = markdown_table(rows, args)
    (OUT / f"{args.name}.md").write_text(table)
    print("\n" + table)

    panels = _panels(args)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (name, model) in zip(axes[0], panels):
        subset = [r for r in rows if r["dataset"] == name and r.get("model", "dlrm") == model]
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
        ax.set_title(f"{name}, {model.upper()}")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / f"{args.name}.png", dpi=120)
    print(f"wrote {OUT / args.name}.png, .md, .json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SHAPES),
                        choices=list(SHAPES) + ["movielens"],
                        help="synthetic data shapes, and MovieLens-100K")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ratios", type=float, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--kinds", nargs="+", default=list(EMBEDDINGS), choices=EMBEDDINGS)
    add_run_arguments(parser)
    parser.add_argument("--threshold", type=float, default=None,
                        help="CAFE's k for every ratio (default: the paper's per ratio)")
    parser.add_argument("--hot-share", type=float, default=None,
                        help="CAFE's hot share for every ratio (default: the paper's 1 - h)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one run per seed (synthetic data and model weights); the table "
                             "gives mean +- std")
    parser.add_argument("--name", default="quality",
                        help="output files benchmarks/out/<name>.{json,md,png}")
    parser.add_argument("--load", nargs="+", default=None, metavar="JSON",
                        help="train nothing: table and plot the rows of these saved runs "
                             "(e.g. one file per model run in parallel)")
    args = parser.parse_args()
    if args.load:
        rows = [row for path in args.load for row in json.loads(Path(path).read_text())["rows"]]
        args.load = None  # what is saved is the merged rows, not where they came from
        write_outputs(rows, args)
    else:
        write_outputs(run_all(args), args)


if __name__ == "__main__":
    main()
