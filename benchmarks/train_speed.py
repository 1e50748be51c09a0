"""Training throughput of a DLRM step with CAFE vs the hashing trick, same budget, one run.

Batches of 4096 from the synthetic Criteo-like data are generated once and
cached in memory, so the input pipeline is not measured. Every configuration's
model is built and traced once; then `--repeats` rounds (default 5) each time
every model in turn (interleaved, so machine noise hits all alike), and the
median samples/s per configuration and its ratio to hash are printed:

- cafe (paper settings: gradient importance, migration every step)
- cafe, migration every 100 steps      -> cost of per-step migration
- cafe, frequency importance           -> cost of gradient-norm importance
- cafe, pure-TF reference sketch       -> what the C++ ops save
- hash                                 -> the baseline

Then the embedding layer alone on one batch (4096 x 26 ids): forward for
inference, and forward + backward in training, CAFE and hash interleaved,
median of the repeats' medians, with the CAFE / hash ratio.

Goals: embedding forward + backward CAFE <= 1.5x hash; DLRM step with per-step
migration >= 0.95x hash samples/s.

    python benchmarks/train_speed.py [--batch-size 4096] [--steps 30] [--ratio 100] [--repeats 5]
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tf_keras

from cafe_tf.callbacks import CafeMigration
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig
from cafe_tf.experiment import make_embedding
from cafe_tf.models import DLRM

CONFIGS = {
    # name: (kind, CafeConfig overrides, migrate every)
    "hash": ("hash", {}, None),
    "cafe": ("cafe", {}, 1),
    "cafe, migrate every 100": ("cafe", {}, 100),
    "cafe, frequency importance": ("cafe", {"importance": "frequency"}, 1),
    "cafe, pure-TF sketch": ("cafe", {"backend": "reference"}, 1),
}


GOALS = {"fwd+bwd": 1.5, "dlrm": 0.95}


def build_model(name, data, batches, args):
    """A compiled DLRM of configuration `name`, traced and warmed up, with its callbacks."""
    kind, overrides, every = CONFIGS[name]
    embedding = make_embedding(
        kind, data.vocabulary_sizes, args.embedding_dim, args.ratio, **overrides
    )
    model = DLRM(embedding, bottom_units=(256, 64), top_units=(256, 64))
    model.compile(optimizer=tf_keras.optimizers.Adagrad(0.05))
    callbacks = [CafeMigration(every_n_steps=every)] if every else []
    model.fit(batches.take(3), epochs=1, verbose=0, callbacks=callbacks)  # trace and warm up
    return model, callbacks


def samples_per_second(model, callbacks, batches, args):
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0, callbacks=callbacks)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def _median_ms(fn, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def layer_timings(layers, ids, repeats):
    """{name: (forward ms, forward + backward ms)} of each embedding layer alone on the
    batch `ids`: per layer, the median over `repeats` interleaved repeats of the median of
    10 calls."""
    functions = {}
    for name, layer in layers.items():

        def forward(layer=layer):
            return layer(ids, training=False)

        def forward_backward(layer=layer):
            # A loss that depends on the vectors, returned with the gradients: with a
            # linear loss, TF prunes the forward gathers (the gradient needs no vector).
            with tf.GradientTape() as tape:
                loss = tf.add_n(
                    [tf.reduce_sum(tf.square(v)) for v in layer(ids, training=True).values()]
                )
            return loss, tape.gradient(loss, layer.trainable_weights)

        functions[name] = (tf.function(forward), tf.function(forward_backward))
        for fn in functions[name]:
            for _ in range(3):  # trace and warm up
                fn()
    runs = {name: ([], []) for name in functions}
    for _ in range(repeats):
        for name, fns in functions.items():
            for fn, times in zip(fns, runs[name]):
                times.append(_median_ms(fn, 10))
    return {name: tuple(float(np.median(t)) for t in times) for name, times in runs.items()}


def report_layer_timings(timings, layer, baseline, goal, repeats):
    """Prints `layer_timings`' figures and whether `layer`'s forward + backward takes at
    most `goal` times `baseline`'s."""
    print(f"ms per call, median of {repeats} interleaved repeats of the median of 10 calls")
    width = max(len(name) for name in timings)
    print(f"  {'':<{width}} {'forward':>8} {'fwd + bwd':>10}")
    for name, (forward, both) in timings.items():
        print(f"  {name:<{width}} {forward:>8.2f} {both:>10.2f}")
    ratio = timings[layer][1] / timings[baseline][1]
    print(
        f"goal: {layer} fwd + bwd <= {goal}x {baseline}: {ratio:.2f}x "
        f"({'met' if ratio <= goal else 'NOT met'}); forward alone "
        f"{timings[layer][0] / timings[baseline][0]:.2f}x"
    )


