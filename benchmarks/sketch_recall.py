"""How well the HotSketch finds the hot set: recall of the true top-H vs sketch bytes.

A stream of Criteo-like rows (26 fields, each Zipf-skewed over its own
vocabulary, 677k distinct ids) goes through the C++ op batch by batch
(frequency importance, a migration after every batch), for sketches of
12 to 96 bytes per hot row and c in {4, 8, 16}, under three rule sets measured
in the same run:

- paper: the published sketch (12-byte slots: 32-bit id, float count, int row),
  a takeover promotable at once, decay x0.99 per 10 W k of inserted importance;
- before: cafe_tf's first sketch (20-byte slots and 4 bytes per hot row, the
  paper's promotion and decay);
- cafe_tf: 12-byte slots (32-bit key fingerprint, int32 hot row and tag or
  cold marker, float32 score; nothing per hot row), sized as a CAFE layer sizes
  them (`budget.sketch_shape`: buckets of at least c slots, the sketch's scalars
  counted), erosion instead of inheritance on a miss, the second sighting rule,
  the half-life decay, swaps, and free rows filled with the strongest tracked keys and
  hot keys kept until displaced where the sketch has the spare slots for it (the
  defaults: `budget.planned_fill_free_rows`, `planned_demote_threshold`).

Bytes per hot row count everything the sketch holds (slots and per-hot-row
bookkeeping). The sketch keeps fingerprints, not ids: an id holds a hot row
when a hot slot of its bucket holds its fingerprint. Two streams: stationary, and one whose popular ids are all
re-drawn half-way (each field gets a new rank -> id map). Figures:

- recall: share of the true top-H ids (by count over the whole stream) that
  hold a hot row at the end (stationary stream);
- recent recall: the same for the top-H of the last sixth of the stream
  (re-draw stream: the sixth just after the re-draw, measured at its end);
- outside 10H: share of the hot rows held, at the end, by ids outside the true
  top-10H, and the share of all promotions that went to such ids.

Prints a table and writes benchmarks/out/sketch_recall.{png,json}.

    python benchmarks/sketch_recall.py                     # about 5 min on 2 cores
    python benchmarks/sketch_recall.py --rows 200000 --bytes 48 --slots 4
    python benchmarks/sketch_recall.py --half-lives 4 8 16 32   # choose the schedule
"""

import argparse
import dataclasses
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

from cafe_tf import budget, hashing
from cafe_tf.sketch import HotSketch, SketchConfig
from cafe_tf.sketch import config as sketch_config

OUT = Path(__file__).resolve().parent / "out"
FIELDS = 26
DISTINCT = 677_000
# Goals at the default 16 bytes per hot row: stationary recall, and recent recall after a
# re-draw.
GOALS = {"recall": (16, 0.90), "redraw_recent_recall": (16, 0.85)}
# (slot bytes, per-hot-row bookkeeping bytes) of each rule set's layout.
LAYOUTS = {"paper": (12, 0), "before": (20, 4), "cafe_tf": (sketch_config.SLOT_BYTES, 0)}


@dataclasses.dataclass(frozen=True)
class Rules:
    name: str
    second_sighting: bool
    replacement: str  # "inherit" (SpaceSaving, the paper) or "erode"
    half_life: float = None  # None: the paper's mass rule (x0.99 per 10 W k)
    swap_margin: float = None  # None: no swaps (the paper)


def vocabulary_sizes():
    """26 fields from 10 to ~250k ids, 677k in all (a Criteo-like spread)."""
    raw = np.geomspace(10, 250_000, FIELDS)
    return np.maximum(10, np.round(raw * DISTINCT / raw.sum())).astype(np.int64)


class Stream:
    """Rows of 26 Zipf fields; `redraw_at` (share of the stream) re-draws every
    field's rank -> id map, so its popular ids change at once."""

    def __init__(self, rows, batch, seed, redraw_at=None):
        rng = np.random.default_rng(seed)
        self.sizes = vocabulary_sizes()
        skews = rng.uniform(1.05, 1.25, FIELDS)
        self.batches = []
        num_batches = rows // batch
        redraw_batch = None if redraw_at is None else int(num_batches * redraw_at)
        maps = [rng.permutation(n) for n in self.sizes]
        cdfs = [
            np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -s)
            for n, s in zip(self.sizes, skews)
        ]
        salts = np.array([hashing.field_salt(f) for f in range(FIELDS)], np.int64)
        for b in range(num_batches):
            if b == redraw_batch:
                maps = [rng.permutation(n) for n in self.sizes]
            keys = []
            for f in range(FIELDS):
                ranks = np.searchsorted(cdfs[f], rng.random(batch) * cdfs[f][-1])
                keys.append(maps[f][np.minimum(ranks, self.sizes[f] - 1)] ^ salts[f])
            self.batches.append(np.concatenate(keys))
        self.redraw_batch = redraw_batch


