"""Share of training lookups CAFE's hot rows serve against offline separation at equal rows.

For each data shape, ratio and seed, CAFE (DLRM, one pass over the days in time order,
as `benchmarks/quality.py` trains it, on the same synthetic data) is trained while a
callback records, for every training lookup, whether a hot row served it: before each
step it queries the layer's sketch for the keys of the batch the step reads (the state
the step routes by; migrations run after the step). Let H be CAFE's hot rows. Then:

- offline share: the share of the training lookups whose (feature, id) is among the
  H most frequent of the whole training data (`cafe_tf.layers.offline.top_keys`):
  the lookups offline separation's H exclusive rows serve;
- per-day oracle share: each training day's lookups served by that day's own H most
  frequent ids, the bound for a method that follows drift day by day;
- offline separation is trained with `exclusive_rows=H` and as many hashed rows as
  CAFE holds (CAFE ML: its hashed plus medium rows; offline separation splits them into a
  table per feature), on the budget those rows and its key index take (no sketch); both
  test AUCs and the gap. Where those rows are fewer than one per feature, offline
  separation does not fit: its AUC is n/a, its share is still counted.

The difference offline share - CAFE share splits, lookup by lookup, into

    offline - CAFE = warm-up + churn + never held - outside top-H

where, as shares of all training lookups: warm-up counts the lookups of a top-H id not
served hot before CAFE first served that id from a hot row; churn those after (the id
was demoted since); never held those of top-H ids CAFE never served hot; outside top-H
the lookups CAFE's hot rows served for ids outside offline's top H (what following
drift gains). Also: the share deficit in the first tenth of the batches, and
promotions beyond H (re-promotions after demotion and replacements).

Prints a table per cell and writes benchmarks/out/hot_set.{json,md,png} (the plot: share
per tenth of training, CAFE vs offline vs per-day oracle, one panel per shape and ratio).

    python benchmarks/hot_set.py --seeds 0                   # 3 shapes x 4 ratios
    python benchmarks/hot_set.py --datasets criteo_kaggle --ratios 1000 --seeds 0
    python benchmarks/hot_set.py --kinds cafe cafe_ml --ratios 100 1000
    python benchmarks/hot_set.py --quick                     # a small smoke run
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
import tf_keras
from quality import OUT, add_size_arguments, cpu_seconds, load_data

from cafe_tf import hashing
from cafe_tf.budget import BudgetTooSmallError
from cafe_tf.data import SHAPES
from cafe_tf.experiment import SMALL_MODEL_OPTIONS, train_and_evaluate
from cafe_tf.layers import find_cafe_layers
from cafe_tf.layers.offline import KEY_BYTES, count_frequencies, top_keys

TENTHS = 10
# --quick: one small cell, for the smoke test.
QUICK = dict(
    datasets=["kdd12"], ratios=[100.0], rows_per_day=4000, days=3, scale=2e-3, batch_size=256
)


def frequencies(ids: np.ndarray, names) -> dict:
    """`count_frequencies` of [N, F] ids."""
    return count_frequencies([{name: ids[:, f] for f, name in enumerate(names)}], names)


class HotLookups(tf_keras.callbacks.Callback):
    """Whether a hot row of the model's CAFE layer served each training lookup.

    Before each step, queries the sketch for the keys of the rows that step reads
    (rows `batch * batch_size` on, one pass in order): the state the step routes by,
    since the migration runs after it. At the end, checks the flags against the layer's
    own hot-lookup counter.
    """

    def __init__(self, keys: np.ndarray, batch_size: int):
        super().__init__()
        self.keys, self.batch_size = keys, batch_size
        self.hot = np.zeros(keys.shape, bool)

    def set_model(self, model):
        super().set_model(model)
        (self.layer,) = find_cafe_layers(model)
        sketch = self.layer.sketch
        self._query = tf.function(
            lambda keys: sketch.query(keys)[0] >= 0,
            input_signature=[tf.TensorSpec([None], tf.int64)],
        )

    def on_train_batch_begin(self, batch, logs=None):
        rows = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
        self.hot[rows] = (
            self._query(self.keys[rows].reshape(-1)).numpy().reshape(-1, self.keys.shape[1])
        )

    def on_train_end(self, logs=None):
        counted = int(self.layer.hot_lookups.numpy()), int(self.layer.lookups.numpy())
        if counted != (int(self.hot.sum()), self.hot.size):
            raise RuntimeError(
                f"the sketch queries found {int(self.hot.sum())} hot of {self.hot.size} lookups, "
                f"the layer counted {counted[0]} of {counted[1]}: the flags do not describe "
                "the training"
            )


def tenths(flags: np.ndarray, batch_of_row: np.ndarray) -> list[float]:
    """Share of the lookups flagged in each tenth of the batches."""
    groups = np.array_split(np.arange(batch_of_row[-1] + 1), TENTHS)
    return [float(flags[(batch_of_row >= g[0]) & (batch_of_row <= g[-1])].mean()) for g in groups]


def decompose(hot, in_top, keys, top, batch_of_row) -> dict:
    """The lookups of offline's top-H ids CAFE missed, split by when (as counts), and the
    lookups CAFE's hot rows served outside the top H.

    Args:
      hot: [N, F] whether CAFE's hot rows served the lookup.
      in_top: [N, F] whether its key is among offline's top H.
      keys: [N, F] its key; top: the sorted top-H keys.
      batch_of_row: [N] the batch of each row.
    """
    batches = int(batch_of_row[-1]) + 1
    batch = np.broadcast_to(batch_of_row[:, None], keys.shape)[in_top]
    which = np.searchsorted(top, keys[in_top])
    served = hot[in_top]
    first = np.full(len(top), batches)  # first batch each top-H id was served hot
    np.minimum.at(first, which[served], batch[served])
    first_of = first[which]
    missed = ~served
    churned = missed & (batch > first_of) & (first_of < batches)
    return {
        "warmup": int((missed & (batch < first_of) & (first_of < batches)).sum()),
        "churn": int(churned.sum()),
        "never": int((missed & (first_of == batches)).sum()),
        "outside": int((hot & ~in_top).sum()),
        "top_held": int((first < batches).sum()),
        "top_never_held": int((first == batches).sum()),
        "top_churned": len(np.unique(which[churned])),
        "outside_ids": len(np.unique(keys[hot & ~in_top])),
    }


def run_cell(args, data, shape, seed, ratio, kind) -> dict:
    """CAFE (`kind`) and offline separation at CAFE's hot rows on one shape, seed and ratio;
    `auc` None where CAFE's layout does not fit the budget."""
    names = list(data.field_names)
    _, ids, _ = data.train_arrays
    keys = hashing.field_keys_numpy(ids, np.arange(ids.shape[1]))  # column f: feature f
    recorder = HotLookups(keys, args.batch_size)
    run = dict(
        embedding_dim=args.dim,
        batch_size=args.batch_size,
        model="dlrm",
        learning_rate=args.learning_rate,
        epochs=1,
        verbose=0,
        seed=seed,
        model_options=SMALL_MODEL_OPTIONS["dlrm"],
    )
    cell = {"shape": shape, "seed": seed, "ratio": float(ratio), "kind": kind, "auc": None}
    label = f"{shape:>13} s{seed} {kind:>7} {ratio:>7g}x"
    start, cpu = time.perf_counter(), cpu_seconds()
    tf_keras.backend.clear_session()
    try:
        cafe = train_and_evaluate(kind, data, ratio, callbacks=[recorder], **run)
    except BudgetTooSmallError as err:
        print(f"{label}  n/a ({str(err)[:70]}...)", flush=True)
        return cell
    layout, rows = recorder.layer.layout, recorder.layer.layout.hot_rows
    promotions = int(recorder.layer.promotions.numpy())
    demotions = int(recorder.layer.demotions.numpy())
    print(f"{label}  CAFE trained, H = {rows:,} ({time.perf_counter() - start:.0f} s)", flush=True)

    # Offline separation at H exclusive rows and CAFE's other rows, on their bytes.
    row_bytes = 4 * args.dim
    other_rows = layout.hashed_table_rows + layout.medium_table_rows
    tf_keras.backend.clear_session()
    try:
        offline = train_and_evaluate(
            "offline",
            data,
            None,
            budget_bytes=rows * (row_bytes + KEY_BYTES) + other_rows * row_bytes,
            exclusive_rows=rows,
            **run,
        )
    except BudgetTooSmallError:  # fewer hashed rows than features
        offline = None

    batch_of_row = np.arange(len(ids)) // args.batch_size
    top = top_keys(frequencies(ids, names), names, rows)
    in_top = np.isin(keys, top)
    # Each training day's own top H, on that day.
    per_day = np.zeros_like(in_top)
    rows_per_day = data.config.rows_per_day
    for day in range(len(ids) // rows_per_day):
        span = slice(day * rows_per_day, (day + 1) * rows_per_day)
        per_day[span] = np.isin(keys[span], top_keys(frequencies(ids[span], names), names, rows))
    hot = recorder.hot
    parts = decompose(hot, in_top, keys, top, batch_of_row)
    lookups = hot.size
    share = {name: parts[name] / lookups for name in ("warmup", "churn", "never", "outside")}
    cafe_share, offline_share = float(hot.mean()), float(in_top.mean())
    # The identity holds in counts; as shares up to rounding.
    if in_top.sum() - hot.sum() != (
        parts["warmup"] + parts["churn"] + parts["never"] - parts["outside"]
    ):
        raise RuntimeError(f"the decomposition does not add up: {parts}")
    if offline is not None and abs(offline.hot_lookup_share - offline_share) > 1e-9:
        raise RuntimeError(
            f"offline separation's rows serve {offline.hot_lookup_share} of the counted "
            f"lookups, its top H {offline_share}: they are not the same ids"
        )
    cafe_tenths, offline_tenths = tenths(hot, batch_of_row), tenths(in_top, batch_of_row)
    cell.update(
        {
            "hot_rows": rows,
            "hashed_rows": layout.hashed_table_rows,
            "medium_rows": layout.medium_table_rows,
            "offline_rows": None if offline is None else offline.exclusive_rows,
            "offline_memory_bytes": None if offline is None else offline.memory_bytes,
            "cafe_memory_bytes": cafe.memory_bytes,
            "lookups": lookups,
            "batches": int(batch_of_row[-1]) + 1,
            "cafe_share": cafe_share,
            "offline_share": offline_share,
            "per_day_share": float(per_day.mean()),
            **share,
            "first_tenth_deficit": offline_tenths[0] - cafe_tenths[0],
            "promotions": promotions,
            "demotions": demotions,
            "promotions_beyond_h": max(0, promotions - rows),
            **{name: parts[name] for name in parts if name not in share},
            "auc": cafe.auc,
            "offline_auc": None if offline is None else offline.auc,
            "auc_gap": None if offline is None else offline.auc - cafe.auc,
            "cafe_tenths": cafe_tenths,
            "offline_tenths": offline_tenths,
            "per_day_tenths": tenths(per_day, batch_of_row),
            "seconds": time.perf_counter() - start,
            "cpu_seconds": cpu_seconds() - cpu,
        }
    )
    print(f"{label}  {row(cell)}  ({cell['seconds']:.0f} s, CPU {cell['cpu_seconds']:.0f} s)")
    return cell


COLUMNS = (
    "| shape | kind | ratio | seed | H | CAFE share | offline share | per-day oracle "
    "| warm-up | churn | never held | outside top-H | first-tenth deficit "
    "| promotions beyond H | CAFE AUC | offline AUC | AUC gap |"
)


def row(cell) -> str:
    """The table columns after shape, kind, ratio and seed."""
    if cell["auc"] is None:
        return "n/a |" * (COLUMNS.count("|") - 5)
    shares = (
        "cafe_share",
        "offline_share",
        "per_day_share",
        "warmup",
        "churn",
        "never",
        "outside",
        "first_tenth_deficit",
    )
    offline = (
        "n/a | n/a"
        if cell["offline_auc"] is None
        else f"{cell['offline_auc']:.4f} | {cell['auc_gap']:+.4f}"
    )
    return (
        f"{cell['hot_rows']:,} | "
        + " | ".join(f"{cell[name]:.4f}" for name in shares)
        + f" | {cell['promotions_beyond_h']:,} | {cell['auc']:.4f} | {offline} |"
    )


def markdown(cells) -> str:
    lines = [
        "Shares of all training lookups; offline - CAFE = warm-up + churn + never held "
        "- outside top-H. AUC gap = offline - CAFE.",
        "",
        COLUMNS,
        "|---" * (COLUMNS.count("|") - 1) + "|",
    ]
    for cell in cells:
        lines.append(
            f"| {cell['shape']} | {cell['kind']} | {cell['ratio']:g}x | {cell['seed']} | "
            + row(cell)
        )
    return "\n".join(lines) + "\n"


def plot(cells, path: Path) -> None:
    """Share per tenth of training, mean over seeds: CAFE kinds, offline, per-day oracle;
    one panel per (shape, ratio), shapes in rows, ratios in columns."""
    measured = [c for c in cells if c["auc"] is not None]
    shapes = list(dict.fromkeys(c["shape"] for c in measured)) or [None]
    ratios = sorted({c["ratio"] for c in measured}) or [None]
    fig, axes = plt.subplots(
        len(shapes),
        len(ratios),
        figsize=(4.5 * len(ratios), 3.6 * len(shapes)),
        squeeze=False,
    )
    x = np.arange(1, TENTHS + 1)
    for i, shape in enumerate(shapes):
        for j, ratio in enumerate(ratios):
            ax = axes[i][j]
            subset = [c for c in measured if (c["shape"], c["ratio"]) == (shape, ratio)]
            if not subset:
                ax.set_axis_off()
                continue
            # Each kind with the offline and per-day top H at its own H, in its colour.
            for color, kind in enumerate(sorted({c["kind"] for c in subset})):
                of_kind = [c for c in subset if c["kind"] == kind]
                for name, style, label in (
                    ("cafe", "-o", kind),
                    ("offline", "--", f"offline top H ({kind}'s H)"),
                    ("per_day", ":", f"per-day top H ({kind}'s H)"),
                ):
                    mean = np.mean([c[f"{name}_tenths"] for c in of_kind], axis=0)
                    ax.plot(x, mean, style, color=f"C{color}", label=label)
            rows = ", ".join(sorted({f"{c['hot_rows']:,}" for c in subset}))
            ax.set_title(f"{shape}, {ratio:g}x, H = {rows}")
            ax.set_xlabel("tenth of training")
            ax.set_ylabel("share of lookups on exclusive rows")
            ax.set_ylim(0, 1)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(cells, out: Path, name: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(cells, indent=1))
    table = markdown(cells)
    (out / f"{name}.md").write_text(table)
    plot(cells, out / f"{name}.png")
    return table


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--ratios", type=float, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--kinds", nargs="+", default=["cafe"], choices=["cafe", "cafe_ml"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    add_size_arguments(parser)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one small cell: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    parser.add_argument("--out", default=str(OUT), help="folder of <name>.{json,md,png}")
    parser.add_argument("--name", default="hot_set")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def main(argv=None) -> list[dict]:
    """Runs the selected cells; returns them (also written to <out>/<name>.json)."""
    args = parse_args(argv)
    cells = []
    for seed in args.seeds:
        for shape in args.datasets:
            start = time.perf_counter()
            data, _ = load_data(args, shape, seed)
            print(
                f"\n### {shape}, seed {seed}: {len(data.train_arrays[1]):,} training rows, "
                f"{len(data.field_names)} fields ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            for ratio in args.ratios:
                for kind in args.kinds:
                    cells.append(run_cell(args, data, shape, seed, ratio, kind))
                    table = write_outputs(cells, Path(args.out), args.name)
    print("\n" + table + f"\nwrote {Path(args.out) / args.name}.json, .md and .png", flush=True)
    return cells


if __name__ == "__main__":
    main()
