"""Test AUC and log loss vs compression ratio for every embedding kind, model and data shape.

The paper's comparison grid: full, hash, Q-R, MDE, AdaEmbed, offline separation,
CAFE and CAFE multi-level x ratios 10, 100, 1000, 10000 x DLRM and DCN x the
synthetic drifting logs shaped like Criteo Kaggle, Avazu and KDD12 (days in
time order, one pass, test on the last day); MovieLens-100K on request (time
order, each user's latest 20% as test, 3 passes). Small MLPs, Adam. Every
compressed kind gets the same budget (full bytes / ratio). A kind whose
minimum layout does not fit a budget is reported as "n/a".

Each (shape, seed) is generated once and held in memory; every run of it
trains on the same arrays. Each finished cell (one shape, seed, model, kind
and ratio) is appended to `<cells>/<shape>_seed<seed>.jsonl` at once, so a
grid can run in pieces, in parallel processes (one per shape or seed) and be
resumed: cells already stored with the same sizes are skipped, unless
`--redo` asks to run them again; the last stored line of a cell wins. The
table (mean +- std over seeds, `<name>.md`) and plot (`<name>.png`) are made
from every stored cell of the selected shapes, seeds and models, whichever
`--kinds` ran. They go to benchmarks/out/ (not committed) unless `--out` says otherwise;
the committed tables were written with `--out benchmarks/results`.

    python benchmarks/quality.py --seeds 0 1 2                     # the whole grid
    python benchmarks/quality.py --seeds 0 1 2 --out benchmarks/results   # the committed one
    python benchmarks/quality.py --datasets avazu --seeds 1        # one piece of it
    python benchmarks/quality.py --kinds cafe cafe_ml --seeds 0 1 2 --redo   # CAFE's cells again
    python benchmarks/quality.py --seeds 0 1 2 --table-only        # table and plot only
    python benchmarks/quality.py --datasets movielens --ratios 10 100 --models dlrm
"""

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from cafe_tf.budget import BudgetTooSmallError
from cafe_tf.data import SHAPES, MovieLens100K, SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.data.batch import CTRData, dataset_from_arrays
from cafe_tf.experiment import (
    EMBEDDINGS,
    MODELS,
    SMALL_MODEL_OPTIONS,
    add_run_arguments,
    train_and_evaluate,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"  # scratch (gitignored): a run never overwrites the committed results/
# What a cell's result depends on besides its key: cells of other sizes are neither
# skipped nor tabled.
SIZE_ARGS = ("rows_per_day", "days", "scale", "dim", "batch_size", "learning_rate", "test_rows")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class InMemoryData(CTRData):
    """A synthetic log generated once into numpy arrays: every run of a (shape, seed)
    trains on the same rows without generating them again, through one `tf.data`
    pipeline per batch size. Same rows and order as `SyntheticCriteo`'s datasets;
    the test day may be capped to its first `test_rows` rows."""

    def __init__(self, data: SyntheticCriteo, test_rows=None):
        super().__init__(data.field_names, data.vocabulary_sizes, data.num_dense)
        self.config = data.config
        days = data.config.num_days
        self._train = self._arrays(data, range(days - 1))
        self._test = tuple(a[:test_rows] for a in self._arrays(data, [days - 1]))
        self._datasets = {}

    @staticmethod
    def _arrays(data, days):
        chunks = [chunk for day in days for chunk in data.chunks(day)]
        return tuple(
            np.concatenate([getattr(c, name) for c in chunks]) for name in ("dense", "ids", "label")
        )

    @property
    def train_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dense, ids, label) of the training days, in the order `train_dataset` reads them."""
        return self._train

    def _dataset(self, split, batch_size):
        if (split, batch_size) not in self._datasets:
            arrays = self._train if split == "train" else self._test
            self._datasets[split, batch_size] = dataset_from_arrays(
                *arrays, self.field_names, batch_size
            )
        return self._datasets[split, batch_size]

    def train_dataset(self, batch_size):
        return self._dataset("train", batch_size)

    def test_dataset(self, batch_size):
        return self._dataset("test", batch_size)


def sizes(args) -> dict:
    return {name: getattr(args, name) for name in SIZE_ARGS}


def cells_path(args, shape, seed) -> Path:
    cells = Path(args.cells) if args.cells else Path(args.out) / args.name
    return cells / f"{shape}_seed{seed}.jsonl"


def cell_key(cell) -> tuple:
    return cell["shape"], cell["seed"], cell["model"], cell["kind"], float(cell["ratio"])


def read_cells(paths, args=None) -> dict:
    """{key: cell} of the cells stored in `paths` (later lines win); with `args`, only
    those measured at its sizes."""
    cells = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            cell = json.loads(line)
            if cell.get("record") != "cell":
                continue
            if args is not None and cell.get("sizes") != sizes(args):
                continue
            cells[cell_key(cell)] = cell
    return cells


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(record) + "\n")


def _commit() -> str:
    """The checkout's commit (+ "-dirty" with uncommitted changes), so that a cell says
    which code measured it."""
    try:

        def run(*cmd):
            return subprocess.run(
                cmd, cwd=HERE, capture_output=True, text=True, check=True
            ).stdout.strip()

        commit = run("git", "rev-parse", "--short", "HEAD")
        return commit + (
            "-dirty"
            if run("git", "status", "--porcelain", "--", "cafe_tf", "benchmarks/quality.py")
            else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_data(args, shape, seed):
    """(data, training options) of a shape and seed."""
    if shape == "movielens":  # small: a few passes, each user's latest 20% as test
        return MovieLens100K(split="per_user"), {"epochs": 3, "batch_size": 256}
    generated = SyntheticCriteo(
        SyntheticCriteoConfig(
            seed=seed,
            rows_per_day=args.rows_per_day,
            num_days=args.days,
            scale=args.scale,
            shape=shape,
        )
    )
    return (InMemoryData(generated, args.test_rows), {"epochs": 1, "batch_size": args.batch_size})


def run_grid(args) -> None:
    """Runs every selected cell not stored yet (or all of them with --redo), seed by seed
    so that a partial grid covers every shape; appends each to its file."""
    commit = _commit()
    for seed in args.seeds:
        for shape in args.datasets:
            path = cells_path(args, shape, seed)
            done = {} if args.redo else read_cells([path], args)
            todo = [
                (model, ratio, kind)
                for model in args.models
                for ratio in args.ratios
                for kind in args.kinds
                if (shape, seed, model, kind, 1.0 if kind == "full" else float(ratio)) not in done
                and (kind != "full" or ratio == args.ratios[0])
            ]
            if not todo:
                continue
            start, cpu = time.perf_counter(), cpu_seconds()
            data, options = load_data(args, shape, seed)
            _append(
                path,
                {
                    "record": "data",
                    "shape": shape,
                    "seed": seed,
                    "sizes": sizes(args),
                    "seconds": time.perf_counter() - start,
                    "cpu_seconds": cpu_seconds() - cpu,
                },
            )
            print(
                f"\n### {shape}, seed {seed}: {sum(data.vocabulary_sizes.values()):,} "
                f"distinct ids in {len(data.field_names)} fields; {len(todo)} cells to run",
                flush=True,
            )
            for model, ratio, kind in todo:
                cell = run_one(args, seed, shape, data, options, model, ratio, kind)
                _append(path, {**cell, "sizes": sizes(args), "commit": commit})


def run_one(args, seed, shape, data, options, model, ratio, kind) -> dict:
    """One train-and-evaluate run as a cell; AUC None where the budget is too small."""
    start, cpu = time.perf_counter(), cpu_seconds()
    tf.keras.backend.clear_session()
    label = f"{shape:>13} s{seed} {model:>4} {kind:>8} {ratio:>7g}x"
    cell = {
        "record": "cell",
        "shape": shape,
        "seed": seed,
        "model": model,
        "kind": kind,
        "ratio": 1.0 if kind == "full" else float(ratio),
        "auc": None,
        "logloss": None,
        "memory_bytes": None,
        "exclusive_rows": None,
        "hot_lookup_share": None,
        "train_samples_per_sec": None,
    }
    try:
        result = train_and_evaluate(
            kind,
            data,
            ratio,
            embedding_dim=args.dim,
            model=model,
            learning_rate=args.learning_rate,
            verbose=0,
            seed=seed,
            model_options=SMALL_MODEL_OPTIONS[model],
            **options,
            **_cafe_options(args),
        )
    except BudgetTooSmallError as err:  # this kind's minimum layout does not fit
        print(f"{label}   n/a ({str(err)[:70]}...)", flush=True)
    else:
        cell.update(
            {name: value for name, value in dataclasses.asdict(result).items() if name in cell}
        )
        print(
            f"{label}  AUC {result.auc:.4f}  logloss {result.logloss:.4f}  "
            f"{result.memory_bytes:>11,} B  rows {result.exclusive_rows}  "
            f"({time.perf_counter() - start:.0f} s, CPU {cpu_seconds() - cpu:.0f} s)",
            flush=True,
        )
    cell.update(seconds=time.perf_counter() - start, cpu_seconds=cpu_seconds() - cpu)
    return cell


def _cafe_options(args):
    """CafeConfig overrides from the command line (the paper's settings otherwise)."""
    return {
        name: value
        for name, value in (
            ("threshold", args.threshold),
            ("hot_share", args.hot_share),
            ("share_hashed_tables", args.share_hashed_tables),
        )
        if value is not None
    }


# ----- table and plot ---------------------------------------------------------------------


def mean_std(cells, kind, ratio, metric="auc"):
    """(mean, std, n) of `metric` over the seeds' cells of (kind, ratio); None if no cell
    has it. The full table has no ratio: its cells count at every ratio."""
    values = [
        c[metric]
        for c in cells
        if c["kind"] == kind
        and c.get(metric) is not None
        and (kind == "full" or c["ratio"] == float(ratio))
    ]
    return (float(np.mean(values)), float(np.std(values)), len(values)) if values else None


def _fmt(stats, digits=4):
    mean, std, n = stats
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} +- {std:.{digits}f}"