def embedding_profile(data, batches, args):
    """`layer_timings` of the hash and CAFE layers on the first batch."""
    features, _ = next(iter(batches))
    layers = {
        kind: make_embedding(kind, data.vocabulary_sizes, args.embedding_dim, args.ratio)
        for kind in ("hash", "cafe")
    }
    return layer_timings(layers, features["sparse"], args.repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = SyntheticCriteo(
        SyntheticCriteoConfig(
            seed=0, rows_per_day=args.batch_size * args.steps, num_days=2, scale=1e-2
        )
    )
    batches = data.day_dataset(0, args.batch_size).take(args.steps).cache()
    for _ in batches:  # materialise the cache
        pass
    print(
        f"DLRM, batch {args.batch_size}, D={args.embedding_dim}, budget 1/{args.ratio:g} of "
        f"{sum(data.vocabulary_sizes.values()):,} ids x 26 fields, {os.cpu_count()} CPUs"
    )
    models = {name: build_model(name, data, batches, args) for name in CONFIGS}
    runs = {name: [] for name in CONFIGS}
    for _ in range(args.repeats):  # interleaved repeats
        for name, (model, callbacks) in models.items():
            runs[name].append(samples_per_second(model, callbacks, batches, args))
    figures = {name: float(np.median(rates)) for name, rates in runs.items()}
    spread = {name: (min(rates), max(rates)) for name, rates in runs.items()}
    hash_rate = figures["hash"]
    print(f"median of {args.repeats} interleaved repeats of {args.steps} steps")
    print(f"{'configuration':<30} {'samples/s':>10} {'min-max':>15} {'vs hash':>8} {'ms/step':>8}")
    for name, rate in figures.items():
        low, high = spread[name]
        print(
            f"{name:<30} {rate:>10,.0f} {low:>7,.0f}-{high:<7,.0f} {rate / hash_rate:>7.2f}x "
            f"{1000 * args.batch_size / rate:>8.1f}"
        )
    ratio = figures["cafe"] / hash_rate
    print(
        f"goal: DLRM step with per-step migration >= {GOALS['dlrm']}x hash: {ratio:.2f}x "
        f"({'met' if ratio >= GOALS['dlrm'] else 'NOT met'})"
    )
    step = {name: 1000 * args.batch_size / rate for name, rate in figures.items()}
    print("\nWhere CAFE's extra time per step goes (ms, from the ablations above):")
    print(f"  total extra over hash          {step['cafe'] - step['hash']:8.1f}")
    print(f"  per-step migration (vs /100)   {step['cafe'] - step['cafe, migrate every 100']:8.1f}")
    print(
        f"  gradient-norm importance       {step['cafe'] - step['cafe, frequency importance']:8.1f}"
    )
    print(f"  C++ op saves vs pure-TF sketch {step['cafe, pure-TF sketch'] - step['cafe']:8.1f}")
    profile = embedding_profile(data, batches, args)
    print("\nThe embedding layer alone on one batch:")
    report_layer_timings(profile, "cafe", "hash", GOALS["fwd+bwd"], args.repeats)
    plot(figures, args)


def plot(figures, args):
    import matplotlib  # the bench extra; layer_timings runs without it (keras3_speed.py)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(__file__).resolve().parent / "out" / "train_speed.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(figures)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    bars = ax.barh(
        names[::-1],
        [figures[n] for n in names[::-1]],
        color=["gray" if n == "hash" else "tab:blue" for n in names[::-1]],
    )
    for bar, name in zip(bars, names[::-1]):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {figures[name]:,.0f}/s ({figures[name] / figures['hash']:.2f}x)",
            va="center",
        )
    ax.axvline(
        GOALS["dlrm"] * figures["hash"],
        color="red",
        linestyle="--",
        label=f"goal: {GOALS['dlrm']}x hash",
    )
    ax.set_xlabel("training samples/s")
    ax.set_title(f"DLRM, batch {args.batch_size}, budget 1/{args.ratio:g}")
    ax.set_xlim(0, 1.35 * max(figures.values()))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
