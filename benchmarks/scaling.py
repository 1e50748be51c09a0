"""Data-parallel scaling of CAFE's importance exchange: 1-8 replicas measured, 64 and 512 projected.

Each replica count runs in its own process (logical CPU devices must be set up
before TensorFlow starts) under MirroredStrategy, with a fixed per-replica
batch of the synthetic Criteo-like data (26 fields). Per replica count it
measures DLRM training samples/s (of a fit's steps, as train_speed.py counts
them) with CAFE and with the hashing trick under the same strategy, and from
CAFE's counters the (key, feature) pairs the importance exchange all-gathers
per step, next to what the per-occurrence exchange (every occurrence's key,
feature and importance) would send.

Bytes per step are the all-gathered payload every replica receives: 16 per
pair or occurrence (int64 key, int32 feature, float32 importance), plus the
per-feature totals and counts all-reduce (16 bytes per feature) after the
aggregation. The dense gradient all-reduce is the DLRM's MLP parameters (4
bytes each; a ring all-reduce moves about twice that per replica).

The projection to 64 and 512 replicas uses the measured distinct pairs per
replica batch (fixed per-replica batch: it does not change with R), the
measured sketch insert cost per key at R x that many keys (every replica
inserts the whole all-gathered batch), and the dense all-reduce bytes.
Also printed: the distinct ratio of Zipf(1.1) batches (ids over 10M values).

    python benchmarks/scaling.py [--replicas 1 2 4 8] [--batch-per-replica 512] [--steps 8]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

OUT = Path(__file__).resolve().parent / "out"
BYTES_PER_PAIR = 8 + 4 + 4  # key, feature, importance
PROJECTED = (64, 512)


def child(args):
    """One replica count: samples/s of CAFE and hash, CAFE's exchange counters. Prints JSON."""
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.child
    )
    import tf_keras
    from train_speed import samples_per_second

    from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
    from cafe_tf.experiment import make_embedding
    from cafe_tf.models import DLRM

    replicas = args.child
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    global_batch = replicas * args.batch_per_replica
    data = SyntheticCriteo(
        SyntheticCriteoConfig(
            seed=0, rows_per_day=global_batch * args.steps, num_days=2, scale=1e-2
        )
    )
    batches = data.day_dataset(0, global_batch).take(args.steps).cache()
    for _ in batches:  # materialise the cache
        pass
    distributed = strategy.experimental_distribute_dataset(batches)
    result = {"replicas": replicas, "samples_per_s": {}}
    for kind in ("hash", "cafe"):
        with strategy.scope():
            embedding = make_embedding(kind, data.vocabulary_sizes, 16, 100.0)
            model = DLRM(embedding, bottom_units=(256, 64), top_units=(256, 64))
            model.compile(optimizer=tf_keras.optimizers.Adagrad(0.05))
        model.fit(distributed, epochs=1, steps_per_epoch=2, verbose=0)  # trace and warm up

        def counters(embedding=embedding, kind=kind):
            if kind != "cafe":
                return (0, 0)
            return int(embedding.lookups.numpy()), int(embedding.exchanged_pairs.numpy())

        before = counters()
        rates = [
            samples_per_second(
                model, [], distributed, args.steps * global_batch, steps_per_epoch=args.steps
            )
            for _ in range(args.repeats)
        ]
        result["samples_per_s"][kind] = float(np.median(rates))
        if kind == "cafe":
            after = counters()
            steps = args.repeats * args.steps
            result["occurrences_per_step"] = (after[0] - before[0]) / steps
            result["pairs_per_step"] = (
                (after[1] - before[1]) / steps
                if replicas > 1
                else _distinct_pairs(batches, steps=args.steps)
            )
            embedding_weights = {id(w) for w in embedding.weights}
            result["dense_parameters"] = int(
                sum(
                    w.shape.num_elements()
                    for w in model.trainable_weights
                    if id(w) not in embedding_weights
                )
            )
            result["features"] = len(data.vocabulary_sizes)
    print(json.dumps(result), flush=True)


def _distinct_pairs(batches, steps):
    """Mean distinct (id, field) pairs per batch (what one replica would send)."""
    import numpy as np

    total = 0
    for features, _ in batches:
        ids = features["sparse"]
        total += sum(len(np.unique(ids[name].numpy())) for name in ids)
    return total / steps


def insert_ns_per_key(sizes, rng):
    """Median ns per key of the C++ sketch insert for batches of distinct-ish Zipf keys."""
    import numpy as np
    import tensorflow as tf

    from cafe_tf.sketch import HotSketch, SketchConfig

    out = {}
    for n in sizes:
        sketch = HotSketch(SketchConfig(num_buckets=65_536, hot_rows=65_536, threshold=500.0))
        keys = tf.constant(zipf_ids(rng, n))
        values = tf.ones([n], tf.float32)
        sketch.insert(keys, values)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            sketch.insert(keys, values)
            times.append(time.perf_counter() - start)
        out[n] = 1e9 * float(np.median(times)) / n
    return out