def panels(cells, args):
    """[((shape, model), cells of it)] in the order of the arguments."""
    out = []
    for shape in args.datasets:
        for model in args.models:
            subset = [c for c in cells if c["shape"] == shape and c["model"] == model]
            if subset:
                out.append(((shape, model), subset))
    return out


def best_kinds(subset, ratio, kinds):
    """The compressed kinds with the highest mean AUC at `ratio` (ties all count)."""
    stats = {kind: mean_std(subset, kind, ratio) for kind in kinds if kind != "full"}
    best = max((s[0] for s in stats.values() if s), default=None)
    return {kind for kind, s in stats.items() if s and s[0] == best}


def complete_seeds(cells):
    """(cells of the seeds that hold every cell of their (shape, model), {(shape, model):
    [(seed, cells held, cells expected)] of the others}): so that the kinds of a table row
    are averaged over the same seeds, a partly run seed is left out of its panel."""
    kept, partial = [], {}
    for panel in sorted({(c["shape"], c["model"]) for c in cells}):
        subset = [c for c in cells if (c["shape"], c["model"]) == panel]
        expected = {(c["kind"], c["ratio"]) for c in subset}
        for seed in sorted({c["seed"] for c in subset}):
            held = [c for c in subset if c["seed"] == seed]
            if len(held) == len(expected):
                kept += held
            else:
                partial.setdefault(panel, []).append((seed, len(held), len(expected)))
    return kept, partial


