"""Training throughput of a DLRM step with CAFE vs the hashing trick, same budget, one run.

For each batch size (default 512 and 4096), batches from the synthetic Criteo-like
data are generated once and cached in memory, so the input pipeline is not
measured; each timed fit trains on the same number of samples (`--steps` batches
of the largest size, proportionally more of the smaller ones). Every
configuration's model is built and traced once; then `--repeats` rounds (default
5) each time every model of that batch size in turn (interleaved, so machine
noise hits all alike), and per configuration the median samples/s and the best
repeat's, each with its ratio to hash, are printed. A fit's samples/s counts the
time from its first batch's start to its last batch's end, CAFE's migration
callback included, not fit's setup and teardown:

- cafe (paper settings: gradient importance, migration every step)
- cafe, migration every 100 steps      -> cost of per-step migration
- cafe, frequency importance           -> cost of gradient-norm importance
- cafe, pure-TF reference sketch       -> what the C++ ops save
- hash                                 -> the baseline

Then the embedding layer alone on one batch of the largest size (4096 x 26 ids):
forward for inference, and forward + backward in training, CAFE and hash
interleaved, median of the repeats' medians, with the CAFE / hash ratio.

Goals: embedding forward + backward CAFE <= 1.3x hash; DLRM step with per-step
migration >= 0.95x hash samples/s at batch 4096 and >= 0.9x at batch 512.

    python benchmarks/train_speed.py [--batch-sizes 512 4096] [--steps 10] [--ratio 100]
                                     [--repeats 5]
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


# The layer's forward + backward time over hash's (at most), and per batch size the
# DLRM's samples/s over hash's (at least); batch sizes without a goal get the smallest.
FWD_BWD_GOAL = 1.3
DLRM_GOALS = {512: 0.9, 4096: 0.95}


def dlrm_goal(batch_size):
    return DLRM_GOALS.get(batch_size, min(DLRM_GOALS.values()))


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


class _StepsTimer(tf_keras.callbacks.Callback):
    """Seconds from the first batch's start to the last batch's end, the callbacks
    before it in the list (CAFE's migration) included."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds = time.perf_counter() - self.start


def samples_per_second(model, callbacks, batches, samples, **fit_options):
    """Samples per second of one epoch's steps of `model.fit(batches, **fit_options)`.
    Not of the whole fit: after its last batch, fit sometimes waits until a fixed time
    from its start (about 1.27 s for every configuration on the 2-core VM of
    docs/scaling.md, whatever the code)."""
    timer = _StepsTimer()
    model.fit(batches, epochs=1, verbose=0, callbacks=callbacks + [timer], **fit_options)
    return samples / timer.seconds


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
    """`layer_timings` of the hash and CAFE layers on the first of `batches`."""
    features, _ = next(iter(batches))
    layers = {
        kind: make_embedding(kind, data.vocabulary_sizes, args.embedding_dim, args.ratio)
        for kind in ("hash", "cafe")
    }
    return layer_timings(layers, features["sparse"], args.repeats)


def dlrm_speeds(data, batch_size, args):
    """{configuration: [samples/s of each repeat]} of DLRMs trained on batches of
    `batch_size`, the configurations' fits interleaved; and the cached batches."""
    steps = args.steps * max(args.batch_sizes) // batch_size
    batches = data.day_dataset(0, batch_size).take(steps).cache()
    for _ in batches:  # materialise the cache
        pass
    models = {name: build_model(name, data, batches, args) for name in CONFIGS}
    runs = {name: [] for name in CONFIGS}
    for _ in range(args.repeats):  # interleaved repeats
        for name, (model, callbacks) in models.items():
            runs[name].append(samples_per_second(model, callbacks, batches, steps * batch_size))
    return runs, batches


def report_dlrm_speeds(runs, batch_size, args):
    """Prints `dlrm_speeds`' figures and whether CAFE meets its goal; returns the
    medians {configuration: samples/s}.

    Each configuration's median and its best repeat (other jobs on the machine only
    ever slow a fit down, so the fastest repeat is the one they disturbed least) are
    compared with hash's."""
    steps = args.steps * max(args.batch_sizes) // batch_size
    figures = {name: float(np.median(rates)) for name, rates in runs.items()}
    best = {name: max(rates) for name, rates in runs.items()}
    print(f"\nbatch {batch_size}: {args.repeats} interleaved repeats of {steps} steps")
    print(
        f"{'configuration':<30} {'median/s':>9} {'vs hash':>8} {'best/s':>9} {'vs hash':>8} "
        f"{'worst/s':>9} {'ms/step':>8}"
    )
    for name, rate in figures.items():
        print(
            f"{name:<30} {rate:>9,.0f} {rate / figures['hash']:>7.2f}x {best[name]:>9,.0f} "
            f"{best[name] / best['hash']:>7.2f}x {min(runs[name]):>9,.0f} "
            f"{1000 * batch_size / rate:>8.1f}"
        )
    goal = dlrm_goal(batch_size)
    for what, rates in (("median", figures), ("best repeat", best)):
        ratio = rates["cafe"] / rates["hash"]
        print(
            f"goal: DLRM step at batch {batch_size} with per-step migration >= {goal}x hash, "
            f"{what}: {ratio:.2f}x ({'met' if ratio >= goal else 'NOT met'})"
        )
    step = {name: 1000 * batch_size / rate for name, rate in best.items()}
    print("Where CAFE's extra time per step goes (ms, best repeats, from the ablations above):")
    print(f"  total extra over hash          {step['cafe'] - step['hash']:8.1f}")
    print(f"  per-step migration (vs /100)   {step['cafe'] - step['cafe, migrate every 100']:8.1f}")
    print(
        f"  gradient-norm importance       {step['cafe'] - step['cafe, frequency importance']:8.1f}"
    )
    print(f"  C++ op saves vs pure-TF sketch {step['cafe, pure-TF sketch'] - step['cafe']:8.1f}")
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 4096])
    parser.add_argument(
        "--steps", type=int, default=10, help="steps per timed fit at the largest batch size"
    )
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    args.batch_sizes = sorted(set(args.batch_sizes))
    data = SyntheticCriteo(
        SyntheticCriteoConfig(
            seed=0, rows_per_day=max(args.batch_sizes) * args.steps, num_days=2, scale=1e-2
        )
    )
    print(
        f"DLRM, batches of {' and '.join(map(str, args.batch_sizes))}, D={args.embedding_dim}, "
        f"budget 1/{args.ratio:g} of {sum(data.vocabulary_sizes.values()):,} ids x 26 fields, "
        f"{os.cpu_count()} CPUs"
    )
    figures = {}
    for batch_size in args.batch_sizes:
        runs, batches = dlrm_speeds(data, batch_size, args)
        figures[batch_size] = report_dlrm_speeds(runs, batch_size, args)
    profile = embedding_profile(data, batches, args)  # the largest batch size's
    print(f"\nThe embedding layer alone on one batch of {max(args.batch_sizes)}:")
    report_layer_timings(profile, "cafe", "hash", FWD_BWD_GOAL, args.repeats)
    plot(figures, args)


def plot(figures, args):
    """One panel of samples/s per batch size in `figures` ({batch size: {configuration:
    samples/s}}), each with its goal."""
    import matplotlib  # the bench extra; layer_timings runs without it (keras3_speed.py)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(__file__).resolve().parent / "out" / "train_speed.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(figures), 1, figsize=(8, 3.2 * len(figures)), squeeze=False)
    for ax, (batch_size, rates) in zip(axes[:, 0], figures.items()):
        names = list(rates)[::-1]
        bars = ax.barh(
            names,
            [rates[n] for n in names],
            color=["gray" if n == "hash" else "tab:blue" for n in names],
        )
        for bar, name in zip(bars, names):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {rates[name]:,.0f}/s ({rates[name] / rates['hash']:.2f}x)",
                va="center",
            )
        goal = dlrm_goal(batch_size)
        ax.axvline(goal * rates["hash"], color="red", linestyle="--", label=f"goal: {goal}x hash")
        ax.set_xlabel("training samples/s")
        ax.set_title(f"DLRM, batch {batch_size}, budget 1/{args.ratio:g}")
        ax.set_xlim(0, 1.35 * max(rates.values()))
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
