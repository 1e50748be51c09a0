"""Insert and query throughput of the HotSketch: C++ op vs pure-TF reference.

Batches of 4k, 64k and 1M ids from Zipf(1.1) over 10M distinct ids, a sketch
of 64k buckets (c = 4). Prints keys/s and the op / reference ratio.

    python benchmarks/sketch_throughput.py [--repeats 5] [--skip-reference-above 1048576]
"""
import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cafe_tf.sketch import HotSketch, SketchConfig  # noqa: E402

DISTINCT = 10_000_000
BUCKETS = 65_536


def zipf_ids(rng, n, alpha=1.1):
    """n ids from the finite Zipf(alpha) over DISTINCT ranks (P(r) ~ r^-alpha), scattered."""
    cdf = np.cumsum(np.arange(1, DISTINCT + 1, dtype=np.float64) ** -alpha)
    ranks = np.searchsorted(cdf, rng.random(n) * cdf[-1]).astype(np.uint64) + np.uint64(1)
    return (ranks * np.uint64(0x9E3779B97F4A7C15)).view(np.int64)


def best_time(fn, repeats):
    fn()  # warm-up (tracing, allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(backend, ids, repeats):
    config = SketchConfig(num_buckets=BUCKETS, hot_rows=BUCKETS, threshold=500.0)
    sketch = HotSketch(config, backend=backend)
    ids_t = tf.constant(ids)
    importance = tf.ones([len(ids)], tf.float32)

    @tf.function
    def insert():
        sketch.insert(ids_t, importance)

    @tf.function
    def query():
        return sketch.query(ids_t)

    insert_s = best_time(insert, repeats)
    sketch.migrate()
    query_s = best_time(lambda: query()[0].numpy(), repeats)
    return len(ids) / insert_s, len(ids) / query_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 65536, 1 << 20])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs, sketch W={BUCKETS} c=4, "
          f"Zipf(1.1) over {DISTINCT:,} ids")
    print(f"{'batch':>9} {'backend':>10} {'insert keys/s':>15} {'query keys/s':>15}")
    for n in args.sizes:
        ids = zipf_ids(rng, n)
        figures = {b: measure(b, ids, args.repeats) for b in ("op", "reference")}
        for backend, (ins, qry) in figures.items():
            print(f"{n:>9,} {backend:>10} {ins:>15,.0f} {qry:>15,.0f}")
        (oi, oq), (ri, rq) = figures["op"], figures["reference"]
        print(f"{n:>9,} {'op/ref':>10} {oi / ri:>14.1f}x {oq / rq:>14.1f}x")


if __name__ == "__main__":
    main()
