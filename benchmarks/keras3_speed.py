"""Forward + backward time of the Keras 3 CAFE layer against the tf_keras one, one process.

`cafe_tf.keras3.CafeEmbeddingCollection` and `cafe_tf.CafeEmbeddingCollection` share their
logic and ops; this measures what the Keras 3 layer machinery adds. Both layers get the same
`CafeConfig` and the same batch of the synthetic Criteo-like data (26 fields), are traced,
then timed interleaved by `train_speed.layer_timings` (median of `--repeats` repeats of the
median of 10 calls), forward alone (inference) and forward + backward (training: importance
inserted into the sketch, gradients of the tables). Prints both and the Keras 3 / tf_keras
ratio. Goal: forward + backward within 1.1x.

    python benchmarks/keras3_speed.py [--batch-size 4096] [--ratio 100] [--repeats 15]

Needs Keras 3 beside tf_keras (TensorFlow >= 2.16 installs both).
"""

import argparse
import os

import keras
import tensorflow as tf

# train_speed sets TF_USE_LEGACY_KERAS: tf.keras is tf_keras here, Keras 3 is `import keras`.
from train_speed import layer_timings, report_layer_timings

import cafe_tf
import cafe_tf.keras3
from cafe_tf.data import SyntheticCriteo, SyntheticCriteoConfig

GOAL = 1.1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--ratio", type=float, default=100.0)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    data = SyntheticCriteo(
        SyntheticCriteoConfig(seed=0, rows_per_day=args.batch_size, num_days=2, scale=1e-2)
    )
    features, _ = next(iter(data.day_dataset(0, args.batch_size)))
    config = cafe_tf.CafeConfig(embedding_dim=args.embedding_dim, compression_ratio=args.ratio)
    layers = {
        "tf_keras": cafe_tf.CafeEmbeddingCollection(data.vocabulary_sizes, config),
        "keras3": cafe_tf.keras3.CafeEmbeddingCollection(data.vocabulary_sizes, config),
    }
    timings = layer_timings(layers, features["sparse"], args.repeats)
    print(
        f"CAFE layer, batch {args.batch_size} x 26 fields, D={args.embedding_dim}, budget "
        f"1/{args.ratio:g}; TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    report_layer_timings(timings, "keras3", "tf_keras", GOAL, args.repeats)


if __name__ == "__main__":
    main()
