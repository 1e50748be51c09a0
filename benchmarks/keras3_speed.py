"""Forward + backward time of the Keras 3 CAFE layer against the tf_keras one, one process.

`cafe_tf.keras3.CafeEmbeddingCollection` and `cafe_tf.CafeEmbeddingCollection` share their
logic and ops; this measures what the Keras 3 layer machinery adds. Both layers get the same
`CafeConfig` and the same batch of the synthetic Criteo-like data (26 fields), are traced,
then timed interleaved by `train_speed.layer_timings` (median of `--repeats` repeats of the
median of 10 calls), forward alone (inference) and forward + backward (training: importance
inserted into the sketch, gradients of the tables). Prints both and the Keras 3 / tf_keras
ratio. Goal: forward + backward within 1.1x.

    python benchmarks/keras3_speed.py [--batch-size 4096] [--ratio 100] [--repeats 5]

Needs Keras 3 beside tf_keras (TensorFlow >= 2.16 installs both).
"""
import argparse
import os

from train_speed import layer_timings  # sets TF_USE_LEGACY_KERAS: tf.keras is tf_keras here

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import cafe_tf  # noqa: E402  (the tf_keras layers)
import cafe_tf.keras3  # noqa: E402  (the Keras 3 layers)
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig  # noqa: E402

GOAL = 1.1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = SyntheticCriteo(SyntheticCriteoConfig(seed=0, rows_per_day=args.batch_size,
                                                 num_days=2, scale=1e-2))
    features, _ = next(iter(data.day_dataset(0, args.batch_size)))
    config = cafe_tf.CafeConfig(embedding_dim=args.embedding_dim, compression_ratio=args.ratio)
    layers = {"tf_keras": cafe_tf.CafeEmbeddingCollection(data.vocabulary_sizes, config),
              "keras3": cafe_tf.keras3.CafeEmbeddingCollection(data.vocabulary_sizes, config)}
    timings = layer_timings(layers, features["sparse"], args.repeats)
    print(f"CAFE layer, batch {args.batch_size} x 26 fields, D={args.embedding_dim}, budget "
          f"1/{args.ratio:g}; TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPUs")
    print(f"ms per call, median of {args.repeats} interleaved repeats of the median of 10 calls")
    print(f"  {'':<9} {'forward':>8} {'fwd + bwd':>10}")
    for name, (forward, both) in timings.items():
        print(f"  {name:<9} {forward:>8.2f} {both:>10.2f}")
    ratio = timings["keras3"][1] / timings["tf_keras"][1]
    print(f"goal: Keras 3 fwd + bwd <= {GOAL}x tf_keras: {ratio:.2f}x "
          f"({'met' if ratio <= GOAL else 'NOT met'}); forward alone "
          f"{timings['keras3'][0] / timings['tf_keras'][0]:.2f}x")


if __name__ == "__main__":
    main()
