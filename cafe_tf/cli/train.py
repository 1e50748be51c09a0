"""`cafe-tf train`: CAFE against other embeddings, one memory budget, one dataset.

Trains one DLRM (or DCN) per embedding kind, each on the training data in the order
given (one pass by default, as in the CAFE paper), evaluates it on the test data, and
prints test AUC, log loss, bytes held, training samples/s and the share of lookups
served by hot rows. With `--save DIR` it also writes each CAFE model's checkpoint and
a serving SavedModel under `DIR/<kind>/` (see `cafe_tf.cli.saved_run`).
"""

import argparse
import dataclasses
import functools
import json
import os

from cafe_tf import budget as budget_lib
from cafe_tf.cli import criteo_files, saved_run
from cafe_tf.cli.errors import CliError
from cafe_tf.experiment import (
    EMBEDDINGS,
    MODELS,
    OPTIMIZERS,
    SMALL_MODEL_OPTIONS,
    RunResult,
    make_embedding,
    train_and_evaluate,
)

DATA = ("synthetic", "criteo-tsv", "criteo-parquet", "movielens")
CAFE_KINDS = ("cafe", "cafe_ml")
# The built-in synthetic data (`--data synthetic`): 6 training days and 1 test day of a
# 338k-id vocabulary. At the default 100x its skewed head fits CAFE's hot rows (CAFE comes
# close to the full tables and well above hashing) while the full tables still train in
# about two CPU-minutes; at a tenth of the vocabulary 100x leaves too few hot rows.
SYNTHETIC = {"rows_per_day": 50_000, "days": 7, "scale": 0.01}
DEFAULT_RATIO = 100.0


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train and compare embeddings under one memory budget",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        choices=DATA,
        default="synthetic",
        help="synthetic (default): built in, no download; criteo-tsv / "
        "criteo-parquet: your Criteo-format files; movielens: MovieLens-100K "
        "(needs recbole)",
    )
    data.add_argument(
        "--train-files", nargs="+", metavar="FILE", help="criteo-*: training files, in time order"
    )
    data.add_argument(
        "--test-files",
        nargs="+",
        metavar="FILE",
        help="criteo-*: test files, in time order (after the training files)",
    )
    data.add_argument(
        "--vocabulary-sizes",
        metavar="JSON",
        help="criteo-*: a JSON file {field: distinct ids} for C1..C26; it sizes "
        "the budget (default: Criteo Kaggle's counts, 33.8M ids)",
    )
    data.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="criteo-*: stop at a malformed line, naming file and line "
        "(default), or skip it; the lines skipped per file are reported at the "
        "end",
    )
    data.add_argument(
        "--rows-per-day",
        type=_positive(int),
        default=SYNTHETIC["rows_per_day"],
        help="synthetic: rows per day (default %(default)s)",
    )
    data.add_argument(
        "--days",
        type=_at_least(2),
        default=SYNTHETIC["days"],
        help="synthetic: days; the last one is the test day (default %(default)s)",
    )
    data.add_argument(
        "--scale",
        type=_positive(float),
        default=SYNTHETIC["scale"],
        help="synthetic: vocabulary = Criteo Kaggle's times this (default %(default)s)",
    )
    embeddings = parser.add_argument_group("embeddings")
    embeddings.add_argument(
        "--kinds",
        nargs="+",
        choices=EMBEDDINGS,
        default=["cafe", "hash", "full"],
        help="cafe_ml is CAFE with multi-level hashing, qr the "
        "quotient-remainder trick (default: cafe hash full)",
    )
    budget = embeddings.add_mutually_exclusive_group()
    budget.add_argument(
        "--compression-ratio",
        type=_at_least(1.0, float),
        default=None,
        help=f"budget = full table bytes / this (default {DEFAULT_RATIO:g})",
    )
    budget.add_argument(
        "--budget-bytes",
        type=_positive(int),
        default=None,
        help="the budget in bytes, instead of a ratio",
    )
    embeddings.add_argument(
        "--embedding-dim", type=_positive(int), default=16, help="D (default %(default)s)"
    )
    training = parser.add_argument_group("training")
    training.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="dlrm",
        help="small DLRM or DCN networks (default %(default)s)",
    )
    training.add_argument(
        "--epochs",
        type=_positive(int),
        default=1,
        help="passes over the training data (default %(default)s, as the paper)",
    )
    training.add_argument(
        "--batch-size", type=_positive(int), default=512, help="default %(default)s"
    )
    training.add_argument(
        "--optimizer", choices=sorted(OPTIMIZERS), default="adam", help="default %(default)s"
    )
    training.add_argument(
        "--learning-rate", type=_positive(float), default=1e-3, help="default %(default)s"
    )
    training.add_argument(
        "--seed",
        type=_at_least(0),
        default=0,
        help="seeds the model's initial weights and the synthetic data (default %(default)s)",
    )
    training.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras verbosity: 1 (default) shows progress bars",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="PATH", help="write the settings and results as JSON")
    output.add_argument("--plot", metavar="PATH", help="write a PNG of AUC and bytes per kind")
    output.add_argument(
        "--save",
        metavar="DIR",
        help="write each CAFE model's checkpoint and serving SavedModel "
        "under DIR/<kind>/ (read them with `cafe-tf inspect DIR`)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = load_data(args)
    ratio = args.compression_ratio
    if ratio is None and args.budget_bytes is None:
        ratio = DEFAULT_RATIO
    check_layouts(args, data, ratio)
    vocabulary = list(data.vocabulary_sizes.values())
    full = budget_lib.full_table_bytes(vocabulary, args.embedding_dim)
    budget = budget_lib.resolve_budget(vocabulary, args.embedding_dim, ratio, args.budget_bytes)
    print(
        f"{describe_data(args, data)}; {len(vocabulary)} fields, {sum(vocabulary):,} distinct "
        f"ids; full tables {full:,} bytes; budget {budget:,} bytes (1/{full / budget:.4g})"
    )
    results = []
    for kind in args.kinds:
        print(f"\n== {kind} ==", flush=True)
        save = None
        if args.save and kind in CAFE_KINDS:
            save = functools.partial(saved_run.save, os.path.join(args.save, kind), data=data)
        results.append(
            train_and_evaluate(
                kind,
                data,
                ratio,
                budget_bytes=args.budget_bytes,
                embedding_dim=args.embedding_dim,
                batch_size=args.batch_size,
                model=args.model,
                optimizer=args.optimizer,
                learning_rate=args.learning_rate,
                epochs=args.epochs,
                verbose=args.verbose,
                seed=args.seed,
                model_options=SMALL_MODEL_OPTIONS[args.model],
                on_trained=save,
            )
        )
    print("\n" + format_table(results))
    if isinstance(data, TrainTestFiles) and args.on_error == "skip":
        print(format_skipped(data.skipped()))
    if args.json:
        _write_json(args, data, budget, results)
    if args.plot:
        plot(results, args.plot)
    if args.save:
        saved = [os.path.join(args.save, r.kind) for r in results if r.kind in CAFE_KINDS]
        print(f"saved {', '.join(saved)} (each: checkpoint/, serving/, {saved_run.RUN_FILE})")
    return 0


def load_data(args: argparse.Namespace):
    """The dataset `args` ask for, after checking the arguments that go with it."""
    files = args.data.startswith("criteo")
    if files:
        missing = [
            flag
            for flag, value in (
                ("--train-files", args.train_files),
                ("--test-files", args.test_files),
            )
            if not value
        ]
        if missing:
            raise CliError(f"--data {args.data} needs {' and '.join(missing)}")
        criteo_files.check_files(args.train_files + args.test_files)
    else:
        given = [
            flag
            for flag, value in (
                ("--train-files", args.train_files),
                ("--test-files", args.test_files),
                ("--vocabulary-sizes", args.vocabulary_sizes),
            )
            if value
        ]
        if given:
            raise CliError(
                f"{', '.join(given)} only go with --data criteo-tsv or "
                f"criteo-parquet, not --data {args.data}"
            )
    if len(set(args.kinds)) < len(args.kinds):
        raise CliError(f"--kinds names a kind twice: {' '.join(args.kinds)}")
    if args.save and not set(args.kinds) & set(CAFE_KINDS):
        raise CliError("--save writes CAFE models: add cafe or cafe_ml to --kinds")
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            criteo_files.check_output(flag, path)

    from cafe_tf import data as data_lib

    if args.data == "synthetic":
        return data_lib.SyntheticCriteo(
            data_lib.SyntheticCriteoConfig(
                seed=args.seed, rows_per_day=args.rows_per_day, num_days=args.days, scale=args.scale
            )
        )
    if args.data == "movielens":
        return data_lib.MovieLens100K()
    vocabulary = _read_vocabulary(args.vocabulary_sizes) if args.vocabulary_sizes else None
    return TrainTestFiles(
        criteo_files.reader(args.data, args.train_files, vocabulary, args.on_error),
        criteo_files.reader(args.data, args.test_files, vocabulary, args.on_error),
    )


class TrainTestFiles:
    """Two Criteo readers as one dataset: `train_dataset`, `test_dataset`, `vocabulary_sizes`."""

    def __init__(self, train, test):
        self.train, self.test = train, test
        self.field_names = train.field_names
        self.vocabulary_sizes = train.vocabulary_sizes
        self.num_dense = train.num_dense

    def train_dataset(self, batch_size: int):
        return self.train.dataset(batch_size)

    def test_dataset(self, batch_size: int):
        return self.test.dataset(batch_size)

    def skipped(self) -> dict:
        """{file: malformed lines skipped}, training files first (`CriteoTSV.skipped`)."""
        return {**self.train.skipped(), **self.test.skipped()}


def format_skipped(skipped: dict) -> str:
    """The `--on-error skip` report: lines skipped in all, and per file."""
    total = sum(skipped.values())
    width = max(len(f) for f in skipped)
    return "\n".join(
        [f"malformed lines skipped (--on-error skip): {total:,}"]
        + [f"  {f:<{width}}  {n:,}" for f, n in skipped.items()]
    )


def describe_data(args: argparse.Namespace, data) -> str:
    if args.data == "synthetic":
        plural = "s" if args.days > 2 else ""
        return (
            f"Synthetic Criteo-like data: {args.days - 1} training day{plural} + 1 test "
            f"day of {args.rows_per_day:,} rows"
        )
    if args.data == "movielens":
        return "MovieLens-100K: ratings in time order, the latest 20% for testing"
    return f"Criteo files: {len(args.train_files)} for training, {len(args.test_files)} for testing"


def check_layouts(args: argparse.Namespace, data, ratio) -> None:
    """Every kind's layout fits the budget, before anything trains."""
    problems = []
    for kind in args.kinds:
        try:
            # "offline" counts its frequencies only when it trains; its minimum layout
            # does not depend on them.
            make_embedding(
                kind,
                data.vocabulary_sizes,
                args.embedding_dim,
                ratio,
                args.budget_bytes,
                frequencies={} if kind == "offline" else None,
            )
        except budget_lib.BudgetTooSmallError as err:
            problems.append(f"{kind}: {err}")
    if problems:
        raise CliError(
            "the budget is too small (raise it with --budget-bytes or a lower "
            "--compression-ratio, or drop the kind from --kinds):\n  " + "\n  ".join(problems)
        )


def format_table(results: list[RunResult]) -> str:
    lines = [
        f"{'embedding':<10} {'ratio':>7} {'test AUC':>9} {'log loss':>9} "
        f"{'bytes held':>12} {'samples/s':>10} {'hot lookups':>11}"
    ]
    for r in results:
        share = "" if r.hot_lookup_share is None else f"{r.hot_lookup_share:.1%}"
        lines.append(
            f"{r.kind:<10} {r.compression_ratio:>6.4g}x {r.auc:>9.4f} "
            f"{r.logloss:>9.4f} {r.memory_bytes:>12,} "
            f"{r.train_samples_per_sec:>10,.0f} {share:>11}"
        )
    return "\n".join(lines)


def plot(results: list[RunResult], path: str) -> None:
    """Bars of test AUC and of bytes held (log scale), one per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [r.kind for r in results]
    figure, (auc, size) = plt.subplots(1, 2, figsize=(9, 3.5))
    auc.bar(kinds, [r.auc for r in results], color="tab:blue")
    auc.set_ylim(min(r.auc for r in results) - 0.05, max(r.auc for r in results) + 0.02)
    auc.set_ylabel("test AUC")
    size.bar(kinds, [r.memory_bytes for r in results], color="tab:orange")
    size.set_yscale("log")
    size.set_ylabel("bytes held")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    print(f"wrote {path}")


def _write_json(args, data, budget, results) -> None:
    settings = {k: v for k, v in vars(args).items() if k not in ("run", "command")}
    report = {
        "settings": settings,
        "vocabulary_sizes": data.vocabulary_sizes,
        "budget_bytes": budget,
        "results": [dataclasses.asdict(r) for r in results],
    }
    if isinstance(data, TrainTestFiles):
        report["skipped_lines"] = data.skipped()
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.json}")


def _read_vocabulary(path: str) -> dict:
    try:
        with open(path) as f:
            sizes = json.load(f)
    except json.JSONDecodeError as err:
        raise CliError(f"--vocabulary-sizes {path}: not valid JSON ({err})") from None
    if not isinstance(sizes, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()
    ):
        raise CliError(f"--vocabulary-sizes {path}: expected a JSON object {{field: positive int}}")
    return sizes


def _positive(kind):
    def parse(text):
        value = _number(kind, text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def _at_least(minimum, kind=int):
    def parse(text):
        value = _number(kind, text)
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum:g}, got {text!r}")
        return value

    return parse


def _number(kind, text):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if kind is float and value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value