def top_keys(batches, count):
    """The `count` most frequent keys of `batches` (ties broken by key)."""
    keys, counts = np.unique(np.concatenate(batches), return_counts=True)
    order = np.lexsort((keys, -counts))
    return set(keys[order[:count]].tolist())


def identities(keys, num_buckets):
    """What a sketch of `num_buckets` buckets knows of each key: (bucket, fingerprint)."""
    keys = tf.constant(sorted(keys), tf.int64)
    buckets = hashing.mix64_mod(keys, num_buckets).numpy().tolist()
    return set(zip(buckets, hashing.fingerprint(keys).numpy().tolist()))


def hot_keys(sketch):
    """(bucket, fingerprint) of every hot slot."""
    state = sketch.read_state()
    hot = np.flatnonzero(state.entries.numpy() >= 0)
    fingerprints = state.fingerprints.numpy()[hot]
    return set(zip((hot // sketch.config.slots_per_bucket).tolist(), fingerprints.tolist()))


def shape_for(rules, bytes_per_hot_row, hot_rows, slots):
    """(W, c) of a rule set's sketch: cafe_tf's as a CAFE layer sizes it (buckets of at
    least `slots`), the others' buckets of `slots` slots in the bytes."""
    if rules.name not in ("paper", "before"):
        return budget.sketch_shape(hot_rows, slots, bytes_per_hot_row, sketch_config.SCALAR_BYTES)
    slot_bytes, per_row = LAYOUTS[rules.name]
    return max(1, int((bytes_per_hot_row - per_row) * hot_rows // (slot_bytes * slots))), slots


def run(stream, rules, bytes_per_hot_row, slots, hot_rows, threshold, checkpoints):
    """Feeds the stream; returns the hot set at each checkpoint batch and the promotions."""
    buckets, slots = shape_for(rules, bytes_per_hot_row, hot_rows, slots)
    swaps = rules.swap_margin is not None
    if rules.name in ("paper", "before"):  # rows wait for k; demotion at k
        fill, demote, yield_below = False, threshold, 0.0
    else:  # as a CAFE layer plans them for this shape
        fill = budget.planned_fill_free_rows(buckets, slots, hot_rows)
        demote = budget.planned_demote_threshold(threshold, fill, swaps)
        yield_below = budget.planned_yield_threshold(threshold, fill, swaps)
    config = SketchConfig(
        num_buckets=buckets,
        hot_rows=hot_rows,
        slots_per_bucket=slots,
        threshold=threshold,
        demote_threshold=demote,
        second_sighting=rules.second_sighting,
        replacement=rules.replacement,
        decay_half_life=rules.half_life,
        swap_margin=rules.swap_margin,
        fill_free_rows=fill,
        yield_threshold=yield_below,
    )
    sketch = HotSketch(config, backend="op")
    snapshots, promoted = {}, []
    for b, keys in enumerate(stream.batches):
        sketch.insert(tf.constant(keys))
        promoted += sketch.migrate().promoted_fingerprints.numpy().tolist()
        if b + 1 in checkpoints:
            snapshots[b + 1] = hot_keys(sketch)
    return snapshots, promoted


def measure(stationary, drift, rules, bytes_per_hot_row, slots, args):
    h = args.hot_rows
    n = len(stationary.batches)
    sixth = n // 6
    s_snap, s_promoted = run(stationary, rules, bytes_per_hot_row, slots, h, args.threshold, {n})
    w, c = shape_for(rules, bytes_per_hot_row, h, slots)
    top_h, top_10h = identities(stationary.top_h, w), identities(stationary.top_10h, w)
    top_10h_fingerprints = {fp for _, fp in top_10h}
    hot = s_snap[n]
    after = drift.redraw_batch + sixth
    d_snap, _ = run(drift, rules, bytes_per_hot_row, slots, h, args.threshold, {after})
    return {
        "rules": rules.name,
        "half_life": rules.half_life,
        "swap_margin": rules.swap_margin,
        "bytes_per_hot_row": bytes_per_hot_row,
        "slots": slots,
        "buckets": w,
        "slots_per_bucket": c,
        "recall": len(hot & top_h) / h,
        "recent_recall": len(hot & identities(stationary.top_recent, w)) / h,
        "hot_outside_10h": len(hot - top_10h) / max(1, len(hot)),
        # (a promotion reports a fingerprint: one of the top-10H's counts as inside)
        "promotions_outside_10h": (
            sum(fp not in top_10h_fingerprints for fp in s_promoted) / max(1, len(s_promoted))
        ),
        "redraw_recent_recall": len(d_snap[after] & identities(drift.top_after, w)) / h,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=2048, help="rows per batch")
    parser.add_argument("--hot-rows", type=int, default=270)
    parser.add_argument("--threshold", type=float, default=50.0)
    parser.add_argument("--bytes", type=int, nargs="+", default=[12, 16, 24, 48, 96])
    parser.add_argument("--slots", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument(
        "--half-lives",
        type=float,
        nargs="+",
        default=[DEFAULT_HALF_LIFE],
        help="half-lives (in hot_rows * k of importance) of the cafe_tf rules",
    )
    parser.add_argument(
        "--swap-margins",
        type=float,
        nargs="+",
        default=[DEFAULT_SWAP_MARGIN],
        help="swap margins of the cafe_tf rules (0: no swaps)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    stationary = Stream(args.rows, args.batch, args.seed)
    drift = Stream(args.rows, args.batch, args.seed, redraw_at=0.5)
    n = len(stationary.batches)
    stationary.top_h = top_keys(stationary.batches, args.hot_rows)
    stationary.top_10h = top_keys(stationary.batches, 10 * args.hot_rows)
    stationary.top_recent = top_keys(stationary.batches[n - n // 6 :], args.hot_rows)
    drift.top_after = top_keys(
        drift.batches[drift.redraw_batch : drift.redraw_batch + n // 6], args.hot_rows
    )
    print(
        f"stream: {args.rows:,} rows x {FIELDS} fields = {args.rows * FIELDS:,} ids in "
        f"{n} batches, {DISTINCT:,} distinct; H = {args.hot_rows}, k = {args.threshold:g} "
        f"({time.perf_counter() - start:.0f} s to draw)",
        flush=True,
    )
    rule_sets = [Rules("paper", False, "inherit"), Rules("before", False, "inherit")]
    variants = [(hl, m) for hl in args.half_lives for m in args.swap_margins]
    rule_sets += [
        Rules(
            "cafe_tf" if len(variants) == 1 else f"cafe_tf L={hl:g} m={m:g}",
            True,
            "erode",
            hl,
            m or None,
        )
        for hl, m in variants
    ]
    results = []
    print(
        f"{'rules':>14} {'B/row':>5} {'c':>2} {'W':>6} {'recall':>6} {'recent':>6} "
        f"{'out10H':>6} {'prom>10H':>8} {'re-draw':>7}"
    )
    for bytes_per_hot_row in args.bytes:
        for slots in args.slots:
            for rules in rule_sets:
                if rules.name == "before" and len(variants) > 1:
                    continue
                r = measure(stationary, drift, rules, bytes_per_hot_row, slots, args)
                results.append(r)
                print(
                    f"{r['rules']:>14} {bytes_per_hot_row:>5} {slots:>2} {r['buckets']:>6} "
                    f"{r['recall']:>6.3f} {r['recent_recall']:>6.3f} "
                    f"{r['hot_outside_10h']:>6.3f} {r['promotions_outside_10h']:>8.3f} "
                    f"{r['redraw_recent_recall']:>7.3f}",
                    flush=True,
                )
    print(f"({time.perf_counter() - start:.0f} s in all)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sketch_recall.json").write_text(
        json.dumps({"args": vars(args), "rows": results}, indent=2)
    )
    plot(results, args)


def plot(results, args):
    metrics = [
        ("recall", "recall of the true top-H (stationary)"),
        ("redraw_recent_recall", "recent recall, 1/6 of the stream after a re-draw"),
        ("hot_outside_10h", "hot rows outside the true top-10H"),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5))
    names = list(dict.fromkeys(r["rules"] for r in results))
    styles = ["-", "--", ":", "-."]
    for ax, (metric, title) in zip(axes, metrics):
        for i, name in enumerate(names):
            for j, slots in enumerate(args.slots):
                points = [
                    (r["bytes_per_hot_row"], r[metric])
                    for r in results
                    if r["rules"] == name and r["slots"] == slots
                ]
                if points:
                    x, y = zip(*points)
                    ax.plot(
                        x,
                        y,
                        styles[i % len(styles)],
                        marker="o",
                        color=f"C{j}",
                        label=f"{name}, c={slots}",
                    )
        if metric in GOALS:
            b, goal = GOALS[metric]
            ax.plot([b], [goal], "k*", markersize=10)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sketch bytes per hot row")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "sketch_recall.png", dpi=120)
    print(f"wrote {OUT / 'sketch_recall.png'} and sketch_recall.json")


DEFAULT_HALF_LIFE = 8.0
DEFAULT_SWAP_MARGIN = 1.5

if __name__ == "__main__":
    main()
