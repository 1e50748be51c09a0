"""Training throughput of a DLRM step with CAFE vs the hashing trick, same budget, one run.

Batches of 4096 from the synthetic Criteo-like data are generated once and
cached in memory, so the input pipeline is not measured. Prints samples/s
per configuration and the CAFE / hash ratio, then a breakdown of where CAFE's
extra time goes, from ablations measured in the same run:

- cafe (paper settings: gradient importance, migration every step)
- cafe, migration every 100 steps      -> cost of per-step migration
- cafe, frequency importance           -> cost of gradient-norm importance
- cafe, pure-TF reference sketch       -> what the C++ op saves
- hash                                 -> the baseline

and a profile of the embedding layer alone on one of the batches (ms per call,
median of 30): forward for inference, and forward + backward in training (for
CAFE: sketch query, hashing, partitioned lookups, and the importance insert).

    python benchmarks/train_speed.py [--batch-size 4096] [--steps 30] [--ratio 100]
"""
import argparse
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
import tf_keras  # noqa: E402

from cafe_tf.callbacks import CafeMigration  # noqa: E402
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig  # noqa: E402
from cafe_tf.experiment import make_embedding  # noqa: E402
from cafe_tf.models import DLRM  # noqa: E402

CONFIGS = {
    # name: (kind, CafeConfig overrides, migrate every)
    "hash": ("hash", {}, None),
    "cafe": ("cafe", {}, 1),
    "cafe, migrate every 100": ("cafe", {}, 100),
    "cafe, frequency importance": ("cafe", {"importance": "frequency"}, 1),
    "cafe, pure-TF sketch": ("cafe", {"backend": "reference"}, 1),
}


def samples_per_second(name, data, batches, args):
    kind, overrides, every = CONFIGS[name]
    embedding = make_embedding(kind, data.vocabulary_sizes, args.embedding_dim, args.ratio,
                               **overrides)
    model = DLRM(embedding, bottom_units=(256, 64), top_units=(256, 64))
    model.compile(optimizer=tf_keras.optimizers.Adagrad(0.05))
    callbacks = [CafeMigration(every_n_steps=every)] if every else []
    model.fit(batches.take(3), epochs=1, verbose=0, callbacks=callbacks)  # trace and warm up
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0, callbacks=callbacks)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def _median_ms(fn, calls=30):
    for _ in range(3):  # trace and warm up
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def embedding_profile(data, batches, args):
    """{kind: (forward ms, forward + backward ms)} of the embedding layer alone."""
    features, _ = next(iter(batches))
    sparse = features["sparse"]
    profile = {}
    for kind in ("hash", "cafe"):
        layer = make_embedding(kind, data.vocabulary_sizes, args.embedding_dim, args.ratio)

        @tf.function
        def forward():
            return layer(sparse, training=False)

        @tf.function
        def forward_backward():
            with tf.GradientTape() as tape:
                loss = tf.add_n([tf.reduce_sum(v) for v in layer(sparse, training=True).values()])
            return tape.gradient(loss, layer.trainable_weights)

        profile[kind] = (_median_ms(forward), _median_ms(forward_backward))
    return profile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = SyntheticCriteo(SyntheticCriteoConfig(seed=0, rows_per_day=args.batch_size *
                                                 args.steps, num_days=2, scale=1e-2))
    batches = data.day_dataset(0, args.batch_size).take(args.steps).cache()
    for _ in batches:  # materialise the cache
        pass
    print(f"DLRM, batch {args.batch_size}, D={args.embedding_dim}, budget 1/{args.ratio:g} of "
          f"{sum(data.vocabulary_sizes.values()):,} ids x 26 fields, {os.cpu_count()} CPUs")
    figures = {}
    for _ in range(args.repeats):  # interleaved repeats, best of each
        for name in CONFIGS:
            figures[name] = max(figures.get(name, 0.0),
                                samples_per_second(name, data, batches, args))
    hash_rate = figures["hash"]
    print(f"{'configuration':<30} {'samples/s':>10} {'vs hash':>8} {'ms/step':>8}")
    for name, rate in figures.items():
        print(f"{name:<30} {rate:>10,.0f} {rate / hash_rate:>7.2f}x "
              f"{1000 * args.batch_size / rate:>8.1f}")
    step = {name: 1000 * args.batch_size / rate for name, rate in figures.items()}
    print("\nWhere CAFE's extra time per step goes (ms, from the ablations above):")
    print(f"  total extra over hash          {step['cafe'] - step['hash']:8.1f}")
    print(f"  per-step migration (vs /100)   {step['cafe'] - step['cafe, migrate every 100']:8.1f}")
    print(f"  gradient-norm importance       {step['cafe'] - step['cafe, frequency importance']:8.1f}")
    print(f"  C++ op saves vs pure-TF sketch {step['cafe, pure-TF sketch'] - step['cafe']:8.1f}")
    profile = embedding_profile(data, batches, args)
    print("\nThe embedding layer alone on one batch (ms per call, median of 30):")
    print(f"  {'':<6} {'forward':>8} {'fwd + bwd':>10}")
    for kind, (forward, both) in profile.items():
        print(f"  {kind:<6} {forward:>8.2f} {both:>10.2f}")
    plot(figures, args)


def plot(figures, args):
    out = Path(__file__).resolve().parent / "out" / "train_speed.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(figures)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bars = ax.barh(names[::-1], [figures[n] for n in names[::-1]],
                   color=["gray" if n == "hash" else "tab:blue" for n in names[::-1]])
    for bar, name in zip(bars, names[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {figures[name]:,.0f}/s ({figures[name] / figures['hash']:.2f}x)", va="center")
    ax.axvline(0.8 * figures["hash"], color="red", linestyle="--", label="goal: 0.8x hash")
    ax.set_xlabel("training samples/s")
    ax.set_title(f"DLRM, batch {args.batch_size}, budget 1/{args.ratio:g}")
    ax.set_xlim(0, 1.35 * max(figures.values()))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