def markdown_table(cells, args) -> str:
    """Per (shape, model): AUC (mean +- std over the seeds stored) of every kind and
    ratio; the best compressed kind of each ratio in bold."""
    kinds = [k for k in EMBEDDINGS if k != "full" and any(c["kind"] == k for c in cells)]
    lines = [
        "Test AUC, mean +- std over the seeds (population std); n/a: the budget cannot "
        "hold the kind's smallest layout; best compressed kind in bold.",
        "",
    ]
    for (shape, model), subset in panels(cells, args):
        seeds = sorted({c["seed"] for c in subset})
        full = mean_std(subset, "full", None)
        lines += [
            f"**{shape}, {model.upper()}** (seeds {', '.join(map(str, seeds))}"
            + (f"; full: AUC {_fmt(full)}" if full else "")
            + ")",
            "",
            "| ratio | " + " | ".join(kinds) + " |",
            "|---" * (len(kinds) + 1) + "|",
        ]
        for ratio in args.ratios:
            best = best_kinds(subset, ratio, kinds)
            ran = {c["kind"] for c in subset if c["ratio"] == float(ratio)}
            row = []
            for kind in kinds:
                stats = mean_std(subset, kind, ratio)
                if stats is None:
                    row.append("n/a" if kind in ran else "not run")
                else:
                    row.append(f"**{_fmt(stats)}**" if kind in best else _fmt(stats))
            lines.append(f"| {ratio:g}x | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def exclusive_table(cells, args) -> str:
    """Per (shape, ratio), DLRM cells: exclusive rows of offline separation, CAFE and
    AdaEmbed, and the share of lookups they serve (offline: of the counted training
    lookups; CAFE: measured during training), means over seeds."""

    def stat(subset, kind, ratio, metric, fmt):
        stats = mean_std(subset, kind, ratio, metric)
        return "" if stats is None else fmt.format(stats[0])

    lines = [
        "| shape | ratio | offline rows | offline share | CAFE hot rows | CAFE share "
        "| CAFE ML hot rows | CAFE ML share | AdaEmbed rows |",
        "|---" * 9 + "|",
    ]
    for shape in args.datasets:
        subset = [c for c in cells if c["shape"] == shape and c["model"] == "dlrm"]
        for ratio in args.ratios:
            row = [
                stat(subset, kind, ratio, metric, fmt)
                for kind, metric, fmt in (
                    ("offline", "exclusive_rows", "{:,.0f}"),
                    ("offline", "hot_lookup_share", "{:.3f}"),
                    ("cafe", "exclusive_rows", "{:,.0f}"),
                    ("cafe", "hot_lookup_share", "{:.3f}"),
                    ("cafe_ml", "exclusive_rows", "{:,.0f}"),
                    ("cafe_ml", "hot_lookup_share", "{:.3f}"),
                    ("adaembed", "exclusive_rows", "{:,.0f}"),
                )
            ]
            if any(row):
                lines.append(f"| {shape} | {ratio:g}x | " + " | ".join(row) + " |")
    return "\n".join(lines)


# CAFE's kinds, and the baselines the issue of beating them names (offline separation
# knows the counts in advance; AdaEmbed is the strongest kind that learns online).
CAFE_KINDS = ("cafe", "cafe_ml")
RIVAL_KINDS = ("offline", "adaembed")


def _best_by_mean(subset, ratio, kinds):
    """The kind of `kinds` with the highest mean AUC at `ratio` (the first on ties), or
    None where none has one."""
    stats = [(mean_std(subset, kind, ratio), kind) for kind in kinds]
    stats = [(s[0], -i, kind) for i, (s, kind) in enumerate(stats) if s]
    return max(stats)[2] if stats else None


def _seed_aucs(subset, kind, ratio):
    """{seed: AUC} of the cells of (kind, ratio) that have one."""
    return {
        c["seed"]: c["auc"]
        for c in subset
        if c["kind"] == kind and c["ratio"] == ratio and c.get("auc") is not None
    }


def margin_table(cells, args) -> str:
    """Per (shape, model, ratio): the better of CAFE's kinds (by mean AUC) minus the
    better of offline separation and AdaEmbed, seed by seed (one seed is one data draw
    and one initialisation for every kind, so the margins pair up): their mean, range and
    how many seeds are at or above 0. Empty where the cells hold no CAFE kind."""
    lines = [
        "| shape, model | ratio | CAFE kind | rival | margin, mean | margin per seed "
        "| seeds at or above |",
        "|---" * 7 + "|",
    ]
    for (shape, model), subset in panels(cells, args):
        for ratio in args.ratios:
            cafe = _best_by_mean(subset, ratio, CAFE_KINDS)
            if cafe is None:
                continue
            rival = _best_by_mean(subset, ratio, RIVAL_KINDS)
            head = f"| {shape}, {model.upper()} | {ratio:g}x | {cafe} |"
            if rival is None:
                ran = any(c["kind"] in RIVAL_KINDS and c["ratio"] == ratio for c in subset)
                if ran:
                    lines.append(head + " none fits | | | |")
                continue
            ours, theirs = _seed_aucs(subset, cafe, ratio), _seed_aucs(subset, rival, ratio)
            margins = [ours[seed] - theirs[seed] for seed in sorted(ours) if seed in theirs]
            ahead = sum(m >= 0 for m in margins)
            lines.append(
                head + f" {rival} | {np.mean(margins):+.4f} | {min(margins):+.4f} to "
                f"{max(margins):+.4f} | {ahead} of {len(margins)} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


def cost_table(paths, args) -> str:
    """Per (shape, seed): cells stored, wall and CPU seconds of data generation and cells."""
    lines = [
        "| shape | seed | cells | wall (min) | CPU (min) | CPU / 2 (min) |",
        "|---|---|---|---|---|---|",
    ]
    for path in paths:
        records = (
            [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
            if Path(path).exists()
            else []
        )
        records = [r for r in records if r.get("sizes") == sizes(args)]
        if not records:
            continue
        latest = {}
        for record in records:  # the last data record and the last line of every cell
            latest[cell_key(record) if record["record"] == "cell" else "data"] = record
        wall = sum(r["seconds"] for r in latest.values()) / 60
        cpu = sum(r["cpu_seconds"] for r in latest.values()) / 60
        lines.append(
            f"| {records[0]['shape']} | {records[0]['seed']} | {len(latest) - 1} | "
            f"{wall:.1f} | {cpu:.1f} | {cpu / 2:.1f} |"
        )
    return "\n".join(lines)


def plot(cells, args, path: Path) -> None:
    """AUC vs ratio (mean, std as error bars) per shape (rows) and model (columns)."""
    shapes = [s for s in args.datasets if any(c["shape"] == s for c in cells)]
    fig, axes = plt.subplots(
        max(1, len(shapes)),
        len(args.models),
        figsize=(5.5 * len(args.models), 4 * max(1, len(shapes))),
        squeeze=False,
    )
    for i, shape in enumerate(shapes):
        for j, model in enumerate(args.models):
            ax = axes[i][j]
            subset = [c for c in cells if c["shape"] == shape and c["model"] == model]
            for kind in [k for k in EMBEDDINGS if any(c["kind"] == k for c in subset)]:
                points = [(ratio, mean_std(subset, kind, ratio)) for ratio in args.ratios]
                points = [(ratio, s[0], s[1]) for ratio, s in points if s]
                if kind == "full" and points:
                    ax.axhline(points[0][1], color="black", linestyle="--", label="full")
                elif points:
                    ratios, means, stds = zip(*points)
                    ax.errorbar(ratios, means, yerr=stds, marker="o", capsize=3, label=kind)
            ax.set_xscale("log")
            ax.set_xlabel("compression ratio")
            ax.set_ylabel("test AUC")
            ax.set_title(f"{shape}, {model.upper()}")
            ax.legend(fontsize=7)
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(args, paths) -> str:
    """Table (`<out>/<name>.md`) and plot (`.png`) of the stored cells of the selected
    shapes, seeds and models (every kind stored, not only those run); returns the table."""
    cells = [
        c
        for c in read_cells(paths, args).values()
        if c["shape"] in args.datasets and c["seed"] in args.seeds and c["model"] in args.models
    ]
    cells, partial = complete_seeds(cells)
    left_out = [
        f"{shape}, {model.upper()}, seed {seed}: {held} of {expected} cells"
        for (shape, model), seeds in partial.items()
        for seed, held, expected in seeds
    ]
    margins = margin_table(cells, args)
    text = "\n".join(
        [
            markdown_table(cells, args),
            *(
                ["Seeds left out of the table, not fully run: " + "; ".join(left_out) + ".", ""]
                if left_out
                else []
            ),
            *(
                [
                    "CAFE's margin over the better of offline separation and AdaEmbed (test "
                    "AUC; kinds chosen by mean, margins seed by seed):",
                    "",
                    margins,
                    "",
                ]
                if margins
                else []
            ),
            "Exclusive rows (DLRM, mean over seeds):",
            "",
            exclusive_table(cells, args),
            "",
            "Cost of the stored cells (data generation included):",
            "",
            cost_table(paths, args),
            "",
        ]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text)
    plot(cells, args, out / f"{args.name}.png")
    print("\n" + text + f"\nwrote {out / args.name}.md and .png", flush=True)
    return text


def add_size_arguments(parser) -> None:
    """The options `load_data` and a cell's training read (`SIZE_ARGS`): the benchmarks'
    run arguments, 25,000 rows per day, and --test-rows."""
    add_run_arguments(parser)
    parser.set_defaults(rows_per_day=25_000)
    parser.add_argument(
        "--test-rows",
        type=int,
        default=None,
        help="evaluate on the test day's first rows only (default: all)",
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(SHAPES),
        choices=list(SHAPES) + ["movielens"],
        help="synthetic data shapes, and MovieLens-100K",
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--ratios", type=float, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--kinds", nargs="+", default=list(EMBEDDINGS), choices=EMBEDDINGS)
    add_size_arguments(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="CAFE's k for every ratio (default: the planner's, budget.planned_threshold)",
    )
    parser.add_argument(
        "--hot-share",
        type=float,
        default=None,
        help="CAFE's hot share for every ratio (default: the planner's, budget.planned_hot_share)",
    )
    parser.add_argument(
        "--share-hashed-tables",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="CAFE's hashed rows in one table shared by all features (--share-hashed-tables) or "
        "a table per feature (--no-share-hashed-tables); default: the planner's, shared where "
        "per-feature tables would not fit or would average fewer than 2 rows per feature",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="one run per seed (synthetic data and model weights); the table gives mean +- std",
    )
    parser.add_argument(
        "--redo",
        action="store_true",
        help="run the selected cells even where stored (the new ones win)",
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: table and plot of the stored cells",
    )
    parser.add_argument(
        "--cells",
        default=None,
        help="folder of the cell files <shape>_seed<seed>.jsonl (default <out>/<name>)",
    )
    parser.add_argument(
        "--load",
        nargs="+",
        default=None,
        metavar="JSONL",
        help="table these cell files (merged in order, later lines winning) "
        "instead of those of the selected shapes and seeds; trains nothing",
    )
    parser.add_argument(
        "--out",
        default=str(OUT),
        help="folder of <name>.md and <name>.png (default benchmarks/out; "
        "benchmarks/results holds the committed ones)",
    )
    parser.add_argument("--name", default="quality", help="output files <out>/<name>.{md,png}")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.load:
        return write_outputs(args, args.load)
    if not args.table_only:
        run_grid(args)
    return write_outputs(
        args, [cells_path(args, shape, seed) for seed in args.seeds for shape in args.datasets]
    )


if __name__ == "__main__":
    main()