def zipf_ids(rng, n, alpha=1.1, distinct=10_000_000):
    """n ids from the finite Zipf(alpha) over `distinct` ranks, scattered over int64."""
    import numpy as np

    cdf = np.cumsum(np.arange(1, distinct + 1, dtype=np.float64) ** -alpha)
    ranks = np.searchsorted(cdf, rng.random(n) * cdf[-1]).astype(np.uint64) + np.uint64(1)
    return (ranks * np.uint64(0x9E3779B97F4A7C15)).view(np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch-per-replica", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import numpy as np

    rows = []
    for replicas in args.replicas:
        run = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(replicas),
                "--batch-per-replica",
                str(args.batch_per_replica),
                "--steps",
                str(args.steps),
                "--repeats",
                str(args.repeats),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            sys.exit(f"{replicas} replicas failed:\n{run.stderr[-3000:]}")
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print(f"measured {replicas} replica(s)", flush=True)

    b, first = args.batch_per_replica, rows[0]
    features, dense = first["features"], first["dense_parameters"]
    occurrences_per_replica = first["occurrences_per_step"] / first["replicas"]
    pairs_per_replica = np.median([r["pairs_per_step"] / r["replicas"] for r in rows])
    print(
        f"\nDLRM, {b} examples x {features} fields per replica, D=16, budget 1/100, "
        f"{os.cpu_count()} CPU cores shared by all replicas (logical CPU devices)"
    )
    print(
        f"{'replicas':>8} {'CAFE/s':>9} {'hash/s':>9} {'ratio':>6} {'pairs/step':>11} "
        f"{'before B/step':>14} {'after B/step':>13} {'after/before':>12}"
    )
    for r in rows:
        before = r["occurrences_per_step"] * BYTES_PER_PAIR
        after = r["pairs_per_step"] * BYTES_PER_PAIR + 16 * features
        rates = r["samples_per_s"]
        print(
            f"{r['replicas']:>8} {rates['cafe']:>9,.0f} {rates['hash']:>9,.0f} "
            f"{rates['cafe'] / rates['hash']:>5.2f}x {r['pairs_per_step']:>11,.0f} "
            f"{before:>14,.0f} {after:>13,.0f} {after / before:>11.2f}x"
        )

    rng = np.random.default_rng(0)
    zipf = zipf_ids(rng, b * features)
    zipf_ratio = len(np.unique(zipf)) / len(zipf)
    counts = sorted({int(r * pairs_per_replica) for r in (*args.replicas, *PROJECTED)})
    cost = insert_ns_per_key([c for c in counts if c <= 4_000_000], rng)
    slope = cost[max(cost)]  # ns/key at the largest measured batch, for the extrapolation
    dense_bytes = 4 * dense
    print(
        f"\ndistinct pairs per replica batch: {pairs_per_replica:,.0f} of "
        f"{occurrences_per_replica:,.0f} ids ({pairs_per_replica / occurrences_per_replica:.2f});"
        f" Zipf(1.1) over 10M ids, same batch: {zipf_ratio:.2f}"
    )
    print(
        f"dense gradient all-reduce: {dense:,} parameters = {dense_bytes:,} bytes "
        f"(a ring moves ~2x per replica)"
    )
    print(
        "sketch insert ns/key by batch: " + ", ".join(f"{n:,}: {ns:.1f}" for n, ns in cost.items())
    )
    print(
        f"\n{'replicas':>8} {'before MB':>10} {'after MB':>9} {'dense MB':>9} "
        f"{'after/dense':>11} {'insert ms':>10}"
    )
    projection = []
    for replicas in (*args.replicas, *PROJECTED):
        before = replicas * occurrences_per_replica * BYTES_PER_PAIR / 1e6
        keys = replicas * pairs_per_replica
        after = (keys * BYTES_PER_PAIR + 16 * features) / 1e6
        ring = 2 * (replicas - 1) / replicas * dense_bytes / 1e6
        insert_ms = keys * cost.get(int(keys), slope) / 1e6
        projection.append((replicas, before, after, ring, insert_ms))
        versus = f"{after / ring:>10.1f}x" if replicas > 1 else f"{'-':>11}"
        print(
            f"{replicas:>8} {before:>10.2f} {after:>9.2f} {ring:>9.2f} {versus} {insert_ms:>10.2f}"
        )
    plot(rows, projection, b)


def plot(rows, projection, batch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    OUT.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    replicas = [r["replicas"] for r in rows]
    for kind, style in (("cafe", "o-"), ("hash", "s--")):
        left.plot(replicas, [r["samples_per_s"][kind] for r in rows], style, label=kind)
    left.set_xlabel("replicas (logical CPU devices on 2 cores)")
    left.set_ylabel("training samples/s")
    left.set_title(f"DLRM, {batch} examples per replica")
    left.legend()
    r, before, after, ring, _ = zip(*projection)
    right.loglog(r, before, "o-", label="per-occurrence exchange")
    right.loglog(r, after, "o-", label="per-replica aggregated pairs")
    right.loglog(r, [max(x, 1e-3) for x in ring], "k:", label="dense gradient all-reduce (ring)")
    right.axvline(max(replicas), color="gray", linewidth=0.5)
    right.set_xlabel("replicas (right of the line: projected)")
    right.set_ylabel("MB per replica per step")
    right.set_title("importance exchange vs dense all-reduce")
    right.legend(fontsize=8)
    fig.tight_layout()
    out = OUT / "scaling.png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
